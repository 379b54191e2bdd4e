"""What a template leaves out of a row, and why a template refuses one, on real templates.

Real: llama.cpp's vendored templates (Hermes 3 tool_use, Mistral-Nemo, Gemma 2), the templates in llama.cpp's
own test-chat-template.cpp (DeepSeek-V2, ChatGLM3, Mistral-Large-2407's "v3" template, the format Mistral v0.3
uses) and TRL's Llama 3 training template. Not vendored anywhere offline, so written here from their model
cards' documented format: Zephyr (HuggingFaceH4/zephyr-7b-beta), ChatGLM2 ("[Round N]\\n\\n问：…\\n\\n答：…"),
Baichuan2 (<reserved_106> user, <reserved_107> assistant).
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest

from tunedeck.engine.templates.corpus import TOOLS, llama_cpp_sdist, vendored_templates
from tunedeck.engine.templates.drops import count_dropped, dropped_parts, drops_line
from tunedeck.engine.templates.render import TemplateRefused
from tunedeck.engine.templates.views import token_views

ZEPHYR = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
          "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
          "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
          "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")
CHATGLM2 = ("{% set ns = namespace(round=0) %}{% for message in messages %}{% if message['role'] == 'user' %}"
            "{% set ns.round = ns.round + 1 %}{{ '[Round ' ~ ns.round ~ ']\n\n问：' + message['content'] + '\n\n答：' }}"
            "{% elif message['role'] == 'assistant' %}{{ message['content'] + '\n\n' }}{% endif %}{% endfor %}")
BAICHUAN2 = ("{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% endif %}{% for message in messages %}"
             "{% if message['role'] == 'user' %}{{ '<reserved_106>' + message['content'] }}{% elif message['role'] == "
             "'assistant' %}{{ '<reserved_107>' + message['content'] }}{% endif %}{% endfor %}"
             "{% if add_generation_prompt %}{{ '<reserved_107>' }}{% endif %}")  # fmt: skip
MISTRAL_V3 = "Mistral-Large-Instruct-2407 (mistralai 'v3' template; modified to have system prompt at start)"
TRL_LLAMA3 = Path(__import__("trl").__file__).parent / "chat_templates" / "llama3_training.jinja"

CALL = {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo-7"}}}
SYSTEM = {"messages": [{"role": "system", "content": "SYSTEM you add numbers."},
                       {"role": "user", "content": "USER what is 3 plus 4?"},
                       {"role": "assistant", "content": "REPLY the sum is 7."}]}
TOOL_ROW = {"tools": TOOLS, "messages": [
    {"role": "user", "content": "USER weather in Oslo?"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": "TOOL sunny, 21 C"},
    {"role": "assistant", "content": "REPLY it is sunny."}]}  # fmt: skip


def llama_cpp_test_templates(sdist: Path) -> dict[str, str]:
    """{test case name: template} from llama.cpp's ``tests/test-chat-template.cpp`` in the sdist: the real
    templates of models whose format llama.cpp implements natively (ChatGLM3, DeepSeek-V2, Mistral v3, ...)."""
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar if m.name.endswith("/vendor/llama.cpp/tests/test-chat-template.cpp"))
        source = tar.extractfile(member).read().decode("utf-8")
    literal = r'(?:U8C\()?"((?:[^"\\]|\\.)*)"'
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "'": "'"}
    out = {}
    for m in re.finditer(r"/\* \.name= \*/ " + literal + r",\s*/\* \.template_str= \*/ " + literal, source):
        out[m.group(1)] = re.sub(r"\\(.)", lambda e: escapes.get(e.group(1), e.group(0)), m.group(2))
    return out


@pytest.fixture(scope="module")
def tokenizer(demo_assets):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_assets.base)


@pytest.fixture(scope="module")
def real() -> dict[str, str]:
    sdist = llama_cpp_sdist()
    return {**vendored_templates(sdist), **llama_cpp_test_templates(sdist), "trl-llama3": TRL_LLAMA3.read_text()}


def kinds(tokenizer, row, template) -> list[tuple[str, int]]:
    return [(d.kind, d.message) for d in dropped_parts(tokenizer, row, template)]


@pytest.mark.parametrize("name", [MISTRAL_V3, "mistralai-Mistral-Nemo-Instruct-2407"])
def test_mistral_v3_and_nemo_drop_the_system_message_when_the_row_ends_with_the_assistant(tokenizer, real, name):
    assert kinds(tokenizer, SYSTEM, real[name]) == [("system message", 0)]
    # ...and write it into the last user turn when the row ends with the user
    assert kinds(tokenizer, {"messages": SYSTEM["messages"][:2]}, real[name]) == []


def test_chatglm2_drops_the_system_message(tokenizer):
    assert kinds(tokenizer, SYSTEM, CHATGLM2) == [("system message", 0)]


@pytest.mark.parametrize("name", ["zephyr", "DeepSeek-V2", "baichuan2", "trl-llama3"])
def test_templates_that_never_write_tool_calls(tokenizer, real, name):
    template = {"zephyr": ZEPHYR, "baichuan2": BAICHUAN2}.get(name) or real[name]
    dropped = kinds(tokenizer, TOOL_ROW, template)
    assert ("tool calls", 1) in dropped
    assert not [k for k in dropped if k[0] in ("user message", "assistant text")]


def test_templates_that_write_the_calls_drop_nothing(tokenizer, real):
    for name in ("Qwen-Qwen3-0.6B", "Qwen3-Coder", "meta-llama-Llama-3.1-8B-Instruct", "NousResearch-Hermes-3-Llama-3.1-8B-tool_use"):
        assert kinds(tokenizer, TOOL_ROW, real[name]) == [], name  # Qwen3-Coder writes each argument as XML


def test_a_template_that_writes_the_name_but_not_the_arguments(tokenizer):
    names_only = ("{% for m in messages %}{{ m.role }}: {{ m.content }}{% for c in m.tool_calls or [] %}"
                  "<call>{{ c.function.name }}</call>{% endfor %}\n{% endfor %}")  # fmt: skip
    assert kinds(tokenizer, TOOL_ROW, names_only) == [("tool-call arguments", 1)]


def test_counts_name_an_example_row(tokenizer, real):
    rows = [("d.jsonl:1", TOOL_ROW), ("d.jsonl:2", SYSTEM), ("d.jsonl:3", SYSTEM)]
    counts = count_dropped(tokenizer, rows, real[MISTRAL_V3])
    assert counts == {"system message": {"rows": 2, "example": "d.jsonl:2"}}
    assert drops_line(counts) == ("template drops: system message in 2 rows (e.g. d.jsonl:2): "
                                  "a model trained on them never sees these")  # fmt: skip


def refusal(tokenizer, row, template) -> str:
    with pytest.raises(TemplateRefused) as e:
        token_views(tokenizer, row, template)
    return str(e.value)


def test_a_tool_use_template_without_tools_says_it_iterates_over_tools(tokenizer, real):
    plain = {"messages": SYSTEM["messages"][1:]}
    for name in ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "CohereForAI-c4ai-command-r-plus-tool_use"):
        assert refusal(tokenizer, plain, real[name]) == (
            "TypeError: 'NoneType' object is not iterable: this template iterates over `tools`; the row has none: "
            "add a tools column or choose the model's default template (template.name: model) or a built-in"
        )


def test_raise_exception_is_quoted_as_the_templates_own_rule(tokenizer, real):
    assert refusal(tokenizer, SYSTEM, real["google-gemma-2-2b-it"]) == (
        'the template raises "System role not supported": its own rule, which this row breaks '
        "(roles: system → user → assistant)"
    )
    assert refusal(tokenizer, TOOL_ROW, real["google-gemma-2-2b-it"]).startswith(
        'the template raises "Conversation roles must alternate user/assistant/user/assistant/...": its own rule, '
        "which this row breaks (roles: user → assistant → tool → assistant)"
    )


def test_undefined_variables_name_what_the_template_reads(tokenizer, real):
    plain = {"messages": SYSTEM["messages"][1:]}
    assert "the template reads `functions`, which no row field provides" in refusal(
        tokenizer, plain, real["fireworks-ai-llama-3-firefunction-v2"]
    )
    assert "the template reads `tool.description`; the row's tools do not have it" in refusal(
        tokenizer, TOOL_ROW, real["CohereForAI-c4ai-command-r-plus-tool_use"]
    )
    vlm = (TRL_LLAMA3.parent / "llava_next_training.jinja").read_text()
    assert "expects each message's content as a list of parts" in refusal(tokenizer, plain, vlm)


def test_tool_call_arguments_as_an_object_where_the_template_wants_a_json_string(tokenizer):
    deepseek = (TRL_LLAMA3.parent / "deepseekv3.jinja").read_text()
    assert refusal(tokenizer, TOOL_ROW, deepseek).endswith(
        "the template joins tool-call `arguments` to text: it expects them as a JSON string; this row's are an object"
    )
