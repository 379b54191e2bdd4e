"""Datasets as people have them: LLaMA-Factory's, OpenAI's and TRL's formats, detected with no flag.

Every fixture is written here from the format's documentation (LLaMA-Factory's data/README.md,
OpenAI's chat and preference fine-tuning guides, TRL's dataset formats page, databricks-dolly-15k's
dataset card); none is copied from a dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunedeck.engine.data import DataError, inspect_data, load_normalized
from tunedeck.engine.data.prepare import prepare_splits

WEATHER = {"name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}  # fmt: skip


def jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def inspected(source: str, **kw):
    report = inspect_data(source, sample_size=0, **kw)
    assert report.complete
    return report


def normalized(source: str) -> list[dict]:
    ds, _ = load_normalized(source)
    return [ds[i] for i in range(len(ds))]


# --------------------------------------------------------------------------- LLaMA-Factory


def test_alpaca_with_system_and_history(tmp_path):
    rows = [{"instruction": f"And {i} plus 6?", "input": "", "output": f"{i + 6}", "system": "You add numbers.",
             "history": [["What is 3 plus 4?", "7"]]} for i in range(3)]  # fmt: skip
    report = inspected(jsonl(tmp_path / "a.jsonl", rows))
    assert (report.format, report.valid, report.warnings) == ("alpaca", 3, [])
    [first, *_] = normalized(str(tmp_path / "a.jsonl"))
    assert [(m["role"], m["content"]) for m in first["messages"]] == [
        ("system", "You add numbers."), ("user", "What is 3 plus 4?"), ("assistant", "7"),
        ("user", "And 0 plus 6?"), ("assistant", "6"),
    ]  # fmt: skip


def test_sharegpt_with_tool_roles_system_and_tools_columns(tmp_path):
    call = json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}})
    row = {"conversations": [{"from": "human", "value": "Weather in Oslo?"}, {"from": "function_call", "value": call},
                             {"from": "observation", "value": '{"temp": 21}'}, {"from": "gpt", "value": "It is 21 C."}],
           "system": "You report the weather.", "tools": json.dumps([WEATHER])}  # fmt: skip
    path = jsonl(tmp_path / "tools.jsonl", [row] * 2 + [{**row, "tools": ""}])
    report = inspected(path)
    assert (report.format, report.valid, report.invalid, report.warnings) == ("sharegpt", 3, 0, [])
    first = normalized(path)[0]
    roles = [m["role"] for m in first["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    calls = json.loads(first["messages"][2]["tool_calls"])
    assert calls == [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]
    assert json.loads(first["tools"]) == [{"type": "function", "function": WEATHER}]


def test_a_sharegpt_function_call_that_is_not_json_is_named(tmp_path):
    row = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "function_call", "value": "get_weather(Oslo)"},
                             {"from": "observation", "value": "21"}, {"from": "gpt", "value": "21 C."}]}  # fmt: skip
    report = inspected(jsonl(tmp_path / "bad.jsonl", [row]))
    assert report.invalid == 1 and report.errors[0].kind == "bad_tool_call"
    assert report.errors[0].field == "conversations[1].value"


@pytest.mark.parametrize("single", [True, False], ids=["objects", "lists"])
def test_sharegpt_ranking_is_preference_data(tmp_path, single):
    def turn(text):
        message = {"from": "gpt", "value": text}
        return message if single else [message]

    rows = [{"conversations": [{"from": "human", "value": f"What is {i} plus 1?"}],
             "chosen": turn(f"{i + 1}"), "rejected": turn(f"{i + 2}")} for i in range(4)]  # fmt: skip
    path = jsonl(tmp_path / "rank.jsonl", rows)
    report = inspected(path)
    assert (report.format, report.valid, report.invalid) == ("preference", 4, 0)
    first = normalized(path)[0]
    assert [m["content"] for m in first["prompt"]] == ["What is 0 plus 1?"]
    assert [(m["role"], m["content"]) for m in first["chosen"]] == [("assistant", "1")]
    assert [(m["role"], m["content"]) for m in first["rejected"]] == [("assistant", "2")]


@pytest.mark.parametrize("label,sharegpt", [("label", False), ("kto_tag", True)], ids=["messages-label", "sharegpt-kto_tag"])
def test_a_conversation_with_a_boolean_label_is_kto_and_sft_on_it_is_refused(tmp_path, label, sharegpt):
    def turns(i):
        if sharegpt:
            return {"conversations": [{"from": "human", "value": f"What is {i} plus 1?"},
                                      {"from": "gpt", "value": f"{i + 1 if i % 2 else i}"}]}  # fmt: skip
        return {"messages": [{"role": "user", "content": f"What is {i} plus 1?"},
                             {"role": "assistant", "content": f"{i + 1 if i % 2 else i}"}]}  # fmt: skip

    rows = [{**turns(i), label: bool(i % 2)} for i in range(6)]
    path = jsonl(tmp_path / "kto.jsonl", rows)
    report = inspected(path)
    assert (report.format, report.valid, report.labels) == ("kto", 6, {"false": 3, "true": 3})
    first = normalized(path)[0]
    assert [m["role"] for m in first["prompt"]] == ["user"] and first["completion"][0]["content"] == "0"
    assert first["label"] is False
    with pytest.raises(DataError, match="3 of its 6 rows are labelled false"):
        prepare_splits(path, method="sft")


# --------------------------------------------------------------------------- OpenAI chat fine-tuning


def test_openai_tool_calls_with_null_content(tmp_path):
    row = {"messages": [
        {"role": "system", "content": "You report the weather."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21 C"},
        {"role": "assistant", "content": "It is 21 C."}],
        "tools": [{"type": "function", "function": WEATHER}]}  # fmt: skip
    path = jsonl(tmp_path / "openai.jsonl", [row] * 3)
    report = inspected(path)
    assert (report.format, report.valid, report.invalid, report.warnings) == ("messages", 3, 0, [])
    messages = normalized(path)[0]["messages"]
    assert messages[2]["content"] == "" and messages[3]["tool_call_id"] == "call_1"
    [call] = json.loads(messages[2]["tool_calls"])
    assert call["id"] == "call_1" and call["function"]["arguments"] == {"city": "Oslo"}


def test_content_given_as_parts(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is 3 plus 4?"}]},
                      {"role": "assistant", "content": [{"type": "text", "text": "7"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "value": "What is 5 plus 6?"}]},
                      {"role": "assistant", "content": [{"type": "reasoning", "value": "5 and 6 make 11."},
                                                         {"type": "text", "value": "11"}]}]},
    ]  # fmt: skip
    path = jsonl(tmp_path / "parts.jsonl", rows)
    report = inspected(path)
    assert (report.format, report.valid, report.invalid) == ("messages", 2, 0)
    first, second = normalized(path)
    assert first["messages"][0]["content"] == "What is 3 plus 4?"
    assert second["messages"][1]["content"] == "11"
    assert second["messages"][1]["reasoning_content"] == "5 and 6 make 11."


def test_images_are_refused_naming_the_column_and_rows(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "<image>What is in it?"}, {"role": "assistant", "content": "A cat."}],
             "images": ["cat.png"]}] * 2 + [  # fmt: skip
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "cat.png"}},
                                                   {"type": "text", "text": "And here?"}]},
                      {"role": "assistant", "content": "A dog."}]}]  # fmt: skip
    report = inspected(jsonl(tmp_path / "mm.jsonl", rows))
    assert (report.valid, report.invalid, report.error_kinds) == (0, 3, {"multimodal": 3})
    assert [(str(e.where), e.field) for e in report.errors] == [
        (f"{tmp_path / 'mm.jsonl'}:1", "images"), (f"{tmp_path / 'mm.jsonl'}:2", "images"),
        (f"{tmp_path / 'mm.jsonl'}:3", "messages[0].content[0]"),
    ]  # fmt: skip
    assert "text-only" in report.errors[0].reason


# --------------------------------------------------------------------------- TRL's formats


@pytest.mark.parametrize(
    "row,fmt",
    [
        ({"prompt": "3+4=", "completion": "7"}, "prompt_completion"),
        ({"prompt": [{"role": "user", "content": "3+4?"}], "completion": [{"role": "assistant", "content": "7"}]},
         "prompt_completion"),
        ({"prompt": "3+4=", "chosen": "7", "rejected": "8"}, "preference"),
        ({"chosen": [{"role": "user", "content": "3+4?"}, {"role": "assistant", "content": "7"}],
          "rejected": [{"role": "user", "content": "3+4?"}, {"role": "assistant", "content": "8"}]}, "preference"),
        ({"prompt": "3+4=", "completion": "8", "label": False}, "kto"),
        ({"text": "The sum of 3 and 4 is 7."}, "text"),
        ({"prompt": [{"role": "user", "content": "3+4?"}]}, "prompt"),
    ],
    ids=["standard-pc", "conversational-pc", "standard-pref", "implicit-prompt-pref", "unpaired-pref", "lm", "prompt-only"],
)
def test_trl_formats(tmp_path, row, fmt):
    path = jsonl(tmp_path / "trl.jsonl", [row] * 3)
    report = inspected(path)
    assert (report.format, report.valid, report.warnings) == (fmt, 3, [])
    assert len(normalized(path)) == 3


# --------------------------------------------------------------------------- files: .txt, one JSON object


def test_txt_one_document_per_line(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("The sum of 3 and 4 is 7.\nThe sum of 5 and 6 is 11.\n\n")
    report = inspected(str(path))
    assert (report.format, report.valid) == ("text", 2)
    assert report.notes == [f"{path}: plain text; one document per line"]
    assert [r["text"] for r in normalized(str(path))] == ["The sum of 3 and 4 is 7.", "The sum of 5 and 6 is 11."]


def test_txt_documents_separated_by_blank_lines(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("First document,\nsecond line.\n\n\nSecond document.\n")
    report = inspected(str(path))
    assert (report.format, report.valid) == ("text", 2)
    assert report.notes == [f"{path}: plain text; blank lines separate documents"]
    assert report.preview[1].where.line == 5
    assert [r["text"] for r in normalized(str(path))] == ["First document,\nsecond line.", "Second document."]


def test_a_pretty_printed_object_and_a_train_list(tmp_path):
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"instruction": "What is 3 plus 4?", "output": "7"}, indent=2))
    report = inspected(str(one))
    assert (report.format, report.valid, report.notes) == ("alpaca", 1, [f"{one} holds one JSON object: read as one row"])
    split = tmp_path / "split.json"
    rows = [{"instruction": f"What is {i} plus 4?", "output": f"{i + 4}"} for i in range(5)]
    split.write_text(json.dumps({"train": rows, "test": rows[:2]}, indent=1))
    report = inspected(str(split))
    assert (report.format, report.valid) == ("alpaca", 5)
    assert report.notes == [f"{split} holds one JSON object: read the 5 rows of its 'train' list"]
    assert len(normalized(str(split))) == 5
    split.write_text(json.dumps({"train": rows}))  # on one line, as json.dump writes it
    assert inspected(str(split)).valid == 5


# --------------------------------------------------------------------------- nothing dropped silently


def test_unused_columns_are_named_with_their_row_counts(tmp_path):
    rows = [{"instruction": "What is 3 plus 4?", "output": "7", "id": i, "source": "book" if i < 2 else None}
            for i in range(3)]  # fmt: skip
    report = inspected(jsonl(tmp_path / "extra.jsonl", rows))
    assert report.ignored == {"id": 3, "source": 2}
    assert report.warnings == ["ignored columns: id (3 rows), source (2 rows); the alpaca format does not read them"]
    assert report.to_dict()["warnings"] == report.warnings


# --------------------------------------------------------------------------- LLaMA-Factory's dataset_info.json


def test_a_dataset_info_entry_is_a_data_source(tmp_path):
    """Custom column names and sharegpt tags, as LLaMA-Factory's data/README.md documents them."""
    data = tmp_path / "data"
    data.mkdir()
    jsonl(data / "qa.jsonl", [{"question": f"What is {i} plus 4?", "answer": f"{i + 4}", "id": i} for i in range(4)])
    jsonl(data / "chat.jsonl", [{"dialog": [{"speaker": "me", "text": "Hi"}, {"speaker": "bot", "text": "Hello!"}],
                                 "preamble": "Be brief."}] * 3)  # fmt: skip
    jsonl(data / "rank.jsonl", [{"instruction": "3+4?", "chosen": "7", "rejected": "8"}] * 2)
    info = {
        "qa": {"file_name": "qa.jsonl", "columns": {"prompt": "question", "response": "answer"}},
        "chat": {"file_name": "chat.jsonl", "formatting": "sharegpt",
                 "columns": {"messages": "dialog", "system": "preamble"},
                 "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "me", "assistant_tag": "bot"}},
        "rank": {"file_name": "rank.jsonl", "ranking": True},
        "hub": {"hf_hub_url": "someone/data"},
    }  # fmt: skip
    (data / "dataset_info.json").write_text(json.dumps(info))
    base = f"{data / 'dataset_info.json'}#"

    report = inspected(base + "qa")
    assert (report.format, report.valid, report.ignored) == ("alpaca", 4, {"id": 4})
    assert str(report.errors or report.preview[0].where) == f"{data / 'qa.jsonl'}:1"
    assert normalized(base + "qa")[0]["messages"][0]["content"] == "What is 0 plus 4?"

    report = inspected(base + "chat")
    assert (report.format, report.valid, report.invalid) == ("sharegpt", 3, 0)
    roles = [(m["role"], m["content"]) for m in normalized(base + "chat")[0]["messages"]]
    assert roles == [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!")]

    assert inspected(base + "rank").format == "preference"
    assert normalized(base + "rank")[0] == {"prompt": "3+4?", "chosen": "7", "rejected": "8"}

    with pytest.raises(DataError, match="loads from hf_hub_url someone/data"):
        inspected(base + "hub")
    with pytest.raises(DataError, match="no entry 'nope'; it has: chat, hub, qa, rank"):
        inspected(base + "nope")


# --------------------------------------------------------------------------- what a review found (each once wrong)


def test_a_field_first_seen_late_is_kept_in_every_file_kind(tmp_path):
    rows = [{"instruction": f"q{i}", "output": f"a{i}", "system": None} for i in range(1500)]
    rows[1200]["system"] = "You are a pirate."
    (tmp_path / "split.json").write_text(json.dumps({"train": rows}))
    assert normalized(str(tmp_path / "split.json"))[1200]["messages"][0]["content"] == "You are a pirate."
    chats = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
             for i in range(150)]  # fmt: skip
    chats[120]["messages"][1]["reasoning_content"] = "thought"
    chats[130]["tools"] = [{"type": "function", "function": WEATHER}]
    out = normalized(jsonl(tmp_path / "late.jsonl", chats))
    assert out[120]["messages"][1]["reasoning_content"] == "thought" and json.loads(out[130]["tools"])[0]["function"] == WEATHER
    assert out[0]["messages"][1]["reasoning_content"] is None and out[0]["tools"] is None


def test_json_lines_in_a_json_file_and_one_conversation_object(tmp_path):
    chat = {"messages": [{"role": "user", "content": "3+4?"}, {"role": "assistant", "content": "7"}]}
    lines = tmp_path / "lines.json"
    lines.write_text(json.dumps(chat) + "\n" + json.dumps(chat) + "\n")
    assert inspected(str(lines)).valid == 2 and len(normalized(str(lines))) == 2
    one = tmp_path / "one.json"
    one.write_text(json.dumps(chat, indent=2))
    assert (inspected(str(one)).format, inspected(str(one)).valid) == ("messages", 1)


@pytest.mark.parametrize("label", ["math", 1])
def test_a_label_that_is_not_a_boolean_leaves_a_conversation_sft_data(tmp_path, label):
    row = {"messages": [{"role": "user", "content": "3+4?"}, {"role": "assistant", "content": "7"}], "label": label}
    report = inspected(jsonl(tmp_path / "l.jsonl", [row] * 2))
    assert (report.format, report.valid, report.ignored) == ("messages", 2, {"label": 2})


def test_empty_tool_calls_text_means_no_calls(tmp_path):
    row = {"messages": [{"role": "user", "content": "3+4?"}, {"role": "assistant", "content": "7", "tool_calls": ""}]}
    path = jsonl(tmp_path / "t.jsonl", [row])
    assert inspected(path).valid == 1 and "tool_calls" not in normalized(path)[0]["messages"][1]


def test_conversation_prompts_check_their_system_column_and_text_prompts_report_it_unused(tmp_path):
    kto = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], "kto_tag": True,
           "system": {"x": 1}}  # fmt: skip
    report = inspected(jsonl(tmp_path / "k.jsonl", [kto]))
    assert report.invalid == 1 and report.errors[0].field == "system"
    pref = {"prompt": "q", "chosen": "a", "rejected": "b", "system": "You are a pirate."}
    assert inspected(jsonl(tmp_path / "p.jsonl", [pref])).ignored == {"system": 1}


