"""Adapter -> full model (safetensors), ready for conversion or for transformers users."""

from __future__ import annotations

import os
import shutil

from engine.recipe import load_recipe
from engine.runs import RunDir


def merge_run(run: RunDir, max_shard_size: str = "2GB"):
    """Write run/merged (adapter merged into the base in float32); return its path."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = load_recipe(run.recipe_path)
    if recipe.adapter.kind == "full":
        if not (run.model / "config.json").exists():
            raise FileNotFoundError(f"{run.model}: the run has no trained model (state: {run.state()})")
        return run.model
    if not (run.adapter / "adapter_config.json").exists():
        raise FileNotFoundError(f"{run.adapter}: the run has no trained adapter (state: {run.state()})")
    base = AutoModelForCausalLM.from_pretrained(
        recipe.model.name_or_path,
        dtype=torch.float32,  # merge in full precision, also for QLoRA runs (no 4-bit rounding baked in)
        trust_remote_code=recipe.model.trust_remote_code,
        revision=recipe.model.revision,
        use_safetensors=True,
    )
    merged = PeftModel.from_pretrained(base, run.adapter).merge_and_unload()
    tmp = run.path / ".merged.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True, max_shard_size=max_shard_size)
    AutoTokenizer.from_pretrained(run.adapter).save_pretrained(tmp)
    shutil.rmtree(run.merged, ignore_errors=True)
    os.replace(tmp, run.merged)
    return run.merged
