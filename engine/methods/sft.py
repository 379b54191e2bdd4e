"""Supervised fine-tuning with TRL's SFTTrainer (assistant-only loss by default)."""

from __future__ import annotations

from engine.adapters import peft_config
from engine.methods.common import common_args, eval_args, load_splits
from engine.models import load_model, load_tokenizer
from engine.recipe import Recipe
from engine.templates import check_trainable


def build_trainer(recipe: Recipe, run, callbacks: list):
    from trl import SFTConfig, SFTTrainer

    tokenizer = load_tokenizer(recipe)
    train, eval_ds = load_splits(recipe)
    assistant_only = recipe.method.assistant_only_loss and "messages" in train.column_names
    # Refuses (ValueError) when no token of the first rows would be trained; warns when the
    # end-of-turn token never is (the model would not learn to stop).
    for warning in check_trainable(
        tokenizer, train, tokenizer.chat_template, max_length=recipe.train.max_length, assistant_only_loss=assistant_only
    ):
        run.append_event("warning", message=warning)
    args = SFTConfig(
        **common_args(recipe, run),
        **eval_args(recipe, eval_ds),
        max_length=recipe.train.max_length,
        assistant_only_loss=assistant_only,
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
