"""Loading: local files and folders through ``datasets`` for training, and a bounded-memory record
stream for validation that knows each row's FILE:LINE.

JSON Lines are streamed here line by line (that is what gives line numbers and lets BOMs,
non-UTF-8 bytes and invalid JSON be reported per line); every other format goes through
``datasets`` and rows are named by index.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data.errors import DataError, json_type_name

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
BOM = b"\xef\xbb\xbf"

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
    """``json_array`` when the file is one JSON array; ``json_object`` when it is one JSON object (pretty-printed,
    or a ``{"train": [...]}`` file); else ``jsonl`` (one object per line)."""
    with path.open("rb") as f:
        head = f.read(4096).lstrip(BOM).lstrip()
        if head.startswith(b"["):
            return "json_array"
        f.seek(0)
        first = b""
        for raw in f:
            if raw.strip():
                first = raw.strip().lstrip(BOM)
                break
    try:
        obj = json.loads(first)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "json_object" if first.startswith(b"{") and not first.endswith(b"}") else "jsonl"
    return "json_object" if isinstance(obj, dict) and _row_list_key(obj) else "jsonl"


def _row_list_key(obj: dict, split: str = "train") -> str | None:
    """The key of a ``{"train": [rows]}``-style object: the split's name, a usual name, or its only list of rows."""
    lists = [k for k, v in obj.items() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
    for key in (split, *ROW_LIST_KEYS):
        if key in lists:
            return key
    return lists[0] if len(lists) == 1 and len(obj) == 1 else None


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


def _blank_line_separated(path: Path) -> bool:
    """True when blank lines separate documents in a text file (a blank line between two non-blank ones)."""
    seen_text = blank = False
    with path.open("rb") as f:
        for raw in f:
            if raw.strip():
                if seen_text and blank:
                    return True
                seen_text = True
            else:
                blank = seen_text
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
    from engine.data.llamafactory import is_dataset_info, read_entry

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
            return Source(source, "jsonl", [path], split)
        if suffix == ".json":
            kind = _sniff_json(path)
            notes = [_json_object_rows(path, source, split)[1]] if kind == "json_object" else []
            return Source(source, kind, [path], split, notes)
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

    from engine.data.llamafactory import is_dataset_info

    if is_dataset_info(source):  # rows rewritten by the entry, as validation reads them
        stamp = [(f.stat().st_size, f.stat().st_mtime_ns) for f in resolve_source(source, split).files]
        return datasets.Dataset.from_generator(_rows_of, gen_kwargs={"source": source, "split": split, "stamp": stamp})
    path = Path(source).expanduser()
    if path.is_file():
        builder = BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise DataError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(BUILDERS)}")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty; there is nothing to train on")
        src = resolve_source(source, split)
        if src.kind in ("json_object", "text_lines", "text_blocks"):  # read as validation reads them
            stat = path.stat()
            return datasets.Dataset.from_generator(
                _rows_of, gen_kwargs={"source": source, "split": split, "stamp": (stat.st_size, stat.st_mtime_ns)}
            )
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


def _rows_of(source: str, split: str, stamp: tuple) -> Iterator[dict]:
    """The parsed rows of a source (``stamp``, the file's size and mtime, keys ``datasets``' cache)."""
    for record in iter_records(resolve_source(source, split)):
        if record[3] is not None:
            yield record[3]


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
            if not line:
                continue
            if lineno == 1 and line.startswith(BOM):
                yield (
                    name, lineno, row, None,
                    ("", "bom", "the file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without a BOM "
                     f"(e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' {name})"),
                    None,
                )  # fmt: skip
                row += 1
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                col = e.start + len(raw) - len(raw.lstrip()) + 1
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
        if i == 0 and bom:
            yield (
                name,
                None,
                i,
                None,
                ("", "bom", "the file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without a BOM"),
                None,
            )
        elif not isinstance(obj, dict):
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
