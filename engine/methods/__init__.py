"""One module per alignment method; each exposes ``build_trainer(recipe, run, callbacks)``."""

from __future__ import annotations

import importlib

from engine.recipe import METHODS, Recipe


def build_trainer(recipe: Recipe, run, callbacks: list):
    """Dispatch to ``engine.methods.<name>.build_trainer``."""
    if recipe.method.name not in METHODS:
        raise ValueError(f"method.name: unknown method {recipe.method.name!r}; choose from {', '.join(METHODS)}")
    module = importlib.import_module(f"engine.methods.{recipe.method.name}")
    return module.build_trainer(recipe, run, callbacks)