def test_dataset_info_edits_are_read_afresh_and_history_goes_into_the_prompt(tmp_path):
    jsonl(tmp_path / "qa.jsonl", [{"q": "3+4?", "a": "7", "alt": "seven", "history": [["hi", "hello"]],
                                   "chosen": "7", "rejected": "8"}])  # fmt: skip
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps({"qa": {"file_name": "qa.jsonl", "columns": {"prompt": "q", "response": "a"}}}))
    source = f"{info}#qa"
    assert normalized(source)[0]["messages"][-1]["content"] == "7"
    info.write_text(json.dumps({"qa": {"file_name": "qa.jsonl", "columns": {"prompt": "q", "response": "alt"}}}))
    assert normalized(source)[0]["messages"][-1]["content"] == "seven"
    info.write_text(json.dumps({"qa": {"file_name": "qa.jsonl", "ranking": True, "columns": {"prompt": "q"}}}))
    [row] = normalized(source)
    assert [m["content"] for m in row["prompt"]] == ["hi", "hello", "3+4?"] and row["chosen"][0]["content"] == "7"


def test_a_dataset_info_row_with_an_odd_role_is_an_error_not_a_crash(tmp_path):
    jsonl(tmp_path / "c.jsonl", [{"conversations": [{"from": ["human"], "value": "q"}, {"from": "gpt", "value": "a"}]}])
    (tmp_path / "dataset_info.json").write_text(json.dumps({"c": {"file_name": "c.jsonl", "formatting": "sharegpt"}}))
    report = inspected(f"{tmp_path / 'dataset_info.json'}#c")
    assert report.invalid == 1 and report.errors[0].kind == "wrong_type"


