"""Datasets: loading, format detection and normalization to TRL form, row-level validation, mixing, stats.

``load_rows`` and ``DataError`` are the original API; ``prepare_dataset`` is what training calls,
``inspect_data`` what ``tunedeck data inspect`` calls. Nothing here imports ``datasets`` until used.
"""

from __future__ import annotations

from tunedeck.engine.data.errors import DataError, Location, RowError
from tunedeck.engine.data.formats import (
    FORMATS,
    TRL_COLUMNS,
    choose_format,
    detect_format,
    map_row,
    normalize_dataset,
    normalize_row,
)
from tunedeck.engine.data.inspect import DataReport, inspect_data
from tunedeck.engine.data.load import BUILDERS, Source, iter_records, load_rows, resolve_source
from tunedeck.engine.data.mix import MixSource, as_mix_sources, mix_datasets, plan_mix
from tunedeck.engine.data.prepare import check_data, load_normalized, prepare_dataset, prepare_splits
from tunedeck.engine.data.validate import RowValidator

__all__ = [
    "BUILDERS",
    "FORMATS",
    "TRL_COLUMNS",
    "DataError",
    "DataReport",
    "Location",
    "MixSource",
    "RowError",
    "RowValidator",
    "Source",
    "as_mix_sources",
    "check_data",
    "choose_format",
    "detect_format",
    "inspect_data",
    "iter_records",
    "load_normalized",
    "load_rows",
    "map_row",
    "mix_datasets",
    "normalize_dataset",
    "normalize_row",
    "plan_mix",
    "prepare_dataset",
    "prepare_splits",
    "resolve_source",
]
