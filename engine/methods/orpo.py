"""ORPO: odds-ratio preference optimisation, no reference model (trl.experimental.orpo)."""

from __future__ import annotations

from engine.adapters import load_model, load_tokenizer, peft_config
from engine.methods.common import common_args, eval_args, load_splits, method_kwargs
from engine.recipe import Recipe


def build_trainer(recipe: Recipe, run, callbacks: list):
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    train, eval_ds = load_splits(recipe)
    args = ORPOConfig(
        **common_args(recipe, run),
        **eval_args(recipe, eval_ds),
        **method_kwargs(recipe, "beta"),
        max_length=recipe.train.max_length,
    )
    return ORPOTrainer(
        model=load_model(recipe),
        args=args,
        train_dataset=train,
        eval_dataset=eval_ds,
        processing_class=load_tokenizer(recipe),
        peft_config=peft_config(recipe),
        callbacks=callbacks,
    )