def test_blank_lines_between_one_line_documents_are_spacing(tmp_path):
    path = tmp_path / "spaced.txt"
    path.write_text("doc one\n\ndoc two\n\ndoc three\n")
    report = inspected(str(path))
    assert report.valid == 3 and report.notes == [f"{path}: plain text; one document per line"]


# --------------------------------------------------------------------------- issue 30: OpenAI preference, Alpaca, Dolly

# OpenAI's preference (DPO) fine-tuning format: the example row of its direct-preference-optimization guide, a
# multi-turn input with tools, and one with no tools at all.
OPENAI_DOC_ROW = {
    "input": {"messages": [{"role": "user", "content": "Hello, can you tell me how cold San Francisco is today?"}],
              "tools": [], "parallel_tool_calls": True},
    "preferred_output": [{"role": "assistant", "content": "Today in San Francisco, it is not quite cold as expected. "
                          "Morning clouds will give away to sunshine, with a high near 68°F (20°C) and a low around "
                          "57°F (14°C)."}],
    "non_preferred_output": [{"role": "assistant", "content": "It is not particularly cold in San Francisco today."}],
}  # fmt: skip
OPENAI_MULTI_TURN = {
    "input": {"messages": [{"role": "system", "content": "You report the weather."},
                           {"role": "user", "content": "Is it cold in Oslo?"},
                           {"role": "assistant", "content": "It is 2 C in Oslo."},
                           {"role": "user", "content": "And in Rome?"}],
              "tools": [{"type": "function", "function": WEATHER}], "parallel_tool_calls": False},
    "preferred_output": [{"role": "assistant", "content": "It is 14 C in Rome: milder than Oslo."}],
    "non_preferred_output": [{"role": "assistant", "content": "Rome is a city in Italy."}],
}  # fmt: skip
OPENAI_NO_TOOLS = {
    "input": {"messages": [{"role": "user", "content": "What is 3 plus 4?"}]},
    "preferred_output": [{"role": "assistant", "content": "7"}],
    "non_preferred_output": [{"role": "assistant", "content": "34"}],
}
BOM = b"\xef\xbb\xbf"


