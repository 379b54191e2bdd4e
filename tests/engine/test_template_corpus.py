"""Assistant-only masks on llama.cpp's vendored chat templates (the llama-cpp-python sdist `make install` keeps).

Every template, five conversations (single turn, system, multi-turn, tools, reasoning): the mask derived
from the template covers every assistant reply and no system, user or tool text, or the template is
refused with a reason. Never a wrong mask: no template may train text that is not the assistant's.
"""

from __future__ import annotations

import pytest

from tunedeck.engine.templates import BUILTIN_TEMPLATES, FAMILY_TEMPLATES, strip_generation_markers
from tunedeck.engine.templates.corpus import (
    CONVERSATIONS,
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


def test_the_built_ins_pass_the_same_check(tokenizer):
    for name, text in BUILTIN_TEMPLATES.items():
        result = check_template(tokenizer, strip_generation_markers(text), bos_token="<s>", eos_token="</s>")
        assert result["handled"], (name, result["reason"])
        assert set(result["accepted"]) >= {"single", "multi"} and set(CONVERSATIONS) >= set(result["accepted"])


def test_family_built_ins_are_the_real_templates_byte_for_byte(templates):
    for name, source in FAMILY_TEMPLATES.items():
        assert BUILTIN_TEMPLATES[name] == templates[source], f"engine/chat_templates/{name}.jinja differs from {source}"
