"""One pass over a dataset: format, every bad row, duplicates and a sample for token stats.

Memory stays bounded on any size: rows are validated one at a time, duplicates are kept as one
64-bit digest per row, and only a fixed-size reservoir of rows is kept for tokenizing.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tunedeck.engine.data.errors import DataError, Location, RowError
from tunedeck.engine.data.formats import (
    DETECT_ROWS,
    TRL_COLUMNS,
    choose_format,
    label_key,
    map_row,
    needs_fields,
    normalize_row,
    parse_label,
    unread_columns,
    user_field,
)
from tunedeck.engine.data.load import Source, iter_records, resolve_source
from tunedeck.engine.data.stats import TOKEN_SAMPLE, Reservoir
from tunedeck.engine.data.validate import RowValidator

MAX_ERRORS = 100  # kept in the report; all are counted
PREVIEW_ROWS = 5
_HEAD_LIMIT = 10 * DETECT_ROWS  # records read before giving up on finding parseable rows to detect from


@dataclass
class PreviewRow:
    where: Location
    row: dict | None  # normalized when valid, else the raw object (or None when it did not parse)
    errors: list[RowError]


@dataclass
class DataReport:
    """What ``inspect_data`` found. ``to_dict`` is the ``--json`` shape."""

    source: str
    kind: str
    files: list[str]
    format: str | None = None
    confidence: float = 0.0
    candidates: list[tuple[str, float]] = field(default_factory=list)
    detected_from: int = 0  # rows the format was detected from (0: the format was given)
    form: str | None = None  # "chat" or "text" for formats that can be either
    columns: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    valid: int = 0
    invalid: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    duplicate_examples: list[tuple[str, str]] = field(default_factory=list)
    preview: list[PreviewRow] = field(default_factory=list)
    sample: list[tuple[Location, dict]] = field(default_factory=list)  # normalized valid rows, in file order
    ignored: dict[str, int] = field(default_factory=dict)  # column -> rows that have it: the format does not read it
    labels: dict[str, int] = field(default_factory=dict)  # KTO: {"true": n, "false": m} over the valid rows
    needs: tuple[bool, bool] = (False, False)  # some valid row has message extras / tools (normalize_dataset's schema)
    notes: list[str] = field(default_factory=list)  # how the source was read (a .txt's documents, a JSON object's rows)
    complete: bool = False

    @property
    def warnings(self) -> list[str]:
        """What training would not use: ignored columns, each with its row count."""
        if not self.ignored:
            return []
        listed = ", ".join(f"{c} ({n:,} rows)" for c, n in sorted(self.ignored.items(), key=lambda kv: -kv[1]))
        return [f"ignored columns: {listed}; the {self.format} format does not read them"]

    @property
    def trl_columns(self) -> tuple[str, ...]:
        return TRL_COLUMNS.get(self.format or "", ())

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "confidence": round(self.confidence, 3),
            "detected_from": self.detected_from,
            "candidates": [{"format": f, "confidence": round(c, 3)} for f, c in self.candidates],
            "columns": self.columns,
            "rows": self.rows,
            "valid": self.valid,
            "invalid": self.invalid,
            "errors": [e.to_dict() for e in self.errors],
            "errors_shown": len(self.errors),
            "error_kinds": self.error_kinds,
            "duplicates": self.duplicates,
            "duplicate_examples": [{"row": a, "same_as": b} for a, b in self.duplicate_examples],
            "trl_columns": list(self.trl_columns),
            "ignored_columns": self.ignored,
            "labels": self.labels,
            "notes": self.notes,
            "warnings": self.warnings,
        }


def _first_rows(records, limit: int) -> list:
    head, parsed = [], 0
    for rec in records:
        head.append(rec)
        parsed += rec[3] is not None
        if parsed >= DETECT_ROWS or len(head) >= limit:
            break
    return head


ROWS_EVERY = 10_000


def _detect_format(name: str, head: list, fmt: str, columns) -> tuple[str, float, list, int]:
    """(format, confidence, candidates, rows detected from) for the first rows of a source; DataError when none."""
    if not head:
        raise DataError(f"{name}: no rows (only blank lines); there is nothing to train on")
    parsed = [map_row(rec[3], columns) for rec in head if rec[3] is not None]
    if not parsed and fmt == "auto":
        _, line, row, _, err, _ = head[0]
        where = Location(row, head[0][0], line)
        raise DataError(
            f"{name}: none of the first {len(head)} rows could be read, so the format is unknown; "
            f"first problem at {where}: {err[2] if err else 'unreadable'}"
        )
    found, confidence, candidates = choose_format(parsed, fmt, name)
    return found, confidence, candidates, len(parsed) if fmt == "auto" else 0


class _RowChecker:
    """Checks records one at a time into a report: errors, ignored columns, labels, duplicates, sample and preview."""

    def __init__(self, report: DataReport, columns, reservoir: Reservoir, sample_size: int, max_errors: int):
        self.report = report
        self.fmt = report.format
        self.columns = columns
        self.validator = RowValidator(self.fmt)
        self.reservoir = reservoir
        self.sample_size = sample_size
        self.max_errors = max_errors
        self.seen: dict[int, int] = {}  # row digest -> the first row with it, packed by _ref
        self.files: list[str] = []  # file names by index, for packed duplicate references

    def __call__(self, rec, keep_preview: bool) -> None:
        file, line, row, obj, err, raw = rec
        self.report.rows += 1
        if err is not None:
            problems = [err]
            mapped = None
        else:
            mapped = map_row(obj, self.columns) if self.columns else obj
            problems = self.validator(mapped, Location(row, file, line) if self.validator.form is None else "")
            self._count_ignored(mapped)
        if problems:
            self._invalid(Location(row, file, line), obj, problems, keep_preview)
        else:
            self._valid(rec, mapped, keep_preview)

    def _count_ignored(self, mapped: dict) -> None:
        """Columns with a value that the format does not read."""
        ignored = self.report.ignored
        for key in unread_columns(mapped, self.fmt):
            ignored[key] = ignored.get(key, 0) + 1

    def _invalid(self, where: Location, obj, problems: list, keep_preview: bool) -> None:
        report = self.report
        report.invalid += 1
        errors = [RowError(where, user_field(f, self.columns), k, r) for f, k, r in problems]
        kinds = report.error_kinds
        for e in errors:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        room = self.max_errors - len(report.errors)
        if room > 0:
            report.errors.extend(errors[:room])
        if keep_preview:
            report.preview.append(PreviewRow(where, obj, errors))

    def _valid(self, rec, mapped: dict, keep_preview: bool) -> None:
        file, line, row = rec[:3]
        report = self.report
        report.valid += 1
        if report.needs != (True, True):
            extras, tools = needs_fields(mapped)
            report.needs = (report.needs[0] or extras, report.needs[1] or tools)
        if self.fmt == "kto":
            label = "true" if parse_label(mapped[label_key(mapped) or "label"]) else "false"
            report.labels[label] = report.labels.get(label, 0) + 1
        self._count_duplicate(rec)
        slot = self.reservoir.wants() if self.sample_size else None
        if slot is not None or keep_preview:
            normalized = normalize_row(mapped, self.fmt)
            if slot is not None:
                self.reservoir.put(slot, (Location(row, file, line), normalized))
            if keep_preview:
                report.preview.append(PreviewRow(Location(row, file, line), normalized, []))

    def _count_duplicate(self, rec) -> None:
        file, line, row, obj, _, raw = rec
        digest = hash(raw) if raw is not None else hash(json.dumps(obj, sort_keys=True, default=str))
        here = self._ref(file, line, row)
        first = self.seen.setdefault(digest, here)
        if first != here:
            self.report.duplicates += 1
            if len(self.report.duplicate_examples) < 10:
                by_line = line is not None
                self.report.duplicate_examples.append((self._unref(here, by_line), self._unref(first, by_line)))

    def _ref(self, file: str, line: int | None, row: int) -> int:
        """A row's place as one int: the file's index and the line, or the row number where there are no lines."""
        if line is None:
            return row
        if not self.files or self.files[-1] != file:
            self.files.append(file)
        return (len(self.files) - 1) << 40 | line

    def _unref(self, value: int, kind_line: bool) -> str:
        if not kind_line:
            return str(Location(value, self.report.source))
        return f"{self.files[value >> 40]}:{value & ((1 << 40) - 1)}"


def inspect_data(
    source: str | Source,
    *,
    fmt: str = "auto",
    columns: Mapping[str, str] | None = None,
    split: str = "train",
    sample_size: int = TOKEN_SAMPLE,
    seed: int = 0,
    max_errors: int = MAX_ERRORS,
    preview_rows: int = PREVIEW_ROWS,
    on_preview: Callable[[DataReport], None] | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> DataReport:
    """Validate every row of ``source`` in one bounded-memory pass.

    ``on_rows`` gets the count of rows read every ``ROWS_EVERY`` rows and once at the end (progress on big files).

    ``on_preview`` is called once the format is known and the first rows are checked, before the
    rest of the file is read (so a UI can show a first page at once). Raises DataError when the
    source cannot be read at all, is empty, or its format cannot be decided.
    """
    src = source if isinstance(source, Source) else resolve_source(source, split)
    if src.entry is not None and fmt == "auto":  # the dataset_info.json entry says the format
        fmt = src.entry.format
    report = DataReport(src.name, src.kind, [str(f) for f in src.files], columns=dict(columns or {}))
    records = iter_records(src)
    head = _first_rows(records, _HEAD_LIMIT)
    report.format, report.confidence, report.candidates, report.detected_from = _detect_format(
        src.name, head, fmt, columns
    )
    report.notes = list(src.notes)
    reservoir = Reservoir(sample_size, seed)
    check = _RowChecker(report, columns, reservoir, sample_size, max_errors)
    for i, rec in enumerate(head):
        check(rec, i < preview_rows)
    report.form = check.validator.form
    if on_preview is not None:
        on_preview(report)
    for rec in records:
        check(rec, False)
        if on_rows is not None and report.rows % ROWS_EVERY == 0:
            on_rows(report.rows)
    if on_rows is not None:
        on_rows(report.rows)
    report.form = check.validator.form
    report.sample = sorted(reservoir.items, key=lambda item: item[0].row)
    report.complete = True
    return report


def read_row(
    source: str,
    index: int,
    *,
    fmt: str = "auto",
    columns: Mapping[str, str] | None = None,
    split: str = "train",
) -> tuple[str, Location, dict | None, list[RowError]]:
    """Row ``index`` (0-based) of ``source``: (format, location, normalized row or None, its errors)."""
    if index < 0:
        raise DataError(f"row {index}: rows are numbered from 0")
    src = resolve_source(source, split)
    if src.entry is not None and fmt == "auto":
        fmt = src.entry.format
    records = iter_records(src)
    head = _first_rows(records, _HEAD_LIMIT)
    parsed = [map_row(rec[3], columns) for rec in head if rec[3] is not None]
    if not parsed and fmt == "auto":
        raise DataError(f"{src.name}: none of the first {len(head)} rows could be read, so the format is unknown")
    fmt, _, _ = choose_format(parsed, fmt, src.name)
    count = 0
    for rec in itertools.chain(head, records):
        count += 1
        file, line, row, obj, err, _ = rec
        if row != index:
            continue
        where = Location(row, file, line)
        if err is not None:
            return fmt, where, None, [RowError(where, err[0], err[1], err[2])]
        mapped = map_row(obj, columns)
        problems = RowValidator(fmt)(mapped, where)
        if problems:
            return fmt, where, None, [RowError(where, user_field(f, columns), k, r) for f, k, r in problems]
        return fmt, where, normalize_row(mapped, fmt), []
    raise DataError(f"{src.name}: row {index} does not exist; the dataset has {count} rows (numbered from 0)")
