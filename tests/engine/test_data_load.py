"""Loading every supported source, the training path (validate → normalize → mix), and mixing by ratio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunedeck.engine.data import DataError, inspect_data, load_rows, prepare_dataset
from tunedeck.engine.data.mix import as_mix_sources, plan_mix

ALPACA = [{"instruction": f"Add {i} and 1.", "input": "", "output": str(i + 1)} for i in range(6)]


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def sources(tmp_path) -> dict[str, Path]:
    import datasets

    ds = datasets.Dataset.from_list(ALPACA)
    out = {
        "jsonl": jsonl(tmp_path / "a.jsonl", ALPACA),
        "json": tmp_path / "a.json",
        "csv": tmp_path / "a.csv",
        "tsv": tmp_path / "a.tsv",
        "parquet": tmp_path / "a.parquet",
        "saved": tmp_path / "saved",
        "folder": tmp_path / "folder",
    }
    out["json"].write_text(json.dumps(ALPACA))
    ds.to_csv(str(out["csv"]), index=False)
    ds.to_csv(str(out["tsv"]), index=False, sep="\t")
    ds.to_parquet(str(out["parquet"]))
    ds.save_to_disk(str(out["saved"]))
    out["arrow"] = next(out["saved"].glob("*.arrow"))
    out["folder"].mkdir()
    jsonl(out["folder"] / "part-0.jsonl", ALPACA[:3])
    jsonl(out["folder"] / "part-1.jsonl", ALPACA[3:])
    return out


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "tsv", "parquet", "arrow", "saved", "folder"])
def test_every_local_source_loads_validates_and_normalizes(sources, kind):
    path = str(sources[kind])
    report = inspect_data(path)
    assert (report.format, report.rows, report.valid, report.invalid) == ("alpaca", 6, 6, 0)
    ds = prepare_dataset(path)
    assert ds.column_names == ["messages"] and len(ds) == 6
    assert ds[0]["messages"] == [
        {"role": "user", "content": "Add 0 and 1."},
        {"role": "assistant", "content": "1"},
    ]
    assert len(load_rows(path)) == 6


def test_a_folder_of_jsonl_files_names_the_file_and_line(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    jsonl(folder / "a.jsonl", ALPACA[:2])
    jsonl(folder / "b.jsonl", [ALPACA[0], {"instruction": "x", "output": ""}])
    report = inspect_data(str(folder))
    assert report.kind == "jsonl" and report.rows == 4
    assert str(report.errors[0]).startswith(f"{folder / 'b.jsonl'}:2: output: empty")
    assert report.errors[0].where.row == 3


def test_a_folder_with_splits_reads_the_requested_split(tmp_path):
    folder = tmp_path / "splits"
    folder.mkdir()
    jsonl(folder / "train.jsonl", ALPACA)
    jsonl(folder / "test.jsonl", ALPACA[:2])
    assert inspect_data(str(folder)).rows == 6
    assert inspect_data(str(folder), split="test").rows == 2
    with pytest.raises(DataError, match="no 'validation' split"):
        inspect_data(str(folder), split="validation")


def test_csv_rows_with_missing_cells_are_named_by_row(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("instruction,output\nAdd 1 and 1.,2\nAdd 2 and 2.,\n")
    report = inspect_data(str(path))
    assert report.invalid == 1
    assert str(report.errors[0]) == f"{path} row 1: output: missing; add it, or map your column to it with data.columns"


def test_a_hub_id_offline_is_a_clear_data_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match=r"someone/some-dataset: not a local file.*offline"):
        inspect_data("someone/some-dataset")


def test_training_refuses_invalid_rows_and_names_them(tmp_path):
    path = jsonl(tmp_path / "bad.jsonl", [*ALPACA, {"instruction": "x", "output": ""}, {"instruction": "y"}])
    with pytest.raises(DataError) as e:
        prepare_dataset(str(path))
    message = str(e.value)
    assert (
        "2 of 8 rows" in message and f"{path}:7: output: empty" in message and f"{path}:8: output: missing" in message
    )
    assert "tunedeck data inspect" in message


def test_training_checks_the_format_fits_the_method(tmp_path):
    path = jsonl(tmp_path / "a.jsonl", ALPACA)
    with pytest.raises(DataError, match="method dpo needs preference"):
        prepare_dataset(str(path), method="dpo")


def test_mixing_is_by_share_of_the_final_set_and_deterministic(tmp_path):
    main = jsonl(tmp_path / "main.jsonl", [{"text": f"main {i}"} for i in range(80)])
    general = jsonl(tmp_path / "general.jsonl", [{"text": f"general {i}"} for i in range(500)])
    a = prepare_dataset(str(main), mix=[(str(general), 0.2)], seed=1)
    b = prepare_dataset(str(main), mix=[{"path": str(general), "ratio": 0.2}], seed=1)
    c = prepare_dataset(str(main), mix=[(str(general), 0.2)], seed=2)
    assert len(a) == 100
    assert sum(t.startswith("general") for t in a["text"]) == 20
    assert a["text"] == b["text"]
    assert a["text"] != c["text"]
    assert len(set(a["text"])) == 100  # enough general rows: nothing repeats


def test_a_small_mix_source_repeats_and_the_plan_says_so():
    assert plan_mix(90, [5], [0.1]) == [{"rows": 10, "available": 5, "share": 0.1, "repeated": True}]
    with pytest.raises(DataError, match="between 0 and 1"):
        as_mix_sources([("x.jsonl", 1.5)])
    with pytest.raises(DataError, match="add up to 1.1"):
        as_mix_sources([("x.jsonl", 0.6), ("y.jsonl", 0.5)])


def test_mixing_different_forms_is_refused(tmp_path):
    main = jsonl(tmp_path / "main.jsonl", ALPACA)
    text = jsonl(tmp_path / "text.jsonl", [{"text": "plain"}])
    with pytest.raises(DataError, match=r"data.mix\[0\].*text.*alpaca.*same form"):
        prepare_dataset(str(main), mix=[(str(text), 0.2)])


def test_inspect_shows_the_mix(tmp_path):
    from tunedeck.engine.data.mix import MixSource, inspect_mix

    main = jsonl(tmp_path / "main.jsonl", ALPACA)
    sharegpt = [
        {"conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}]} for i in range(10)
    ]
    general = jsonl(tmp_path / "general.jsonl", sharegpt)
    mix = inspect_mix(inspect_data(str(main)), [MixSource(str(general), 0.25)], seed=0)
    assert [(s["format"], s["rows"]) for s in mix["sources"]] == [("alpaca", 6), ("sharegpt", 2)]
    assert mix["total"] == 8 and not mix["incompatible"] and not mix["warnings"]
