"""Loading: local files and folders through ``datasets`` for training, and a bounded-memory record
stream for validation that knows each row's FILE:LINE.

JSON Lines are streamed here line by line (that is what gives line numbers and lets non-UTF-8
bytes and invalid JSON be reported per line); every other format goes through ``datasets`` and
rows are named by index. A UTF-8 byte-order mark (BOM) at the start of a file is read past.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.engine.data.errors import DataError, json_type_name

BUILDERS = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".txt": "text",
}
ROW_LIST_KEYS = ("train", "data", "rows", "examples", "instances")  # {"train": [...]}-style JSON files
WHOLE_JSON_LIMIT = 2 << 30  # a .json file this size or less may be parsed whole to tell one object from JSON Lines
BOM = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark: some editors and exports start files with one; it is skipped

# One record of the stream: (file, line or None, row index, parsed object or None, error or None, raw line or None).
# ``error`` is (field, kind, reason). A plain tuple keeps the per-line cost low on million-row files.
Record = tuple[str, "int | None", int, "dict | None", "tuple[str, str, str] | None", "bytes | None"]


@dataclass
class Source:
    """A resolved data source: JSON Lines files streamed here, a JSON array, or anything ``datasets`` loads."""

    name: str
    kind: str  # "jsonl" | "json_array" | "json_object" | "text_lines" | "text_blocks" | "datasets"
    files: list[Path] = field(default_factory=list)
    split: str = "train"
    notes: list[str] = field(default_factory=list)  # how the rows were read, for the report
    entry: Any = None  # a LLaMA-Factory dataset_info.json entry (kind "llamafactory"): rows are rewritten by it
    inner: Source | None = None  # the entry's data file, as read on its own

    @property
    def streamed(self) -> bool:
        return self.kind != "datasets"


def quiet_datasets() -> None:
    """Silence ``datasets`` progress bars and info logs (for the CLI, where they are noise)."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def _is_hf_saved(path: Path) -> bool:
    return (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()


def _sniff_json(path: Path) -> str:
    """``json_array`` when the file is one JSON array; ``json_object`` when it is one JSON object spread over
    lines (pretty-printed) or a one-line ``{"train": [...], ...}`` file; else ``jsonl`` (one object per line)."""
    with path.open("rb") as f:
        head = f.read(4096).lstrip(BOM).lstrip()
        if head.startswith(b"["):
            return "json_array"
        f.seek(0)
        lines = [raw.strip().lstrip(BOM) for raw, _ in zip((r for r in f if r.strip()), range(2), strict=False)]
    try:
        obj = json.loads(lines[0]) if lines else None
    except (json.JSONDecodeError, UnicodeDecodeError):  # one object over many lines, or a broken first line
        if not lines[0].startswith(b"{") or path.stat().st_size > WHOLE_JSON_LIMIT:
            return "jsonl"
        try:
            return "json_object" if isinstance(json.loads(path.read_bytes().lstrip(BOM)), dict) else "jsonl"
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "jsonl"  # reported line by line
    return "json_object" if isinstance(obj, dict) and len(lines) == 1 and _row_list_key(obj) else "jsonl"


def _row_list_key(obj: dict, split: str = "train") -> str | None:
    """The key of a ``{"train": [rows], "test": [rows]}``-style object (every value a list of rows): the split's
    name or a usual name. None for anything else, e.g. one conversation (``{"messages": [...]}``)."""
    if not all(isinstance(v, list) and all(isinstance(r, dict) for r in v) for v in obj.values()):
        return None
    return next((k for k in (split, *ROW_LIST_KEYS) if obj.get(k)), None)


def _json_object_rows(path: Path, name: str, split: str) -> tuple[list, str]:
    """The rows of a JSON file holding one object, and a note saying how they were read."""
    data = path.read_bytes()
    try:
        obj = json.loads(data[len(BOM) :] if data.startswith(BOM) else data)
    except UnicodeDecodeError as e:
        raise DataError(f"{name}: not valid UTF-8 (byte 0x{data[e.start]:02x}); re-encode the file as UTF-8") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{name}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{name}: expected a JSON object, a JSON array of rows, or one JSON object per line")
    key = _row_list_key(obj, split)
    if key is None:
        return [obj], f"{name} holds one JSON object: read as one row"
    return obj[key], f"{name} holds one JSON object: read the {len(obj[key]):,} rows of its {key!r} list"


def _bom_notes(path: Path, source: str) -> list[str]:
    """A note for the report when the file starts with a byte-order mark (read past, as ``utf-8-sig`` does)."""
    with path.open("rb") as f:
        starts = f.read(len(BOM)) == BOM
    return [f"{source} starts with a UTF-8 byte-order mark (BOM); read past it"] if starts else []


def _blank_line_separated(path: Path) -> bool:
    """True when blank lines separate multi-line documents in a text file: some block between blank lines has
    more than one line. Blank lines between one-line documents are just spacing."""
    blank = multi = gap = seen = previous_text = False
    with path.open("rb") as f:
        for raw in f:
            if raw.strip():
                multi = multi or previous_text
                blank = blank or gap  # a blank line with text on both sides
                seen = previous_text = True
            else:
                gap = seen
                previous_text = False
            if blank and multi:
                return True
    return False


def _split_files(path: Path, split: str) -> list[Path]:
    """The files ``datasets.load_dataset(folder, split=...)`` would read, in its order."""
    from datasets.data_files import DataFilesDict, get_data_patterns

    try:
        patterns = get_data_patterns(str(path))
        files = DataFilesDict.from_patterns(patterns, base_path=str(path))
    except Exception as e:  # datasets raises EmptyDatasetError and friends
        raise DataError(f"{path}: no data files found in this folder ({type(e).__name__}: {e})") from None
    if split not in files:
        raise DataError(f"{path}: the folder has no {split!r} split; it has: {', '.join(map(str, files))}")
    return [Path(f) for f in files[split]]


def resolve_source(source: str, split: str = "train") -> Source:
    """Decide how to read ``source`` (a file, a folder, a dataset_info.json#entry or a Hub id) without reading it yet."""
    from tunedeck.engine.data.llamafactory import is_dataset_info, read_entry

    if is_dataset_info(source):
        entry = read_entry(source)
        inner = resolve_source(str(entry.file), split)
        note = (f"{source}: LLaMA-Factory entry {entry.name!r} ({entry.formatting}"
                f"{', ranking' if entry.ranking else ''}), file {entry.file}, read as {entry.format}")  # fmt: skip
        return Source(source, "llamafactory", inner.files, split, [note, *inner.notes], entry, inner)
    path = Path(source).expanduser()
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix not in BUILDERS:
            raise DataError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(BUILDERS)}")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty; there is nothing to train on")
        if suffix == ".jsonl":
            return Source(source, "jsonl", [path], split, _bom_notes(path, source))
        if suffix == ".json":
            kind = _sniff_json(path)
            notes = [_json_object_rows(path, source, split)[1]] if kind == "json_object" else []
            return Source(source, kind, [path], split, _bom_notes(path, source) + notes)
        if suffix == ".txt":
            if _blank_line_separated(path):
                return Source(source, "text_blocks", [path], split, [f"{source}: plain text; blank lines separate documents"])
            return Source(source, "text_lines", [path], split, [f"{source}: plain text; one document per line"])
        return Source(source, "datasets", [path], split)
    if path.is_dir():
        if _is_hf_saved(path):
            return Source(source, "datasets", [path], split)
        files = _split_files(path, split)
        if files and all(f.suffix.lower() in (".jsonl", ".json") for f in files):
            if all(f.stat().st_size == 0 for f in files):
                raise DataError(f"{path}: every data file in the folder is empty")
            if all(f.suffix.lower() == ".jsonl" or _sniff_json(f) == "jsonl" for f in files):
                return Source(source, "jsonl", files, split)
        return Source(source, "datasets", files, split)
    if path.is_absolute() or source.startswith((".", "~")) or path.suffix.lower() in BUILDERS or not source.strip():
        raise DataError(f"{source}: no such file or folder")
    return Source(source, "datasets", [], split)