def with_bom(path: Path, rows: list[dict], *, array: bool = False) -> str:
    text = json.dumps(rows, ensure_ascii=False) if array else "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_bytes(BOM + text.encode())
    return str(path)


def roles(messages: list[dict]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in messages]


def test_openai_preference_rows_are_preference_data_with_their_tools(tmp_path):
    path = with_bom(tmp_path / "dpo.jsonl", [OPENAI_DOC_ROW, OPENAI_MULTI_TURN, OPENAI_NO_TOOLS])
    report = inspected(path)
    assert (report.format, report.confidence, report.valid, report.invalid) == ("preference", 1.0, 3, 0)
    assert report.notes == [f"{path} starts with a UTF-8 byte-order mark (BOM); read past it"]
    assert report.ignored == {"input.parallel_tool_calls": 2}  # an API setting: nothing to train on
    assert report.needs == (False, True)
    doc, multi, plain = normalized(path)
    assert roles(doc["prompt"]) == [("user", "Hello, can you tell me how cold San Francisco is today?")]
    assert roles(doc["chosen"]) == roles(OPENAI_DOC_ROW["preferred_output"])
    assert roles(doc["rejected"]) == [("assistant", "It is not particularly cold in San Francisco today.")]
    assert doc["tools"] is None and plain["tools"] is None  # tools: [] is no tools
    assert [r for r, _ in roles(multi["prompt"])] == ["system", "user", "assistant", "user"]
    assert json.loads(multi["tools"]) == [{"type": "function", "function": WEATHER}]


