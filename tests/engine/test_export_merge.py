"""Adapter-only export (PEFT safetensors) and the merged model as sharded safetensors, both reloaded."""

import json
from pathlib import Path

import pytest

from tests.helpers import make_lora_run

pytestmark = pytest.mark.slow


@pytest.fixture
def run(demo_assets, tmp_path):
    from tunedeck.engine.run.rundir import RunDir

    return RunDir(make_lora_run(demo_assets, tmp_path))


def _logits(model_or_dir, ids):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_or_dir) if isinstance(model_or_dir, (str, Path)) else model_or_dir
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def test_merged_model_is_sharded_and_reloads_with_the_adapter_applied(run, demo_assets):
    import numpy as np

    from tunedeck.engine.export.merge import adapter_logits, describe_model_dir, merge_run

    merged = merge_run(run, max_shard_size="1MB")
    info = describe_model_dir(merged)
    assert len(info["shards"]) >= 4 and info["index"]
    index = json.loads((merged / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(info["shards"])
    ids = [1, 88, 86, 72, 85, 202, 276, 262]
    with_adapter = adapter_logits(str(demo_assets.base), run.adapter, ids)
    base = _logits(demo_assets.base, ids)
    assert np.abs(with_adapter - base).max() > 0.1  # the adapter changes the model ...
    assert np.abs(_logits(merged, ids) - with_adapter).max() < 1e-3  # ... and the merged shards carry the change


def test_adapter_export_is_the_peft_adapter_with_its_tokenizer(run, demo_assets, tmp_path):
    import numpy as np

    from tunedeck.engine.export.merge import adapter_logits, export_adapter

    info = export_adapter(run, run.path / "export" / "adapter")
    dest = Path(info["path"])
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(info["files"])
    assert info["peft_type"] == "LORA" and info["r"] == 8 and info["base_model"] == str(demo_assets.base)
    ids = [1, 88, 86, 72]
    assert np.allclose(adapter_logits(str(demo_assets.base), dest, ids), adapter_logits(str(demo_assets.base), run.adapter, ids))


def test_adapter_export_names_what_is_missing(run):
    from tunedeck.engine.export.merge import export_adapter

    (run.adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="adapter_model.safetensors"):
        export_adapter(run, run.path / "export" / "adapter")
