"""Supervised fine-tuning with TRL's SFTTrainer (assistant-only loss by default)."""

from __future__ import annotations

from engine.adapters import load_model, load_tokenizer, peft_config
from engine.data import load_rows
from engine.methods.common import common_args
from engine.recipe import Recipe


def build_trainer(recipe: Recipe, run, callbacks: list):
    from trl import SFTConfig, SFTTrainer

    tokenizer = load_tokenizer(recipe)
    train = load_rows(recipe.data.train)
    eval_ds = load_rows(recipe.data.eval) if recipe.data.eval else None
    if eval_ds is None and recipe.data.eval_size > 0:
        split = train.train_test_split(test_size=recipe.data.eval_size, seed=recipe.train.seed)
        train, eval_ds = split["train"], split["test"]
    args = SFTConfig(
        **common_args(recipe, run),
        max_length=recipe.train.max_length,
        assistant_only_loss=recipe.method.assistant_only_loss and "messages" in train.column_names,
        eval_strategy="steps" if eval_ds is not None else "no",
        eval_steps=recipe.train.save_steps if eval_ds is not None else None,
    )
    return SFTTrainer(
        model=load_model(recipe),
        args=args,
        train_dataset=train,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config(recipe),
        callbacks=callbacks,
    )