def test_wrong_openai_preference_rows_are_named(tmp_path):
    ends_with_reply = {**OPENAI_NO_TOOLS, "input": {"messages": [{"role": "user", "content": "3+4?"},
                                                                 {"role": "assistant", "content": "7"}]}}  # fmt: skip
    rows = [
        OPENAI_NO_TOOLS,  # 1
        ends_with_reply,  # 2
        {k: v for k, v in OPENAI_NO_TOOLS.items() if k != "non_preferred_output"},  # 3
        {**OPENAI_NO_TOOLS, "non_preferred_output": OPENAI_NO_TOOLS["preferred_output"]},  # 4
        {**OPENAI_NO_TOOLS, "input": "What is 3 plus 4?"},  # 5
        {**OPENAI_NO_TOOLS, "input": {**OPENAI_NO_TOOLS["input"], "tools": [{"type": "function"}]}},  # 6
        {**OPENAI_NO_TOOLS, "preferred_output": [{"role": "assistant", "content": ""}]},  # 7
    ]
    path = jsonl(tmp_path / "bad.jsonl", rows)
    report = inspected(path, fmt="preference")
    assert (report.valid, report.invalid) == (1, 6)
    assert [(e.where.line, e.field, e.kind) for e in report.errors] == [
        (2, "input.messages[1].role", "wrong_type"),
        (3, "non_preferred_output", "missing"),
        (4, "non_preferred_output", "identical"),
        (5, "input", "wrong_type"),
        (6, "input.tools", "wrong_type"),
        (7, "preferred_output[0].content", "empty"),
    ]
    assert "the prompt ends with an assistant turn" in report.errors[0].reason


