"""Continued pretraining on plain text: TRL's SFTTrainer on a `text` column, loss on every token."""

from __future__ import annotations

from engine.methods.common import build_trl_trainer
from engine.recipe import Recipe


def build_trainer(recipe: Recipe, run, callbacks: list):
    from trl import SFTConfig, SFTTrainer

    return build_trl_trainer(recipe, run, callbacks, SFTConfig, SFTTrainer, dataset_text_field="text", packing=True)
