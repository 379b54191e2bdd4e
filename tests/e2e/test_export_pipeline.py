"""`tunedeck export`: every file it writes comes with proof of fidelity, or the export fails saying why."""

import json
from pathlib import Path

import pytest

from tests.helpers import make_lora_run as make_run
from tests.helpers import tunedeck

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(demo_assets, tmp_path_factory):
    workspace = tmp_path_factory.mktemp("ws")
    run = make_run(demo_assets, workspace)
    proc = tunedeck(
        "export", run.name, "--quant", "F16,Q4_K_M,IQ2_XS", "--max-shard-size", "1MB", "--hf-quant", "gptq,awq",
        "--checks", "full", cwd=workspace, check=True,
    )  # fmt: skip
    return run, json.loads((run / "export-report.json").read_text()), proc


def test_every_file_has_a_fidelity_report(exported):
    run, report, proc = exported
    assert report["ok"] and [f["type"] for f in report["files"]] == ["F16", "Q4_K_M", "IQ2_XS"]
    assert report["checks"]["level"] == "full" and report["checks"]["not_covered"] == []
    assert any("task accuracy on 20 eval rows" in c for c in report["checks"]["covered"])
    ref = report["reference"]
    assert ref["texts"] == 20 and ref["perplexity"] > 1 and ref["accuracy"] is not None
    assert "eval.jsonl" in ref["source"]
    for f in report["files"]:
        fid = f["fidelity"]
        assert fid["perplexity"] > 1 and fid["perplexity_hf"] == ref["perplexity"]
        assert 0 <= fid["top1_agreement"] <= 1 and fid["mean_kl"] >= 0 and fid["tokens"] > 100
        assert fid["accuracy"] is not None and fid["accuracy_hf"] == ref["accuracy"]
        assert f["size_bytes"] == Path(f["path"]).stat().st_size and f["bits_per_weight"] > 0
        assert f["fallback_tensors"] == [] and f["verify"]["loaded"]
    f16, q4, iq2 = report["files"]
    assert f16["fidelity"]["top1_agreement"] >= 0.99 and f16["fidelity"]["mean_kl"] < 1e-3
    assert f16["bits_per_weight"] > q4["bits_per_weight"] > iq2["bits_per_weight"]
    assert iq2["imatrix"] and not q4["imatrix"] and report["imatrix"]["mapped"] == 15
    assert "training rows" in report["imatrix"]["source"]


def test_parity_was_proved_and_modelfiles_match(exported):
    run, report, _ = exported
    parity = report["parity"]
    assert parity["ok"] and parity["chat_template"]["equal"] and parity["generation_markers_removed"]
    assert parity["render"]["conversations"] == parity["render"]["equal"] > 0
    assert parity["tokenization"]["texts"] == parity["tokenization"]["equal"] > 0
    assert parity["eos"]["gguf"]["token"] == "<|im_end|>"
    for f in report["files"]:
        mf = f["modelfile"]
        assert mf["matches"] and mf["stops"] == ["<|im_end|>"]
        text = Path(mf["path"]).read_text()
        assert text.startswith(f"FROM ./{Path(f['path']).name}\n") and 'PARAMETER stop "<|im_end|>"' in text


def test_adapter_and_sharded_merged_model_are_exported(exported):
    run, report, _ = exported
    adapter = report["adapter"]
    assert (Path(adapter["path"]) / "adapter_model.safetensors").is_file()
    assert adapter["verify"]["max_abs_logit_diff"] < 1e-3 and adapter["verify"]["top1_agreement"] == 1.0
    merged = report["merged"]
    assert len(merged["shards"]) >= 4 and merged["index"] and merged["loads"]


def test_gptq_and_awq_are_reported_as_unavailable_with_the_fix(exported):
    _, report, _ = exported
    pytest.importorskip("torch")
    import importlib.util

    if importlib.util.find_spec("gptqmodel") is not None:
        pytest.skip("gptqmodel is installed: tests/e2e/test_export_gptq.py covers it")
    reasons = {u["type"]: u["reason"] for u in report["unavailable"]}
    assert set(reasons) == {"GPTQ", "AWQ"} and all("tunedeck[gptq]" in r for r in reasons.values())