def test_dpo_trains_on_openai_preference_rows_as_on_trl_ones(tmp_path):
    """What the DPO trainer is given (prepare_splits, as the worker calls it) is TRL's conversational preference
    form, as for the demo's preference.jsonl, with the tools as JSON text (TRL's DPOTrainer passes a row's tools
    to the chat template)."""
    from trl.data_utils import is_conversational

    from tunedeck.engine.demo.base import preference_rows
    from tunedeck.engine.recipe import recipe_from_dict

    openai = with_bom(tmp_path / "openai.jsonl", [OPENAI_DOC_ROW, OPENAI_MULTI_TURN, OPENAI_NO_TOOLS])
    trl_rows = [{"prompt": r["input"]["messages"], "chosen": r["preferred_output"], "rejected": r["non_preferred_output"]}
                for r in (OPENAI_DOC_ROW, OPENAI_MULTI_TURN, OPENAI_NO_TOOLS)]  # fmt: skip
    trl = jsonl(tmp_path / "trl.jsonl", trl_rows)
    train, _ = prepare_splits(openai, method="dpo")
    reference, _ = prepare_splits(trl, method="dpo")
    assert train.column_names == ["prompt", "chosen", "rejected", "tools"]
    for key in ("prompt", "chosen", "rejected"):
        assert train[key] == reference[key]
        assert train.features[key] == reference.features[key]
    assert all(is_conversational(row) for row in train)
    demo, _ = prepare_splits(jsonl(tmp_path / "demo.jsonl", preference_rows()[:4]), method="dpo")
    assert {k: demo.features[k] for k in demo.column_names} == {k: train.features[k] for k in demo.column_names}
    recipe = recipe_from_dict({"model": {"name_or_path": "m"}, "data": {"train": openai}, "method": {"name": "dpo"}})
    from tunedeck.engine.data.prepare import check_data

    fmt, first = check_data(recipe)
    assert fmt == "preference" and [r for r, _ in roles(first[1]["prompt"])] == ["system", "user", "assistant", "user"]


