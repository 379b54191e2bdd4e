"""KTO: unpaired desirable/undesirable completions (TRL KTOTrainer)."""

from __future__ import annotations

from engine.adapters import load_model, load_tokenizer, peft_config
from engine.methods.common import common_args, eval_args, load_splits, method_kwargs
from engine.recipe import Recipe


def build_trainer(recipe: Recipe, run, callbacks: list):
    from trl import KTOConfig, KTOTrainer

    train, eval_ds = load_splits(recipe)
    args = KTOConfig(
        **common_args(recipe, run),
        **eval_args(recipe, eval_ds),
        **method_kwargs(recipe, "beta", "loss_type", "desirable_weight", "undesirable_weight"),
        max_length=recipe.train.max_length,
    )
    return KTOTrainer(
        model=load_model(recipe),
        args=args,
        train_dataset=train,
        eval_dataset=eval_ds,
        processing_class=load_tokenizer(recipe),
        peft_config=peft_config(recipe),
        callbacks=callbacks,
    )
