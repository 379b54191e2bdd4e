"""Dataset loading: local files and folders through ``datasets``, or a Hub id."""

from __future__ import annotations

from pathlib import Path

BUILDERS = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".arrow": "arrow",
}


class DataError(ValueError):
    """A dataset problem the user can fix; the message names the file and what to do."""


def load_rows(source: str, split: str = "train"):
    """Load a dataset as a ``datasets.Dataset`` from a file, a folder or a Hub id."""
    import datasets

    path = Path(source).expanduser()
    if path.is_file():
        builder = BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise DataError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(BUILDERS)}")
        kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        try:
            return datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
        except Exception as e:  # datasets wraps parse errors in several types
            raise DataError(f"{path}: could not be read as {builder}: {e}") from None
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            ds = datasets.load_from_disk(str(path))
            return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
        return datasets.load_dataset(str(path), split=split)
    if path.is_absolute() or source.startswith((".", "~")) or path.suffix.lower() in BUILDERS:
        raise DataError(f"{source}: no such file or folder")
    try:
        return datasets.load_dataset(source, split=split)
    except Exception as e:
        raise DataError(
            f"{source}: not a local file or folder, and loading it from the Hugging Face Hub failed "
            f"({type(e).__name__}). If you are offline, download it elsewhere and point data.train at the files."
        ) from None
