"""One module per alignment method; each exposes ``build_trainer(recipe, run, callbacks)``."""

from __future__ import annotations

import importlib

from engine.recipe import METHODS, Recipe


def build_trainer(recipe: Recipe, run, callbacks: list):
    """Dispatch to ``engine.methods.<name>.build_trainer``."""
    if recipe.method.name not in METHODS:
        raise ValueError(f"method.name: unknown method {recipe.method.name!r}; choose from {', '.join(METHODS)}")
    from transformers import set_seed

    module = importlib.import_module(f"engine.methods.{recipe.method.name}")
    # Before any model is built: new weights (adapters, score and value heads) start the same in a
    # repeated or resumed run; the Trainer seeds again only once the model already exists.
    set_seed(recipe.train.seed)
    return module.build_trainer(recipe, run, callbacks)