def _csv_kwargs(path: Path) -> dict:
    """Every column read as text (a column of digits is still an answer, not a number)."""
    import csv

    import datasets

    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f, delimiter=delimiter), [])
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not valid UTF-8 (byte 0x{e.object[e.start]:02x}); re-encode the file as UTF-8"
        ) from None
    if not header or len(set(header)) != len(header):
        raise DataError(f"{path}: the first line must be a header naming each column once; got {header}")
    return {"delimiter": delimiter, "features": datasets.Features({c: datasets.Value("string") for c in header})}


def load_rows(source: str, split: str = "train"):
    """Load a dataset as a ``datasets.Dataset`` from a file, a folder or a Hub id."""
    import datasets

    from tunedeck.engine.data.llamafactory import is_dataset_info

    if is_dataset_info(source):  # rows rewritten by the entry, as validation reads them
        return _as_dataset(resolve_source(source, split))
    path = Path(source).expanduser()
    if path.is_file():
        builder = BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise DataError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(BUILDERS)}")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty; there is nothing to train on")
        src = resolve_source(source, split)
        if src.kind in ("json_object", "text_lines", "text_blocks"):  # read as validation reads them
            return _as_dataset(src)
        kwargs = _csv_kwargs(path) if builder == "csv" else {}
        try:
            return datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
        except Exception as e:  # datasets wraps parse errors in several types
            raise DataError(
                f"{path}: could not be read as {builder}: {e}. Run `tunedeck data inspect {path}` to find the bad rows."
            ) from None
    if path.is_dir():
        try:
            if _is_hf_saved(path):
                ds = datasets.load_from_disk(str(path))
                if isinstance(ds, datasets.DatasetDict):
                    if split not in ds:
                        raise DataError(f"{path}: the saved dataset has no {split!r} split; it has: {', '.join(ds)}")
                    return ds[split]
                return ds
            return datasets.load_dataset(str(path), split=split)
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"{path}: could not be loaded as a dataset folder: {type(e).__name__}: {e}") from None
    if path.is_absolute() or source.startswith((".", "~")) or path.suffix.lower() in BUILDERS or not source.strip():
        raise DataError(f"{source}: no such file or folder")
    try:
        return datasets.load_dataset(source, split=split)
    except Exception as e:
        raise DataError(
            f"{source}: not a local file or folder, and loading it from the Hugging Face Hub failed "
            f"({type(e).__name__}). If you are offline, download it on a machine with network access "
            "(the data files, or `Dataset.save_to_disk`) and point at the local path."
        ) from None