def test_cli_prints_the_fidelity_table(exported):
    _, report, proc = exported
    assert proc.stdout.splitlines()[0].split()[:4] == ["type", "size", "bpw", "ppl"]
    assert "IQ2_XS" in proc.stdout and "parity: chat template equal" in proc.stdout
    assert "GPTQ" in proc.stdout and "unavailable" in proc.stdout
    assert "checks: full, " in proc.stdout and "held-out: 20 texts" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_quick_checks_sample_to_a_budget_and_still_see_a_quant_lose_agreement(demo_assets, tmp_path):
    """The default: the same kinds of check on fewer tokens; Q2_K's lower top-1 agreement still shows."""
    from tunedeck.engine.export.checks import QUICK_TOKENS

    run = make_run(demo_assets, tmp_path)
    proc = tunedeck("export", run.name, "--quant", "F16,Q2_K", "--no-adapter", cwd=tmp_path, check=True)
    report = json.loads((run / "export-report.json").read_text())
    checks = report["checks"]
    assert checks["level"] == "quick" and checks["devices"] == {"reference": "cpu", "llama_cpp": "cpu"}
    assert report["parity"]["ok"] and report["parity"]["render"]["equal"] == report["parity"]["render"]["conversations"] > 0
    assert report["parity"]["stop"]["hf_stopped"] == report["parity"]["stop"]["gguf_stopped"] > 0
    assert any("task accuracy on the eval rows (--checks full)" in m for m in checks["not_covered"])
    assert "accuracy" not in report["reference"]
    f16, q2 = report["files"]
    for f in (f16, q2):
        assert 100 < f["fidelity"]["tokens"] <= QUICK_TOKENS and f["fidelity"]["accuracy"] is None
        assert f["verify"]["replies"] > 0 and f["verify"]["stopped"] is not None
    assert f16["fidelity"]["top1_agreement"] >= 0.99 and f16["verify"]["stopped"]
    assert q2["fidelity"]["top1_agreement"] < f16["fidelity"]["top1_agreement"] and q2["fidelity"]["mean_kl"] > 10 * f16["fidelity"]["mean_kl"]
    assert "checks: quick, " in proc.stdout and "not covered: task accuracy" in proc.stdout


def test_no_checks_writes_the_files_and_says_nothing_was_checked(demo_assets, tmp_path):
    run = make_run(demo_assets, tmp_path)
    proc = tunedeck("export", run.name, "--quant", "Q8_0", "--checks", "none", "--no-adapter", cwd=tmp_path, check=True)
    report = json.loads((run / "export-report.json").read_text())
    assert report["ok"] and report["checks"]["level"] == "none" and report["checks"]["covered"] == []
    assert "parity" not in report and set(report["seconds"]) == {"merge", "samples", "convert", "quantize_Q8_0"}
    (q8,) = report["files"]
    assert Path(q8["path"]).is_file() and "fidelity" not in q8 and q8["modelfile"]["stops"] == ["<|im_end|>"]
    assert any("without checking them" in w for w in report["warnings"])
    assert "checks: none" in proc.stdout and "parity: not checked" in proc.stdout


