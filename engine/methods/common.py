"""What every method shares: TRL arguments from the recipe's `train` section, data splits, the trainer shape."""

from __future__ import annotations

from typing import Any

from tunedeck.engine.recipe import Recipe


def common_args(recipe: Recipe, run) -> dict[str, Any]:
    from tunedeck.engine.model.loading import precision

    t = recipe.train
    bf16 = precision(recipe)[1]
    return dict(
        output_dir=str(run.checkpoints),
        max_steps=t.max_steps,
        num_train_epochs=t.num_train_epochs,
        per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=None,  # checkpoints are renamed and pruned by the worker (keep-last-N)
        seed=t.seed,
        data_seed=t.seed,
        gradient_checkpointing=t.gradient_checkpointing,
        bf16=bf16,
        report_to=t.report_to,
        disable_tqdm=True,
        logging_nan_inf_filter=False,  # a NaN loss must be seen (and stop the run), not averaged away
        save_only_model=False,
    )


def load_splits(recipe: Recipe):
    """(train, eval or None): every row validated (bad rows named), normalized to TRL form, mixed."""
    from tunedeck.engine.data import prepare_splits

    d = recipe.data
    return prepare_splits(
        d.train, d.eval, d.eval_size, fmt=d.format, columns=d.columns, mix=d.mix,
        seed=recipe.train.seed, method=recipe.method.name,
    )  # fmt: skip


def eval_args(recipe: Recipe, eval_ds) -> dict[str, Any]:
    if eval_ds is None:
        return {"eval_strategy": "no"}
    # eval_on_start: the first point of every eval curve is the model before training, the baseline
    # a margin or an accuracy has to beat.
    return {
        "eval_strategy": "steps", "eval_steps": recipe.train.save_steps, "per_device_eval_batch_size": 16,
        "eval_on_start": True,
    }  # fmt: skip


def method_kwargs(recipe: Recipe, *names: str) -> dict[str, Any]:
    """The method settings the recipe sets (not None), for the TRL config that knows them."""
    return {name: getattr(recipe.method, name) for name in names if getattr(recipe.method, name) is not None}


def build_trl_trainer(recipe: Recipe, run, callbacks: list, config_cls, trainer_cls, **config: Any):
    """The shape most TRL trainers share: recipe data, model, tokenizer, PEFT config and callbacks."""
    from tunedeck.engine.model.adapters import peft_config
    from tunedeck.engine.model.loading import load_model, load_tokenizer

    train, eval_ds = load_splits(recipe)
    args = config_cls(**common_args(recipe, run), **eval_args(recipe, eval_ds), max_length=recipe.train.max_length, **config)
    return trainer_cls(
        model=load_model(recipe),
        args=args,
        train_dataset=train,
        eval_dataset=eval_ds,
        processing_class=load_tokenizer(recipe),
        peft_config=peft_config(recipe),
        callbacks=callbacks,
    )


def build_trainer(recipe: Recipe, run, callbacks: list):
    """The trainer for the recipe's method (tunedeck.engine.methods.METHODS), seeded before any model is built."""
    import importlib

    from transformers import set_seed

    from tunedeck.engine.methods import method_spec
    from tunedeck.engine.trl_compat import score_labelled_positions_only_on_cpu

    spec = method_spec(recipe.method.name)
    if not score_labelled_positions_only_on_cpu():
        run.append_event("warning", message="TRL's fused LM head changed: on the CPU it scores every position (slower)")
    # Before any model is built: new weights (adapters, score and value heads) start the same in a
    # repeated or resumed run; the Trainer seeds again only once the model already exists.
    set_seed(recipe.train.seed)
    if spec.trl:
        module = importlib.import_module(spec.trl[0])
        config_cls, trainer_cls = getattr(module, spec.trl[1]), getattr(module, spec.trl[2])
        settings = {**spec.fixed, **method_kwargs(recipe, *spec.settings)}
        return build_trl_trainer(recipe, run, callbacks, config_cls, trainer_cls, **settings)
    module, _, function = (spec.builder or f"tunedeck.engine.methods.{spec.name}:build_trainer").partition(":")
    return getattr(importlib.import_module(module), function)(recipe, run, callbacks)
