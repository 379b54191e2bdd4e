"""SimPO: TRL's CPOTrainer with loss_type="simpo" (length-normalised, reference-free)."""

from __future__ import annotations

from engine.methods.common import build_trl_trainer, method_kwargs
from engine.recipe import Recipe


def build_trainer(recipe: Recipe, run, callbacks: list):
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    alpha = recipe.method.cpo_alpha if recipe.method.cpo_alpha is not None else 0.0  # 0: pure SimPO, no NLL term
    return build_trl_trainer(
        recipe, run, callbacks, CPOConfig, CPOTrainer,
        loss_type="simpo", cpo_alpha=alpha, **method_kwargs(recipe, "beta", "simpo_gamma"),
    )  # fmt: skip
