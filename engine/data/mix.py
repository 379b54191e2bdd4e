"""Mixing general-purpose data into the training set by ratio (against catastrophic forgetting).

A ratio is the share of the *final* mix: with 800 rows of your data and ``ratio: 0.2`` for one
general dataset, the mix has 1000 rows, 200 of them general. Sources are shuffled with the recipe's seed
and the first rows taken; a source smaller than its share is repeated (and the plan says so).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tunedeck.engine.data.errors import DataError


@dataclass(frozen=True)
class MixSource:
    """One ``data.mix`` entry: a dataset path (or Hub id), its share, and optionally its format and columns."""

    path: str
    ratio: float
    format: str = "auto"
    columns: dict[str, str] | None = None


def as_mix_sources(mix: Iterable[Any] | None) -> list[MixSource]:
    """Accept (path, ratio) tuples, dicts, or objects with .path/.ratio (the recipe's dataclass)."""
    out = []
    for i, item in enumerate(mix or []):
        if isinstance(item, MixSource):
            src = item
        elif isinstance(item, (tuple, list)):
            src = MixSource(str(item[0]), float(item[1]), *item[2:])
        elif isinstance(item, dict):
            src = MixSource(str(item["path"]), float(item["ratio"]), item.get("format") or "auto", item.get("columns"))
        else:
            src = MixSource(
                str(item.path),
                float(item.ratio),
                getattr(item, "format", None) or "auto",
                getattr(item, "columns", None),
            )
        if not 0 < src.ratio < 1:
            raise DataError(f"data.mix[{i}].ratio: must be between 0 and 1 (a share of the final mix), got {src.ratio}")
        out.append(src)
    total = sum(s.ratio for s in out)
    if total >= 1:
        raise DataError(f"data.mix: the ratios add up to {total:g}; they must leave room for data.train (sum < 1)")
    return out


def parse_mix_arg(item: str) -> MixSource:
    """``PATH:RATIO`` or ``PATH=RATIO`` from the command line."""
    for sep in ("=", ":"):
        if sep in item:
            path, ratio = item.rsplit(sep, 1)
            try:
                return MixSource(path, float(ratio))
            except ValueError:
                break
    raise DataError(f"--mix {item!r}: expected PATH=RATIO, e.g. --mix general.jsonl=0.2")


def plan_mix(primary_rows: int, available: list[int], ratios: list[float]) -> list[dict[str, Any]]:
    """How many rows each mixed source contributes: [{rows, available, share, repeated}]."""
    total = primary_rows / (1 - sum(ratios)) if ratios else primary_rows
    plan = []
    for n, ratio in zip(available, ratios, strict=True):
        used = max(1, round(ratio * total)) if n else 0
        plan.append({"rows": used, "available": n, "share": ratio, "repeated": used > n})
    return plan


def _take(ds, k: int, seed: int):
    """``k`` rows of ``ds``, shuffled with ``seed``; cycles through the shuffled order when ``k > len(ds)``."""
    order = ds.shuffle(seed=seed)
    n = len(order)
    return order.select([i % n for i in range(k)])


def mix_datasets(primary, sources: list[tuple[Any, float]], seed: int = 0):
    """Concatenate ``primary`` with each (dataset, ratio) at its share, then shuffle; deterministic in ``seed``.

    All datasets must already be in the same TRL form (``normalize_dataset``).
    """
    if not sources:
        return primary
    import datasets

    plan = plan_mix(len(primary), [len(ds) for ds, _ in sources], [r for _, r in sources])
    parts = [primary]
    for i, ((ds, _), p) in enumerate(zip(sources, plan, strict=True)):
        if sorted(ds.column_names) != sorted(primary.column_names):
            raise DataError(
                f"data.mix[{i}]: its rows normalize to columns {', '.join(ds.column_names)} but data.train's to "
                f"{', '.join(primary.column_names)}; mixed datasets must have the same form (e.g. both conversations)"
            )
        if p["rows"]:
            part = _take(ds, p["rows"], seed + i + 1)
            try:
                part = part.cast(primary.features)
            except Exception as e:  # e.g. message lists mixed with strings
                raise DataError(f"data.mix[{i}]: its columns do not match data.train's ({e})") from None
            parts.append(part)
    return datasets.concatenate_datasets(parts).shuffle(seed=seed)


def inspect_mix(primary, sources: list[MixSource], seed: int = 0, split: str = "train") -> dict[str, Any]:
    """The mix training would build, from a primary ``DataReport``: per source its format, valid rows and share.

    Mix sources are validated too; their invalid rows are returned (``errors``) so they can be shown.
    """
    from tunedeck.engine.data.inspect import inspect_data

    reports = [
        inspect_data(s.path, fmt=s.format, columns=s.columns, split=split, sample_size=0, preview_rows=0, max_errors=10)
        for s in sources
    ]
    plan = plan_mix(primary.valid, [r.valid for r in reports], [s.ratio for s in sources])
    rows = [
        {
            "source": primary.source, "format": primary.format, "available": primary.valid, "rows": primary.valid,
            "share": 1 - sum(s.ratio for s in sources), "repeated": False, "invalid": primary.invalid,
        }
    ]  # fmt: skip
    incompatible, warnings = [], []
    for i, (s, r, p) in enumerate(zip(sources, reports, plan, strict=True)):
        rows.append({"source": s.path, "format": r.format, **p, "invalid": r.invalid})
        problem = incompatibility(primary, r, f"data.mix[{i}]")
        if problem:
            incompatible.append(problem)
        if p["repeated"]:
            warnings.append(
                f"data.mix[{i}]: {s.path} has {r.valid} valid rows but its share needs {p['rows']}; rows repeat"
            )
    return {
        "seed": seed,
        "total": sum(r["rows"] for r in rows),
        "sources": rows,
        "incompatible": incompatible,
        "warnings": warnings,
        "errors": [e for r in reports for e in r.errors],
        "invalid": sum(r.invalid for r in reports),
    }


def incompatibility(primary, other, field_path: str) -> str | None:
    """Why ``other`` (a DataReport) cannot be mixed into ``primary``'s training set, or None."""
    if other.trl_columns == primary.trl_columns and not (other.form and primary.form and other.form != primary.form):
        return None

    def form(r) -> str:
        kind = {"chat": "message lists", "text": "strings"}.get(r.form or "", "")
        return f"{r.format} ({'/'.join(r.trl_columns)}{', ' + kind if kind else ''})"

    return (
        f"{field_path}: {other.source} is {form(other)} but the training data is {form(primary)}; "
        "mixed datasets must normalize to the same form"
    )
