"""KTO: unpaired desirable/undesirable completions (TRL KTOTrainer)."""

from __future__ import annotations

from engine.methods.common import build_trl_trainer, method_kwargs
from engine.recipe import Recipe


def build_trainer(recipe: Recipe, run, callbacks: list):
    from trl import KTOConfig, KTOTrainer

    settings = method_kwargs(recipe, "beta", "loss_type", "desirable_weight", "undesirable_weight")
    return build_trl_trainer(recipe, run, callbacks, KTOConfig, KTOTrainer, **settings)
