"""Template, EOS and stop parity: a faithful conversion passes; broken ones fail naming the token or string."""

import json
import shutil
from pathlib import Path

import pytest

from tunedeck.engine.export.parity import ParityError, check_metadata, check_stop, expected_template, raise_for

pytestmark = pytest.mark.slow

PROBES = [[{"role": "user", "content": "What is 12 plus 13?"}], [{"role": "user", "content": "Add 3 and 4."}]]


@pytest.fixture(scope="module")
def tokenizer(demo_assets):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_assets.base)


@pytest.fixture(scope="module")
def template(tokenizer):
    text, stripped = expected_template(tokenizer, PROBES)
    assert stripped and "{%- generation" not in text  # llama.cpp's server and Ollama do not know the tag
    return text


def convert(model_dir: Path, out: Path, template: str, **kwargs) -> Path:
    from tunedeck.engine.export.gguf import convert_to_gguf

    convert_to_gguf(model_dir, out, "f32", kwargs.pop("pre", None), {"tokenizer.chat_template": template, **kwargs})
    return out


@pytest.fixture(scope="module")
def faithful(demo_assets, template, tmp_path_factory) -> Path:
    return convert(demo_assets.base, tmp_path_factory.mktemp("faithful") / "m.F32.gguf", template)


def broken_copy(base: Path, dest: Path, **tokenizer_config) -> Path:
    shutil.copytree(base, dest)
    cfg = json.loads((dest / "tokenizer_config.json").read_text())
    cfg.update(tokenizer_config)
    (dest / "tokenizer_config.json").write_text(json.dumps(cfg))
    return dest


def test_a_faithful_conversion_passes_every_check(faithful, tokenizer, template):
    report, problems = check_metadata(faithful, tokenizer, [tokenizer.eos_token_id], template, PROBES)
    assert problems == []
    assert report["chat_template"]["equal"]
    assert report["eos"]["gguf"] == {"id": tokenizer.eos_token_id, "token": "<|im_end|>"}
    assert {"id": tokenizer.eos_token_id, "token": "<|im_end|>"} in report["eog"]
    assert report["render"]["conversations"] == report["render"]["equal"] >= 4
    assert report["tokenization"]["texts"] == report["tokenization"]["equal"] >= 4
    assert report["add_bos"] == {"hf": False, "gguf": False}


def test_a_broken_template_fails_naming_the_string(tokenizer, template, tmp_path):
    broken = template.replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant: '")
    assert broken != template
    gguf = convert(Path(tokenizer.name_or_path), tmp_path / "broken.F32.gguf", broken)
    _, problems = check_metadata(gguf, tokenizer, [tokenizer.eos_token_id], template, PROBES)
    checks = {p.check for p in problems}
    assert {"chat_template", "render"} <= checks
    render = next(p for p in problems if p.check == "render")
    assert "assistant: " in render.message and "assistant\\n" in render.message  # both strings, side by side
    with pytest.raises(ParityError) as err:
        raise_for(gguf, problems, fix_allowed=False)
    assert "tokenizer.chat_template differs" in str(err.value) and "--fix-metadata" in str(err.value)


def test_a_wrong_eos_fails_naming_both_tokens(demo_assets, tokenizer, template, tmp_path):
    model = broken_copy(demo_assets.base, tmp_path / "model", eos_token="<|endoftext|>")
    gguf = convert(model, tmp_path / "wrong-eos.F32.gguf", template)
    report, problems = check_metadata(gguf, tokenizer, [tokenizer.eos_token_id], template, PROBES)
    eos = next(p for p in problems if p.check == "eos")
    assert "'<|endoftext|>' (id 0)" in eos.message and "'<|im_end|>' (id 2)" in eos.message
    assert eos.fix == {"tokenizer.ggml.eos_token_id": tokenizer.eos_token_id}


def test_fix_metadata_writes_the_hf_values_and_then_passes(demo_assets, tokenizer, template, tmp_path):
    model = broken_copy(demo_assets.base, tmp_path / "model", eos_token="<|endoftext|>")
    broken = template.replace("<|im_start|>", "<|im_start|> ")
    gguf = convert(model, tmp_path / "m.F32.gguf", broken)
    _, problems = check_metadata(gguf, tokenizer, [tokenizer.eos_token_id], template, PROBES)
    assert problems and all(p.fix for p in problems)
    fixes = {k: v for p in problems for k, v in p.fix.items()}
    convert(model, gguf, template, **fixes)
    report, problems = check_metadata(gguf, tokenizer, [tokenizer.eos_token_id], template, PROBES)
    assert problems == [] and report["eos"]["gguf"]["token"] == "<|im_end|>"


def test_a_wrong_pre_tokenizer_fails_on_the_first_differing_token(demo_assets, tokenizer, template, tmp_path):
    gguf = convert(demo_assets.base, tmp_path / "qwen2-pre.F32.gguf", template, pre="qwen2")
    _, problems = check_metadata(gguf, tokenizer, [tokenizer.eos_token_id], template, PROBES)
    tokens = [p for p in problems if p.check == "tokens"]
    assert tokens and not any(p.fix for p in tokens)  # metadata cannot fix a pre-tokenizer
    assert "'Ġ12'" in tokens[0].message and "'qwen2'" in tokens[0].message and "export.pre_tokenizer" in tokens[0].message
    with pytest.raises(ParityError, match="cannot correct"):
        raise_for(gguf, problems, fix_allowed=True)


def test_generation_that_does_not_stop_where_hf_stops_fails(faithful, tokenizer):
    """HF stopped after 3 tokens; llama.cpp's reply (the base's habit answer, 5 tokens or more before its stop)
    is still running at a 4-token limit: a reply that does not stop where the HF one did."""
    hf = [{"stopped": True, "tokens": [5, 6, tokenizer.eos_token_id], "text": ""} for _ in PROBES]
    report, problems = check_stop(faithful, tokenizer, PROBES, hf, max_tokens=4)
    assert report["hf_stopped"] == 2 and report["gguf_stopped"] == 0
    assert problems and problems[0].check == "stop"
    assert "'<|im_end|>' after 3 tokens" in problems[0].message and "4-token limit" in problems[0].message


def test_a_reply_that_took_another_path_is_not_blamed_on_the_stop_token(faithful, tokenizer):
    hf = [{"stopped": True, "tokens": [5, tokenizer.eos_token_id], "text": "something else entirely"} for _ in PROBES]
    report, problems = check_stop(faithful, tokenizer, PROBES, hf, max_tokens=4)
    assert problems == [] and report["diverged"] == 2


def test_stop_is_not_judged_when_hf_does_not_stop_either(faithful, tokenizer):
    report, problems = check_stop(faithful, tokenizer, PROBES, [{"stopped": False, "tokens": [5], "text": ""}] * 2, 8)
    assert problems == [] and report["note"].startswith("not judged")
