"""Adapter-only export (PEFT safetensors) and the merged model as sharded safetensors, both reloaded."""

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def make_run(assets, workspace: Path, run_id: str = "20260101-000000-sft-test", **export) -> Path:
    """A finished LoRA run without the training: a randomly initialised (non-zero) adapter on the demo base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.demo import demo_recipe
    from engine.runs import RunDir

    run = RunDir(workspace / "runs" / run_id)
    run.path.mkdir(parents=True)
    recipe = demo_recipe(assets)
    recipe.train.runs_dir = str(workspace / "runs")
    for key, value in export.items():
        setattr(recipe.export, key, value)
    recipe.save(run.recipe_path)
    (workspace / "eval.jsonl").write_text("".join(assets.eval.read_text().splitlines(keepends=True)[:20]))
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(assets.base),
        LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False),
    )
    model.save_pretrained(run.adapter)
    AutoTokenizer.from_pretrained(assets.base).save_pretrained(run.adapter)
    run.write_status(state="finished", step=1, max_steps=1)
    return run.path


@pytest.fixture
def run(demo_assets, tmp_path):
    from engine.runs import RunDir

    return RunDir(make_run(demo_assets, tmp_path))


def _logits(model_or_dir, ids):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_or_dir) if isinstance(model_or_dir, (str, Path)) else model_or_dir
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def test_merged_model_is_sharded_and_reloads_with_the_adapter_applied(run, demo_assets):
    import numpy as np

    from engine.export.merge import adapter_logits, describe_model_dir, merge_run

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

    from engine.export.merge import adapter_logits, export_adapter

    info = export_adapter(run, run.path / "export" / "adapter")
    dest = Path(info["path"])
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(info["files"])
    assert info["peft_type"] == "LORA" and info["r"] == 8 and info["base_model"] == str(demo_assets.base)
    ids = [1, 88, 86, 72]
    assert np.allclose(adapter_logits(str(demo_assets.base), dest, ids), adapter_logits(str(demo_assets.base), run.adapter, ids))


def test_adapter_export_names_what_is_missing(run):
    from engine.export.merge import export_adapter

    (run.adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="adapter_model.safetensors"):
        export_adapter(run, run.path / "export" / "adapter")