@pytest.mark.parametrize(
    "rows, fmt",
    [
        ([OPENAI_DOC_ROW, OPENAI_NO_TOOLS], "preference"),
        ([{"instruction": "What is 3 plus 4?", "input": "", "output": "7"}] * 2, "alpaca"),
        ([{"instruction": "Summarize.", "context": "3 plus 4 is 7.", "response": "7.", "category": "summarization"}] * 2,
         "alpaca"),
        ([{"messages": [{"role": "user", "content": "3+4?"}, {"role": "assistant", "content": "7"}]}] * 2, "messages"),
        ([{"prompt": "3+4=", "chosen": "7", "rejected": "8"}] * 2, "preference"),
        ([{"text": "The sum of 3 and 4 is 7."}] * 2, "text"),
    ],
    ids=["openai-preference", "alpaca", "dolly", "messages", "trl-preference", "text"],
)
@pytest.mark.parametrize("array", [False, True], ids=["jsonl", "json-array"])
def test_a_byte_order_mark_is_read_past_in_every_format(tmp_path, rows, fmt, array):
    path = with_bom(tmp_path / ("bom.json" if array else "bom.jsonl"), rows, array=array)
    report = inspected(path)
    assert (report.format, report.valid, report.invalid) == (fmt, 2, 0)
    assert report.notes == [f"{path} starts with a UTF-8 byte-order mark (BOM); read past it"]
    ds, _ = load_normalized(path)
    assert len(ds) == 2 and "\ufeff" not in json.dumps(ds[0], ensure_ascii=False)


