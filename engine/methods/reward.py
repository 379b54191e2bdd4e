"""Reward-model training on preference pairs (TRL RewardTrainer, a sequence-classification head)."""

from __future__ import annotations

from tunedeck.engine.methods.common import common_args, eval_args, load_splits, method_kwargs
from tunedeck.engine.model.adapters import peft_config
from tunedeck.engine.model.loading import load_tokenizer
from tunedeck.engine.recipe import Recipe


def build_trainer(recipe: Recipe, run, callbacks: list):
    from trl import RewardConfig, RewardTrainer

    train, eval_ds = load_splits(recipe)
    tokenizer = load_tokenizer(recipe)
    args = RewardConfig(
        **common_args(recipe, run),
        **eval_args(recipe, eval_ds),
        **method_kwargs(recipe, "center_rewards_coefficient"),
        max_length=recipe.train.max_length,
    )
    lora = peft_config(recipe)
    if lora is not None:
        lora.task_type = "SEQ_CLS"  # trains (and saves) the score head with the adapter
    return RewardTrainer(
        model=load_reward_base(recipe, tokenizer),
        args=args,
        train_dataset=train,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=callbacks,
    )


def load_reward_base(recipe: Recipe, tokenizer):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        recipe.model.name_or_path,
        num_labels=1,
        trust_remote_code=recipe.model.trust_remote_code,
        use_safetensors=True,
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model
