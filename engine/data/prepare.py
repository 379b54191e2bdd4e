"""The training path: validate everything, normalize to TRL form, mix; refuse with named rows on bad data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tunedeck.engine.data.errors import DataError
from tunedeck.engine.data.formats import check_method_format, normalize_dataset
from tunedeck.engine.data.inspect import DataReport, inspect_data
from tunedeck.engine.data.load import load_rows
from tunedeck.engine.data.mix import as_mix_sources, incompatibility, mix_datasets

SHOWN_ERRORS = 10


def raise_for_invalid(report: DataReport, field_path: str = "data.train") -> None:
    """DataError naming the first bad rows when any row is invalid (training never skips rows silently)."""
    if not report.invalid:
        return
    shown = report.errors[:SHOWN_ERRORS]
    lines = "\n".join(f"  {e}" for e in shown)
    more = report.invalid - len({e.where for e in shown})
    tail = f"\n  … and {more} more invalid rows" if more > 0 else ""
    raise DataError(
        f"{field_path}: {report.invalid} of {report.rows} rows in {report.source} are invalid "
        f"({report.format} format):\n{lines}{tail}\n"
        f"Fix them (or remove them), then check with: tunedeck data inspect {report.source}"
    )


def load_normalized(
    path: str,
    fmt: str = "auto",
    columns: Mapping[str, str] | None = None,
    split: str = "train",
    field_path: str = "data.train",
):
    """Validate every row of ``path`` and return it as a ``datasets.Dataset`` in TRL form."""
    report = inspect_data(path, fmt=fmt, columns=columns, split=split, sample_size=0, preview_rows=0)
    raise_for_invalid(report, field_path)
    return normalize_dataset(load_rows(path, split), report.format, columns, report.needs), report


def prepare_dataset(
    path: str,
    fmt: str = "auto",
    columns: Mapping[str, str] | None = None,
    mix: Iterable[Any] | None = None,
    seed: int = 0,
    method: str | None = None,
):
    """The training dataset for a recipe's ``data`` section: validated, in TRL form, mixed by ratio.

    ``method`` (the recipe's method.name) checks that the format fits it. ``mix`` holds (path, ratio)
    tuples, dicts or recipe entries with .path/.ratio (.format/.columns optional).
    """
    return prepare_splits(path, fmt=fmt, columns=columns, mix=mix, seed=seed, method=method)[0]


def prepare_splits(
    train: str,
    eval: str | None = None,
    eval_size: float = 0.0,
    fmt: str = "auto",
    columns: Mapping[str, str] | None = None,
    mix: Iterable[Any] | None = None,
    seed: int = 0,
    method: str | None = None,
):
    """(train, eval or None) for a recipe's ``data`` section, both validated and in TRL form.

    The eval rows come from ``eval``, or are held out of ``train`` (``eval_size``) *before* mixing,
    so the general-purpose mix never leaks into evaluation.
    """
    sources = as_mix_sources(mix)
    train_ds, report = load_normalized(train, fmt, columns)
    if method:
        labels = report.labels
        detail = (f"{labels.get('false', 0):,} of its {report.valid:,} rows are labelled false (undesirable): "
                  "training on them as examples would teach what the data marks as bad") if labels else ""  # fmt: skip
        check_method_format(method, report.format, detail=detail)
    eval_ds = None
    if eval:
        eval_ds, eval_report = load_normalized(eval, fmt, columns, field_path="data.eval")
        problem = incompatibility(report, eval_report, "data.eval")
        if problem:
            raise DataError(problem)
    elif eval_size > 0:
        split = train_ds.train_test_split(test_size=eval_size, seed=seed)
        train_ds, eval_ds = split["train"], split["test"]
    mixed = []
    for i, src in enumerate(sources):
        ds, mix_report = load_normalized(src.path, src.format, src.columns, field_path=f"data.mix[{i}]")
        problem = incompatibility(report, mix_report, f"data.mix[{i}]")
        if problem:
            raise DataError(problem)
        mixed.append((ds, src.ratio))
    return mix_datasets(train_ds, mixed, seed), eval_ds


def check_data(recipe, rows_to_read: int = 100) -> tuple[str, list[dict]]:
    """Before any process starts: data.train's format, checked against the recipe's method, and its first rows in
    TRL form (those that are valid: the worker validates every row and names the bad ones).

    Reads only the first rows (streamed for JSON Lines), so it answers at once even on big files.
    """
    from itertools import islice

    from tunedeck.engine.data.formats import choose_format, label_key, map_row, normalize_row, parse_label
    from tunedeck.engine.data.load import iter_records, resolve_source
    from tunedeck.engine.data.validate import RowValidator

    d = recipe.data
    source = resolve_source(d.train)
    rows = [map_row(r[3], d.columns) for r in islice(iter_records(source), rows_to_read) if r[3] is not None]
    requested = source.entry.format if source.entry is not None and d.format == "auto" else d.format
    fmt, _, _ = choose_format(rows, requested, f"data.train ({d.train})")
    detail = ""
    if fmt == "kto":
        labels = [parse_label(r.get(label_key(r) or "label")) for r in rows]
        detail = (f"{labels.count(False):,} of the first {len(labels):,} rows are labelled false (undesirable): "
                  "training on them as examples would teach what the data marks as bad")  # fmt: skip
    check_method_format(recipe.method.name, fmt, detail=detail)
    validator = RowValidator(fmt)  # an invalid row is left to the worker, which validates every row and names it
    return fmt, [normalize_row(row, fmt) for row in rows if not validator(row)]
