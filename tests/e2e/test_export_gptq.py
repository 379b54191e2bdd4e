"""GPTQ through GPTQModel on CPU (needs the extra: pip install 'tunedeck[gptq]'); AWQ's CPU message."""

import importlib.util
from pathlib import Path

import pytest

from tests.helpers import make_lora_run as make_run

pytestmark = pytest.mark.slow
HAS_EXTRA = all(importlib.util.find_spec(m) is not None for m in ("gptqmodel", "optimum"))


@pytest.mark.skipif(not HAS_EXTRA, reason="GPTQ needs the optional extra: pip install 'tunedeck[gptq]'")
def test_gptq_export_is_calibrated_on_the_run_and_loads_back_in_transformers(demo_assets, tmp_path):
    from tunedeck.engine.export.pipeline import export_run
    from tunedeck.engine.run.rundir import RunDir

    run = RunDir(make_run(demo_assets, tmp_path, fidelity_texts=8, calibration_rows=32))
    report = export_run(run, ["Q8_0"], overrides={"hf_quant": ["gptq", "awq"], "adapter": False})
    (gptq,) = report["hf_quant"]
    assert gptq["method"] == "gptq" and gptq["bits"] == 4 and gptq["calibration_texts"] == 32
    folder = Path(gptq["path"])
    assert (folder / "quantize_config.json").is_file() and list(folder.glob("*.safetensors"))
    assert gptq["verify"]["loaded"]
    fid = gptq["fidelity"]
    assert fid["top1_agreement"] >= 0.8 and fid["perplexity_hf"] == report["reference"]["perplexity"]
    q8 = report["files"][0]["fidelity"]
    assert fid["mean_kl"] >= q8["mean_kl"]  # 4-bit GPTQ is further from the float model than Q8_0
    import torch

    if not torch.cuda.is_available():
        (awq,) = report["unavailable"]
        assert awq["type"] == "AWQ" and "CUDA" in awq["reason"]


def test_without_the_extra_the_reason_names_the_install_command():
    from tunedeck.engine.export.hfquant import HFQuantUnavailable, availability, quantize_hf

    if HAS_EXTRA:
        pytest.skip("the extra is installed")
    for method in ("gptq", "awq"):
        assert "pip install 'tunedeck[gptq]'" in availability(method)
    with pytest.raises(HFQuantUnavailable, match="tunedeck\\[gptq\\]"):
        quantize_hf("gptq", Path("unused"), Path("unused"), ["text"])
