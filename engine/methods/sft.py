"""Supervised fine-tuning with TRL's SFTTrainer, assistant-only loss by default on any chat template.

Conversations (with their tools and reasoning) are tokenized here, with the mask tunedeck.engine.templates
derives from the template itself ({% generation %} markers where it has them, else rendering
growing prefixes), and handed to TRL as ``input_ids`` + ``assistant_masks``: TRL turns the mask
into labels and truncates.
"""

from __future__ import annotations

from tunedeck.engine.data.errors import DataError
from tunedeck.engine.methods.common import common_args, eval_args, load_splits
from tunedeck.engine.model.adapters import peft_config
from tunedeck.engine.model.loading import load_model, load_tokenizer
from tunedeck.engine.recipe import Recipe
from tunedeck.engine.templates.render import TemplateRefused
from tunedeck.engine.templates.views import chat_view


def tokenize_chats(tokenizer, dataset, template: str, assistant_only: bool, train_on_reasoning: bool, split: str):
    """``messages`` rows -> input_ids and assistant_masks (all ones without assistant-only loss); a row the
    template refuses is a DataError naming it."""

    def tokenize(row, index):
        try:
            view = chat_view(tokenizer, row, template, assistant_only_loss=assistant_only, with_text=False,
                             train_on_reasoning=train_on_reasoning)  # fmt: skip
        except TemplateRefused as e:
            raise DataError(f"{split} row {index + 1}: the chat template refuses it: {e}") from None
        return {"input_ids": view.ids, "assistant_masks": [int(t) for t in view.trained]}

    return dataset.map(tokenize, with_indices=True, remove_columns=dataset.column_names, desc=f"masking {split} rows")


def build_trainer(recipe: Recipe, run, callbacks: list):
    from trl import SFTConfig, SFTTrainer

    tokenizer = load_tokenizer(recipe)
    train, eval_ds = load_splits(recipe)
    chats = "messages" in train.column_names
    assistant_only = recipe.method.assistant_only_loss and chats
    # tunedeck.engine.run.preflight checked the loss mask on the first rows before this process started.
    if chats:
        settings = (tokenizer.chat_template, assistant_only, recipe.template.train_on_reasoning)
        train = tokenize_chats(tokenizer, train, *settings, "data.train")
        if eval_ds is not None:
            eval_ds = tokenize_chats(tokenizer, eval_ds, *settings, "data.eval")
    args = SFTConfig(**common_args(recipe, run), **eval_args(recipe, eval_ds), max_length=recipe.train.max_length)
    return SFTTrainer(
        model=load_model(recipe),
        args=args,
        train_dataset=train,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config(recipe),
        callbacks=callbacks,
    )
