"""Direct Preference Optimization (TRL DPOTrainer); with LoRA the reference is the base, adapter off."""

from __future__ import annotations

from engine.methods.common import build_trl_trainer, method_kwargs
from engine.recipe import Recipe


def build_trainer(recipe: Recipe, run, callbacks: list):
    from trl import DPOConfig, DPOTrainer

    settings = method_kwargs(recipe, "beta", "loss_type")
    if isinstance(settings.get("loss_type"), str):  # DPOConfig takes a list (losses can be combined)
        settings["loss_type"] = [settings["loss_type"]]
    return build_trl_trainer(recipe, run, callbacks, DPOConfig, DPOTrainer, **settings)
