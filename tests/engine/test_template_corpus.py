"""Assistant-only masks on llama.cpp's vendored chat templates (the llama-cpp-python sdist `make install` keeps).

Every template, six conversations (single turn, system, multi-turn, tools, two rounds of tool calls under a
system prompt, reasoning): the mask derived from the template covers every assistant reply and no system, user
or tool text, or the template is refused with a reason. Never a wrong mask: no template may train text that is not the assistant's.
"""

from __future__ import annotations

import pytest

from tunedeck.engine.templates import (
    BUILTIN_TEMPLATES,
    FAMILY_TEMPLATES,
    assistant_spans,
    chat_render,
    strip_generation_markers,
)
from tunedeck.engine.templates.corpus import (
    CONVERSATIONS,
    TOOLS,
    check_template,
    coverage,
    llama_cpp_sdist,
    vendored_templates,
)

GOAL = 0.90


@pytest.fixture(scope="module")
def templates() -> dict[str, str]:
    sdist = llama_cpp_sdist()
    assert sdist and sdist.is_file(), (
        "the llama-cpp-python sdist is not in the wheelhouse: `make install` (make llama-wheel) downloads it, "
        "or point TUNEDECK_LLAMA_SDIST at llama_cpp_python-0.3.36.tar.gz"
    )
    found = vendored_templates(sdist)
    assert len(found) >= 60, f"only {len(found)} templates in {sdist}"
    return found


@pytest.fixture(scope="module")
def tokenizer(demo_assets):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_assets.base)


def test_at_least_90_percent_of_real_templates_get_a_right_mask_and_none_a_wrong_one(tokenizer, templates):
    cov = coverage(tokenizer, templates)
    assert cov["share"] >= GOAL, cov["refused"]
    for name, result in cov["results"].items():
        for conversation, r in result["conversations"].items():
            assert not [p for p in r["problems"] if "is trained" in p], (name, conversation, r)
    assert all(reason for reason in cov["refused"].values())
    assert cov["derived_by"]["rewritten"], "no template needed the turn-by-turn handling: the corpus changed?"


@pytest.mark.parametrize("family", ["Qwen-Qwen3-0.6B", "meta-llama-Llama-3.1-8B-Instruct", "google-gemma-2-2b-it",
                                    "mistralai-Mistral-Nemo-Instruct-2407", "openai-gpt-oss-120b"])  # fmt: skip
def test_popular_families_are_handled(tokenizer, templates, family):
    result = check_template(tokenizer, templates[family], bos_token="<s>", eos_token="</s>")
    assert result["handled"], result["reason"]


@pytest.mark.parametrize(
    ("family", "opening", "end_of_turn"),
    [
        ("mistralai-Mistral-Nemo-Instruct-2407", "[TOOL_CALLS]", "</s>"),  # the system prompt moves: turns rewritten
        ("Mistral-Small-3.2-24B-Instruct-2506", "[TOOL_CALLS]", "</s>"),
        ("unsloth-mistral-Devstral-Small-2507", "[TOOL_CALLS]", "</s>"),
        ("deepseek-ai-DeepSeek-V3.1", "<｜tool▁calls▁begin｜>", "<｜end▁of▁sentence｜>"),
        # its second call opens with "\n<｜tool▁call▁begin｜>" (the template never resets its first-call flag)
        ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "<｜tool▁call", "<｜end▁of▁sentence｜>"),
    ],
)
def test_tool_calls_are_trained_from_their_opening_through_their_end_of_turn(tokenizer, templates, family, opening,
                                                                           end_of_turn):  # fmt: skip
    """A turn that only calls a tool is found by its rendered call, also where the template rewrites earlier turns,
    and trained from the call's own opening marker through its end-of-turn, never left with a "not trained" note."""
    render = chat_render(tokenizer, templates[family], TOOLS, bos_token="<s>", eos_token="</s>")
    spans = assistant_spans(render, CONVERSATIONS["tool-rounds"])
    assert not [n for n in spans.notes if "not trained" in n], spans.notes
    for city in ("Oslo-7", "Bergen-3"):
        at = spans.text.find(city)
        [(a, b)] = [(a, b) for a, b in spans.spans if a <= at < b]
        call = spans.text[a:b]
        assert call.lstrip().startswith(opening) and "get_weather" in call and call.endswith(end_of_turn), (family, call)
        assert "TOOL-" not in call and "USER-" not in call and "SYSTEM-" not in call


def test_the_built_ins_pass_the_same_check(tokenizer):
    for name, text in BUILTIN_TEMPLATES.items():
        result = check_template(tokenizer, strip_generation_markers(text), bos_token="<s>", eos_token="</s>")
        assert result["handled"], (name, result["reason"])
        assert set(result["accepted"]) >= {"single", "multi"} and set(CONVERSATIONS) >= set(result["accepted"])


def test_family_built_ins_are_the_real_templates_byte_for_byte(templates):
    for name, source in FAMILY_TEMPLATES.items():
        assert BUILTIN_TEMPLATES[name] == templates[source], f"engine/chat_templates/{name}.jinja differs from {source}"