# --------------------------------------------------------------------------- the record stream


def _as_dataset(source: Source):
    """A ``datasets.Dataset`` of the rows validation reads from ``source`` (a JSON object, a text file, a
    dataset_info.json entry), through a JSON Lines copy so that ``datasets`` infers the schema from every
    row, as for any JSON Lines file. Held in memory; nothing is cached between calls, so an edited entry or
    file is always read afresh."""
    import datasets

    with tempfile.TemporaryDirectory(prefix="tunedeck-rows-") as tmp:
        copy = Path(tmp) / "rows.jsonl"
        with copy.open("w", encoding="utf-8") as f:
            for record in iter_records(source):
                if record[3] is not None:
                    f.write(json.dumps(record[3], ensure_ascii=False) + "\n")
        try:
            return datasets.load_dataset("json", data_files=str(copy), split="train", cache_dir=tmp, keep_in_memory=True)
        except Exception as e:  # datasets wraps schema and parse errors in several types
            raise DataError(
                f"{source.name}: could not be loaded as a dataset: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. "
                f"Run `tunedeck data inspect {source.name}` to find the bad rows."
            ) from None


def _iter_text(path: Path, name: str, blocks: bool) -> Iterator[Record]:
    """A text file's documents as ``{"text"}`` rows: one per line, or blocks separated by blank lines."""
    row, start, lines = 0, 0, []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").removeprefix("\ufeff") if lineno == 1 else raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield name, lineno, row, None, ("", "not_utf8", f"not valid UTF-8 (byte 0x{raw[e.start]:02x}); "
                                                "re-encode the file as UTF-8"), None  # fmt: skip
                row += 1
                continue
            if not blocks:
                if line.strip():
                    yield name, lineno, row, {"text": line.rstrip("\r\n")}, None, None
                    row += 1
                continue
            if line.strip():
                start = start or lineno
                lines.append(line)
            elif lines:
                yield name, start, row, {"text": "".join(lines).rstrip("\r\n")}, None, None
                row, start, lines = row + 1, 0, []
    if lines:
        yield name, start, row, {"text": "".join(lines).rstrip("\r\n")}, None, None


