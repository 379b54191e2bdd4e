"""ORPO: odds-ratio preference optimisation, no reference model (trl.experimental.orpo)."""

from __future__ import annotations

from engine.methods.common import build_trl_trainer, method_kwargs
from engine.recipe import Recipe


def build_trainer(recipe: Recipe, run, callbacks: list):
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    return build_trl_trainer(recipe, run, callbacks, ORPOConfig, ORPOTrainer, **method_kwargs(recipe, "beta"))