def test_alpaca_with_an_empty_instruction_is_prompted_by_its_input(tmp_path):
    """Unsloth Studio's sample dataset: most rows leave instruction empty and ask in input (LLaMA-Factory joins
    the non-empty parts). Only a row with neither has no prompt."""
    rows = [
        {"instruction": "", "input": "What is 3 plus 4?", "output": "7"},  # 1
        {"instruction": "Answer with a number.", "input": "What is 5 plus 6?", "output": "11"},  # 2
        {"instruction": "What is 1 plus 1?", "input": "", "output": "2"},  # 3
        {"instruction": "", "input": "", "output": "0"},  # 4: no prompt
        {"instruction": "  ", "output": "0"},  # 5: no prompt
        {"input": "What is 2 plus 2?", "output": "4"},  # 6: input alone
    ]
    path = jsonl(tmp_path / "studio.jsonl", rows)
    report = inspected(path)
    assert (report.format, report.valid, report.invalid) == ("alpaca", 4, 2)
    assert [(str(e.where), e.field, e.kind, e.reason) for e in report.errors] == [
        (f"{path}:4", "instruction", "empty", "empty, and so is input: the row has no prompt"),
        (f"{path}:5", "instruction", "empty", "empty: the row has no prompt"),
    ]
    good = jsonl(tmp_path / "good.jsonl", [r for i, r in enumerate(rows) if i not in (3, 4)])
    prompts = [r["messages"][0]["content"] for r in normalized(good)]
    assert prompts == ["What is 3 plus 4?", "Answer with a number.\n\nWhat is 5 plus 6?", "What is 1 plus 1?",
                       "What is 2 plus 2?"]  # fmt: skip


# databricks-dolly-15k's columns (instruction, context, response, category), as its dataset card describes them:
# the context is reference text for some categories (closed_qa, summarization), empty for others.
DOLLY = [
    {"instruction": "How many moons does Mars have?",
     "context": "Mars has two small moons, Phobos and Deimos, named after the sons of Ares.",
     "response": "Mars has two moons: Phobos and Deimos.", "category": "closed_qa"},
    {"instruction": "Which of these is a prime number: 9 or 7?", "context": "", "response": "7",
     "category": "classification"},
    {"instruction": "Why do leaves change colour in autumn?", "context": "",
     "response": "As days shorten, trees stop making chlorophyll and the yellow and red pigments show.",
     "category": "open_qa"},
]  # fmt: skip


def test_dolly_is_alpaca_with_its_context_in_the_prompt_and_its_category_unread(tmp_path):
    path = jsonl(tmp_path / "dolly.jsonl", DOLLY)
    report = inspected(path)
    assert (report.format, report.confidence, report.valid, report.invalid) == ("alpaca", 1.0, 3, 0)
    assert report.ignored == {"category": 3}
    assert report.warnings == ["ignored columns: category (3 rows); the alpaca format does not read them"]
    first, second, _ = normalized(path)
    assert roles(first["messages"]) == [
        ("user", "How many moons does Mars have?\n\n" + DOLLY[0]["context"]),
        ("assistant", DOLLY[0]["response"]),
    ]
    assert roles(second["messages"]) == [("user", "Which of these is a prime number: 9 or 7?"), ("assistant", "7")]
    bad = jsonl(tmp_path / "bad.jsonl", [{**DOLLY[0], "response": ""}, {**DOLLY[1], "instruction": ""}])
    report = inspected(bad)
    assert [(e.where.line, e.field, e.reason) for e in report.errors] == [
        (1, "response", "empty"), (2, "instruction", "empty, and so is context: the row has no prompt"),
    ]  # fmt: skip
