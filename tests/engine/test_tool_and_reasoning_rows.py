"""Tool use and reasoning, from a JSONL file to the tokens SFT trains, on Qwen3's real chat template.

The row carries ``tools``, an assistant turn that only calls a tool, the tool's result and a final
answer with its reasoning. Through tunedeck.engine.data (validation, normalization to one Arrow schema) and
the SFT tokenization: the tool call and the answers are trained, the user and tool text are not, and
``template.train_on_reasoning: false`` leaves the reasoning untrained.
"""

from __future__ import annotations

import json

import pytest

from tunedeck.engine.data import prepare_splits
from tunedeck.engine.methods.sft import tokenize_chats
from tunedeck.engine.templates.corpus import TOOLS, llama_cpp_sdist, vendored_templates

ROW = {
    "tools": TOOLS,
    "messages": [
        {"role": "user", "content": "USER weather in Oslo?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo-7"}}}]},
        {"role": "tool", "name": "get_weather", "content": "TOOL sunny, 21 C"},
        {"role": "assistant", "content": "ANSWER it is sunny.", "reasoning_content": "THINK the tool said sunny"},
    ],
}  # fmt: skip
PLAIN = {"messages": [{"role": "user", "content": "USER hi"}, {"role": "assistant", "content": "ANSWER hello"}]}


@pytest.fixture(scope="module")
def qwen3() -> str:
    return vendored_templates(llama_cpp_sdist())["Qwen-Qwen3-0.6B"]


@pytest.fixture(scope="module")
def tokenizer(demo_assets):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_assets.base)


def trained_text(tokenizer, row, mask) -> tuple[str, str]:
    ids = row["input_ids"]
    on = tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
    off = tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if not m])
    return on, off


@pytest.mark.parametrize("reasoning", [True, False])
def test_tool_calls_and_answers_train_tool_results_and_prompts_do_not(tmp_path, tokenizer, qwen3, reasoning):
    data = tmp_path / "tools.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in (PLAIN, ROW)) + "\n")  # the first row has no tools
    train, _ = prepare_splits(str(data), method="sft")
    assert train.column_names == ["messages", "tools"] and train[0]["tools"] is None
    tokens = tokenize_chats(tokenizer, train, qwen3, True, reasoning, "data.train")
    on, off = trained_text(tokenizer, tokens[1], tokens[1]["assistant_masks"])
    assert '"city": "Oslo-7"' in on and "ANSWER it is sunny." in on and "<|im_end|>" in on
    assert "USER weather" in off and "TOOL sunny" in off and "get_weather" in off  # the tools list in the system turn
    assert ("THINK the tool said sunny" in on) is reasoning and ("THINK the tool said sunny" in off) is not reasoning
    plain_on, _ = trained_text(tokenizer, tokens[0], tokens[0]["assistant_masks"])
    assert "ANSWER hello" in plain_on and "None" not in tokenizer.decode(tokens[0]["input_ids"])


def test_a_row_the_template_refuses_names_its_row(tmp_path, tokenizer):
    from tunedeck.engine.data.errors import DataError

    data = tmp_path / "chats.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in (PLAIN, PLAIN)) + "\n")
    train, _ = prepare_splits(str(data), method="sft")
    refuses = "{% if messages|length > 1 %}{{ raise_exception('only one message, please') }}{% endif %}"
    with pytest.raises(DataError, match='data.train row 1: the chat template refuses it: the template raises "only one message, please"'):
        tokenize_chats(tokenizer, train, refuses, True, True, "data.train")


# The same exchange as LLaMA-Factory's sharegpt writes it (function_call / observation turns, a tools column of
# bare function definitions as JSON) and as OpenAI's fine-tuning format does (content null, arguments as JSON text).
SHAREGPT_ROW = {
    "conversations": [
        {"from": "human", "value": "USER weather in Oslo?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Oslo-7"}})},
        {"from": "observation", "value": "TOOL sunny, 21 C"},
        {"from": "gpt", "value": "ANSWER it is sunny."},
    ],
    "tools": json.dumps([t["function"] for t in TOOLS]),
}
OPENAI_ROW = {
    "messages": [
        {"role": "user", "content": "USER weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo-7"}'}}]},
        {"role": "tool", "tool_call_id": "call00001", "content": "TOOL sunny, 21 C"},
        {"role": "assistant", "content": "ANSWER it is sunny."},
    ],
    "tools": TOOLS,
}  # fmt: skip


@pytest.mark.parametrize("row", [SHAREGPT_ROW, OPENAI_ROW], ids=["llamafactory-sharegpt", "openai"])
def test_tool_rows_in_other_formats_train_the_call_and_mask_the_result(tmp_path, tokenizer, qwen3, row):
    data = tmp_path / "tools.jsonl"
    data.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    train, _ = prepare_splits(str(data), method="sft")
    tokens = tokenize_chats(tokenizer, train, qwen3, True, True, "data.train")
    on, off = trained_text(tokenizer, tokens[0], tokens[0]["assistant_masks"])
    assert '{"name": "get_weather", "arguments": {"city": "Oslo-7"}}' in on and "ANSWER it is sunny." in on
    assert "USER weather" in off and "TOOL sunny" in off and '"name": "get_weather"' in off  # the tools, in the system turn
