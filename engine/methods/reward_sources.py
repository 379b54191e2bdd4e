"""Rewards for online methods (GRPO, RLOO, PPO): Python functions or trained reward models."""

from __future__ import annotations

import importlib
from pathlib import Path

from tunedeck.engine.recipe import RecipeError


def _load_reward_model(path: Path):
    """A reward run of ours (runs/<id>: base + SEQ_CLS adapter, merged) or a sequence-classification model."""
    from transformers import AutoModelForSequenceClassification

    from tunedeck.engine.model.tokenizers import load_saved_tokenizer

    if (path / "recipe.yaml").exists():  # one of our reward runs
        from peft import PeftModel

        from tunedeck.engine.recipe import load_recipe

        recipe = load_recipe(path / "recipe.yaml")
        if recipe.method.name != "reward":
            raise RecipeError("method.reward_funcs", f"{path} is a {recipe.method.name} run, not a reward run")
        weights = path / ("model" if recipe.adapter.kind == "full" else "adapter")
        if not weights.exists():
            raise RecipeError("method.reward_funcs", f"reward run {path.name} has no trained weights (did it finish?)")
        if recipe.adapter.kind == "full":
            model = AutoModelForSequenceClassification.from_pretrained(weights, num_labels=1, use_safetensors=True)
        else:
            base = AutoModelForSequenceClassification.from_pretrained(
                recipe.model.name_or_path, num_labels=1, use_safetensors=True
            )
            model = PeftModel.from_pretrained(base, weights).merge_and_unload()
        tokenizer = load_saved_tokenizer(weights)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, use_safetensors=True)
        tokenizer = load_saved_tokenizer(path)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, tokenizer


def resolve_rewards(specs: list[str], base_dir: Path | None = None) -> tuple[list, list]:
    """(reward_funcs, reward_processing_classes) for TRL from ``method.reward_funcs`` strings."""
    funcs, tokenizers = [], []
    for spec in specs:
        path = Path(spec).expanduser()
        if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
            path = base_dir / path
        if path.exists():
            model, tokenizer = _load_reward_model(path)
            funcs.append(model)
            tokenizers.append(tokenizer)
            continue
        if ":" not in spec:
            raise RecipeError(
                "method.reward_funcs", f"{spec!r} is neither a folder (reward run or model) nor 'module:function'"
            )
        module_name, func_name = spec.split(":", 1)
        try:
            func = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError) as e:
            raise RecipeError("method.reward_funcs", f"cannot import {spec!r}: {e}") from None
        funcs.append(func)
        tokenizers.append(None)
    return funcs, tokenizers
