"""One preflight: every check a recipe must pass before a run folder or a worker exists.

``tunedeck.engine.run.launch.start_run`` runs it, so the CLI (``tunedeck train``), the TUI (Train, Runs) and the SLURM launch
script (``python -m tunedeck.engine.run.slurm prepare``) all get the same refusals, in the same words, before anything starts:

1. the model source: a local folder, a cached Hub id (offline), or a GGUF (checked and dequantized once);
2. the data: data.train readable, its format detected, and that format fits the method;
3. the loss mask: for SFT, the chat template trains something on the first rows (and warns when it never trains
   the end-of-turn token);
4. the launch: what a many-process strategy needs (DeepSpeed, NVIDIA GPUs);
5. GGUF export: what the converter will meet, said before the training it follows.

Light to import: each check imports what it needs when it runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from tunedeck.engine.recipe import Recipe


class PreflightError(ValueError):
    """A recipe refused before start; ``check`` says which check refused it, the message what to do."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check


@dataclass(frozen=True)
class Preflight:
    recipe: Recipe  # as it will run: a GGUF model source resolved to its dequantized folder
    data_format: str  # data.train's format, e.g. "messages"
    notes: list[str] = field(default_factory=list)  # worth saying before start; kept in the run's events


def preflight(recipe: Recipe, progress: Callable[[str], None] = lambda m: None) -> Preflight:
    """Run every check in order; the first refusal is a PreflightError. ``progress`` gets a line per long step
    (a GGUF's first dequantization takes about a minute)."""
    from tunedeck.engine.data import DataError
    from tunedeck.engine.model.loading import ModelLoadError, check_model_source
    from tunedeck.engine.recipe import RecipeError

    check = "model"
    try:
        folder = check_model_source(recipe.model.name_or_path, progress)
        if folder != recipe.model.name_or_path:
            recipe = dataclasses.replace(recipe, model=dataclasses.replace(recipe.model, name_or_path=folder))
        check = "data"
        from tunedeck.engine.data.prepare import check_data

        data_format, rows = check_data(recipe)
        check = "mask"
        notes = _mask_notes(recipe, rows)
        check = "launch"
        if recipe.launch.distributed:
            from tunedeck.engine.run.accelerate_config import check_launchable

            check_launchable(recipe)
    except (ModelLoadError, DataError, RecipeError) as e:
        raise PreflightError(check, str(e)) from None
    if recipe.export.quant:
        from tunedeck.engine.export.support import gguf_notes

        notes += gguf_notes(recipe.model.name_or_path)
    return Preflight(recipe, data_format, notes)


def _mask_notes(recipe: Recipe, rows: list[dict]) -> list[str]:
    """SFT's loss-mask check on the first rows, with the tokenizer and template the worker will use: a
    PreflightError when nothing would be trained, else its warnings."""
    if recipe.method.name != "sft" or not rows:
        return []
    from tunedeck.engine.model.loading import load_tokenizer
    from tunedeck.engine.templates.check import check_trainable

    tokenizer = load_tokenizer(recipe)
    chats = any("messages" in r for r in rows)
    try:
        return check_trainable(tokenizer, rows, tokenizer.chat_template, max_length=recipe.train.max_length,
                               assistant_only_loss=recipe.method.assistant_only_loss and chats)  # fmt: skip
    except ValueError as e:
        raise PreflightError("mask", f"data.train: {e}") from None