def test_a_wrong_pre_tokenizer_fails_the_export_with_the_tokens(demo_assets, tmp_path):
    run = make_run(demo_assets, tmp_path, pre_tokenizer="qwen2", fidelity_texts=4)
    proc = tunedeck("export", run.name, "--quant", "Q8_0", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "llama.cpp tokenizes conversation" in proc.stderr and "export.pre_tokenizer" in proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads((run / "export-report.json").read_text())
    assert report["ok"] is False and "tokenizes" in report["error"]
    assert not list((run / "gguf").glob("*.gguf"))  # nothing unproven is left behind


def test_json_output_is_the_report(demo_assets, tmp_path):
    run = make_run(demo_assets, tmp_path, eval_rows=0, fidelity_texts=4)
    proc = tunedeck("export", run.name, "--quant", "Q8_0", "--no-adapter", "--json", cwd=tmp_path, check=True)
    report = json.loads(proc.stdout)
    assert report == json.loads((run / "export-report.json").read_text())
    assert "adapter" not in report and report["files"][0]["fidelity"]["accuracy"] is None


def test_fix_metadata_corrects_a_converter_that_writes_the_wrong_eos(demo_assets, tmp_path, monkeypatch):
    """The converter is made to write EOS <|endoftext|>: the export fails, unless asked to correct it."""
    import tunedeck.engine.export.gguf as gguf_mod
    from tunedeck.engine.export.errors import ExportError
    from tunedeck.engine.export.gguf import read_metadata
    from tunedeck.engine.export.pipeline import export_run
    from tunedeck.engine.run.rundir import RunDir

    real = gguf_mod.convert_to_gguf

    def wrong_eos(model_dir, out, outtype="f32", pre=None, metadata=None):
        return real(model_dir, out, outtype, pre, {"tokenizer.ggml.eos_token_id": 0, **(metadata or {})})

    monkeypatch.setattr(gguf_mod, "convert_to_gguf", wrong_eos)
    run = RunDir(make_run(demo_assets, tmp_path, eval_rows=0, fidelity_texts=4))
    with pytest.raises(ExportError, match=r"EOS is '<\|endoftext\|>' \(id 0\) but the HF model ends replies with '<\|im_end\|>' \(id 2\)"):
        export_run(run, ["Q8_0"])
    report = export_run(run, ["Q8_0"], overrides={"fix_metadata": True})
    assert report["parity"]["fixed"][0]["set"] == ["tokenizer.ggml.eos_token_id"]
    assert read_metadata(Path(report["files"][0]["path"]))["tokenizer.ggml.eos_token_id"] == 2


def test_no_held_out_texts_still_exports_and_says_nothing_was_scored(demo_assets, tmp_path):
    run = make_run(demo_assets, tmp_path, fidelity_texts=0, eval_rows=0)
    tunedeck("export", run.name, "--quant", "Q8_0", "--no-adapter", cwd=tmp_path, check=True)
    report = json.loads((run / "export-report.json").read_text())
    (q8,) = report["files"]
    assert report["ok"] and report["reference"]["texts"] == 0 and report["parity"]["ok"]
    assert q8["fidelity"]["tokens"] == 0 and q8["fidelity"]["top1_agreement"] is None


def test_quick_checks_fail_a_gguf_whose_chat_template_differs(demo_assets, tmp_path, monkeypatch):
    """The converter is made to write another chat template: the default (quick) export fails and names it."""
    import tunedeck.engine.export.gguf as gguf_mod
    from tunedeck.engine.export.errors import ExportError
    from tunedeck.engine.export.pipeline import export_run
    from tunedeck.engine.run.rundir import RunDir

    real = gguf_mod.convert_to_gguf
    other = "{% for m in messages %}{{ m['content'] }}{% endfor %}"

    def wrong_template(model_dir, out, outtype="f32", pre=None, metadata=None):
        return real(model_dir, out, outtype, pre, {**(metadata or {}), "tokenizer.chat_template": other})

    monkeypatch.setattr(gguf_mod, "convert_to_gguf", wrong_template)
    run = RunDir(make_run(demo_assets, tmp_path, eval_rows=0, fidelity_texts=4))
    with pytest.raises(ExportError, match="tokenizer.chat_template differs from the HF tokenizer's"):
        export_run(run, ["Q8_0"])
    report = json.loads(run.export_report.read_text())
    assert report["options"]["checks"] == "quick" and not list(run.gguf.glob("*.gguf"))


# Templates written for ChatML tokens, which the demo tokenizer has (SmolLM3's default system prompt
# alone is longer than the demo model's context: the reply checks skip what does not fit, and say so).
@pytest.mark.parametrize("name", ["Qwen-Qwen2.5-7B-Instruct", "Qwen-Qwen3-0.6B", "Qwen3.5-4B", "HuggingFaceTB-SmolLM3-3B"])
def test_a_real_models_own_template_keeps_parity_in_the_gguf(demo_assets, tmp_path, name):
    """A model whose template is a real one, from llama.cpp's vendored corpus (thinking blocks, tools, turns
    rewritten once later ones follow): the GGUF embeds it unchanged and llama.cpp renders every probe
    conversation as the HF tokenizer does."""
    from transformers import AutoTokenizer

    from tunedeck.engine.templates.corpus import llama_cpp_sdist, vendored_templates

    run = make_run(demo_assets, tmp_path, eval_rows=0, fidelity_texts=4)
    tokenizer = AutoTokenizer.from_pretrained(run / "adapter")
    tokenizer.chat_template = vendored_templates(llama_cpp_sdist())[name]
    tokenizer.save_pretrained(run / "adapter")
    proc = tunedeck("export", run.name, "--quant", "Q8_0", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    parity = report["parity"]
    assert parity["ok"] and parity["chat_template"]["equal"] and not parity["generation_markers_removed"]
    assert parity["render"]["conversations"] == parity["render"]["equal"] > 0, parity["render"]
    assert parity["eos"]["gguf"]["token"] == "<|im_end|>"
    if name == "HuggingFaceTB-SmolLM3-3B":
        assert any("do not fit the 256-token context" in w for w in report["warnings"]), report["warnings"]
    else:
        assert parity["stop"]["hf_stopped"] == parity["stop"]["gguf_stopped"] > 0, parity["stop"]
