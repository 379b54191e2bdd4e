"""GRPO: group-relative policy optimisation against Python rewards or a reward model (TRL GRPOTrainer)."""

from __future__ import annotations

from pathlib import Path

from tunedeck.engine.methods.common import common_args, eval_args, load_splits
from tunedeck.engine.methods.reward_sources import resolve_rewards
from tunedeck.engine.model.adapters import peft_config
from tunedeck.engine.model.loading import load_model, load_tokenizer
from tunedeck.engine.recipe import Recipe

TRAINERS = {"grpo": ("GRPOConfig", "GRPOTrainer"), "rloo": ("RLOOConfig", "RLOOTrainer")}


def build_online_trainer(recipe: Recipe, run, callbacks: list):
    """GRPO or RLOO: both generate num_generations completions per prompt and score them."""
    import trl

    config_cls, trainer_cls = (getattr(trl, n) for n in TRAINERS[recipe.method.name])
    train, eval_ds = load_splits(recipe)
    m = recipe.method
    funcs, reward_tokenizers = resolve_rewards(m.reward_funcs, Path(recipe.train.runs_dir).parent)
    args = config_cls(
        **common_args(recipe, run),
        **eval_args(recipe, eval_ds),
        num_generations=m.num_generations,
        max_completion_length=m.max_completion_length,
        temperature=m.temperature,
        **({"beta": m.beta} if m.beta is not None else {}),
    )
    return trainer_cls(
        model=load_model(recipe),
        reward_funcs=funcs,
        args=args,
        train_dataset=train,
        eval_dataset=eval_ds,
        processing_class=load_tokenizer(recipe),
        reward_processing_classes=reward_tokenizers,
        peft_config=peft_config(recipe),
        callbacks=callbacks,
    )


build_trainer = build_online_trainer