def _iter_jsonl(path: Path, name: str, first_row: int) -> Iterator[Record]:
    row = first_row
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            skipped = len(raw) - len(raw.lstrip())  # bytes before the line's text, for columns
            if lineno == 1 and line.startswith(BOM):  # read past a byte-order mark
                rest = line[len(BOM) :]
                line, skipped = rest.strip(), skipped + len(BOM) + len(rest) - len(rest.lstrip())
            if not line:
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                col = e.start + skipped + 1
                yield (
                    name, lineno, row, None,
                    ("", "not_utf8", f"not valid UTF-8 (byte 0x{line[e.start]:02x} at column {col}); "
                     "re-encode the file as UTF-8"),
                    None,
                )  # fmt: skip
                row += 1
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                yield name, lineno, row, None, ("", "invalid_json", f"invalid JSON: {e.msg} (column {e.colno})"), None
                row += 1
                continue
            if not isinstance(obj, dict):
                reason = f"expected a JSON object per line, got {json_type_name(obj)}"
                yield name, lineno, row, None, ("", "wrong_type", reason), None
            else:
                yield name, lineno, row, obj, None, line
            row += 1


def _iter_json_array(path: Path, name: str) -> Iterator[Record]:
    data = path.read_bytes()
    bom = data.startswith(BOM)
    try:
        text = data[len(BOM) :].decode("utf-8") if bom else data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{name}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x}); re-encode the file as UTF-8"
        ) from None
    del data
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{name}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}; fix it or convert the file to JSON Lines"
        ) from None
    if not isinstance(rows, list):
        raise DataError(f"{name}: expected a JSON array of rows, or one JSON object per line (JSON Lines)")
    if not rows:
        raise DataError(f"{name}: the JSON array is empty; there is nothing to train on")
    for i, obj in enumerate(rows):
        if not isinstance(obj, dict):
            yield name, None, i, None, ("", "wrong_type", f"expected a JSON object, got {json_type_name(obj)}"), None
        else:
            yield name, None, i, obj, None, None


def _iter_dataset(source: Source) -> Iterator[Record]:
    ds = load_rows(source.name, source.split)
    if len(ds) == 0:
        raise DataError(f"{source.name}: the dataset has no rows; there is nothing to train on")
    row = 0
    for batch in ds.iter(batch_size=1000):
        columns = list(batch)
        n = len(batch[columns[0]]) if columns else 0
        for i in range(n):
            yield source.name, None, row, {c: batch[c][i] for c in columns}, None, None
            row += 1


def iter_records(source: Source) -> Iterator[Record]:
    """Every row of ``source`` in order, with its location; parse problems come back as errors, not exceptions."""
    if source.kind == "llamafactory":
        for file, line, row, obj, err, raw in iter_records(source.inner):
            yield file, line, row, (source.entry.rewrite(obj) if obj is not None else None), err, raw
    elif source.kind == "jsonl":
        row = 0
        many = len(source.files) > 1
        for path in source.files:
            name = str(path) if many else source.name
            for record in _iter_jsonl(path, name, row):
                row = record[2] + 1
                yield record
    elif source.kind == "json_array":
        yield from _iter_json_array(source.files[0], source.name)
    elif source.kind == "json_object":
        rows, _ = _json_object_rows(source.files[0], source.name, source.split)
        for i, obj in enumerate(rows):
            if isinstance(obj, dict):
                yield source.name, None, i, obj, None, None
            else:
                yield source.name, None, i, None, ("", "wrong_type", f"expected a JSON object, got {json_type_name(obj)}"), None
    elif source.kind in ("text_lines", "text_blocks"):
        yield from _iter_text(source.files[0], source.name, source.kind == "text_blocks")
    else:
        yield from _iter_dataset(source)
