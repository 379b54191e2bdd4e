"""Continued pretraining on plain text: TRL's SFTTrainer on a `text` column, loss on every token."""

from __future__ import annotations

from engine.adapters import load_model, load_tokenizer, peft_config
from engine.methods.common import common_args, eval_args, load_splits
from engine.recipe import Recipe


def build_trainer(recipe: Recipe, run, callbacks: list):
    from trl import SFTConfig, SFTTrainer

    train, eval_ds = load_splits(recipe)
    args = SFTConfig(
        **common_args(recipe, run),
        **eval_args(recipe, eval_ds),
        max_length=recipe.train.max_length,
        dataset_text_field="text",
        packing=True,
    )
    return SFTTrainer(
        model=load_model(recipe),
        args=args,
        train_dataset=train,
        eval_dataset=eval_ds,
        processing_class=load_tokenizer(recipe),
        peft_config=peft_config(recipe),
        callbacks=callbacks,
    )
