"""The Export screen's checkpoint picker: any complete checkpoint of any run, the default said as the engine says it."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Select

from tests.helpers import drive, make_run, record_notifications, settle
from tunedeck.engine.export.errors import ExportError
from tunedeck.engine.export.merge import weights_source
from tunedeck.engine.run.rundir import RunDir
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.textual_compat import select_options


def _run(tmp_path: Path, state: str, steps: tuple[int, ...], final: bool = False, incomplete: int | None = None) -> RunDir:
    run = make_run(tmp_path, state=state)
    run.recipe_path.write_text(f"model: {{name_or_path: {tmp_path}/base}}\ndata: {{train: {tmp_path}/d.jsonl}}\n")
    for step in (*steps, *([incomplete] if incomplete else [])):
        folder = run.checkpoints / f"step-{step:06d}"
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text("{}")
        if step != incomplete:
            (folder / "COMPLETE").write_text("")
    if final:
        run.adapter.mkdir()
        (run.adapter / "adapter_config.json").write_text("{}")
    return run


def _picker(tmp_path: Path, monkeypatch) -> tuple[list[str], object, list[tuple[str, str]]]:
    app = TunedeckApp(workspace=tmp_path)
    seen: dict = {}
    notes = record_notifications(app, monkeypatch)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("7")
        await settle(pilot)
        picker = app.screen.query_one("#export-checkpoint", Select)
        seen["options"] = [value for _, value in select_options(picker) if isinstance(value, str)]
        seen["value"] = picker.value
        await pilot.press("x")
        await pilot.pause()

    drive(app, steps, size=(100, 30))
    return seen["options"], seen["value"], notes


def test_a_stopped_run_offers_its_complete_checkpoints_newest_first(tmp_path: Path, monkeypatch) -> None:
    _run(tmp_path, "stopped", (2, 4), incomplete=6)
    options, value, _ = _picker(tmp_path, monkeypatch)
    assert options == ["step-000004", "step-000002"] and value == "step-000004"  # step 6 was never completed


def test_a_finished_run_defaults_to_its_final_weights(tmp_path: Path, monkeypatch) -> None:
    _run(tmp_path, "finished", (2,), final=True)
    options, value, _ = _picker(tmp_path, monkeypatch)
    assert options == ["final", "step-000002"] and value == "final"


def test_a_run_with_nothing_complete_says_so_on_export(tmp_path: Path, monkeypatch) -> None:
    _run(tmp_path, "crashed", (), incomplete=3)
    options, _, notes = _picker(tmp_path, monkeypatch)
    assert options == [] and "has no final weights and no complete checkpoint yet" in notes[-1][1]


def test_weights_source_by_name_number_and_latest(tmp_path: Path) -> None:
    run = _run(tmp_path, "failed", (2, 4))
    assert weights_source(run).checkpoint == "step-000004"
    assert weights_source(run, "2").checkpoint == weights_source(run, "step-000002").checkpoint == "step-000002"
    assert weights_source(run, "latest").checkpoint == "step-000004"
    with pytest.raises(ExportError, match=r"no complete checkpoint 'step-000009' \(complete: step-000002, step-000004\)"):
        weights_source(run, "step-000009")
