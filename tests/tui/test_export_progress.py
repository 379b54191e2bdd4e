"""The Export screen shows the export pipeline's own stage events as they happen, then sizes and fidelity."""

from __future__ import annotations

import json
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, ProgressBar, Select, SelectionList

from tests.helpers import drive, settle, tunedeck
from tunedeck.engine.run.rundir import list_runs
from tunedeck.tui.app import TunedeckApp


def test_export_shows_each_stage_from_the_pipeline_then_sizes_and_fidelity(tmp_path: Path, demo_assets, monkeypatch) -> None:
    """A real export of a real 2-step SFT run: merge, convert, parity, quantize and check Q8_0, stage by stage."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    ws = tmp_path / "ws"
    tunedeck("demo", "--init", str(ws), check=True)
    small = ["--set", "export.eval_rows=8", "--set", "export.fidelity_texts=8", "--set", "export.adapter=false"]
    tunedeck("train", "recipe.yaml", "--set", "train.max_steps=2", "--set", "train.save_steps=100", *small, cwd=ws, check=True)
    app = TunedeckApp(workspace=ws)
    seen: list[tuple[str, str]] = []

    async def steps(pilot: Pilot) -> None:
        await pilot.press("7")
        await settle(pilot)
        screen = app.screen
        observe = screen._stage
        monkeypatch.setattr(screen, "_stage", lambda st, state, s: (seen.append((st, state)), observe(st, state, s)))
        quants = screen.query_one("#export-quants", SelectionList)
        quants.deselect_all()
        quants.select("Q8_0")
        await pilot.press("x")
        await pilot.pause()
        assert [stage for stage, state in seen if state == "pending"] == [
            "merge", "reference", "convert", "parity", "quantize_Q8_0", "verify_Q8_0",
        ]  # fmt: skip
        for _ in range(1500):  # the export runs as a detached job (tunedeck.engine.export.job); the screen follows its events
            await pilot.pause(0.2)
            if not screen.busy:
                break
        await settle(pilot)
        table = screen.query_one("#export-stages", DataTable)
        rows = {table.coordinate_to_cell_key((i, 0)).row_key.value: [str(c) for c in table.get_row_at(i)]
                for i in range(table.row_count)}  # fmt: skip
        report = json.loads(list_runs(ws / "runs")[0].export_report.read_text())
        assert report["ok"] and set(rows) == set(report["seconds"])  # one row per stage the pipeline timed
        for stage, (label, state, seconds) in rows.items():
            assert state == "done" and float(seconds) >= 0, (stage, label)
        assert rows["quantize_Q8_0"][0] == "quantize Q8_0" and rows["verify_Q8_0"][0] == "check Q8_0 against HF"
        started = [stage for stage, state in seen if state == "start"]
        assert started.index("merge") < started.index("convert") < started.index("quantize_Q8_0") < started.index("verify_Q8_0")
        assert "done: 1 file(s)" in str(screen.query_one("#export-now").content)  # the last line stays
        bar = screen.query_one("#export-bar", ProgressBar)
        assert bar.total == len(rows) and bar.progress == len(rows)
        files = screen.query_one("#export-files", DataTable)
        row = [str(c) for c in files.get_row_at(0)]
        assert row[0] == "Q8_0" and row[1].endswith("MiB") and row[4].endswith("%")  # size and top-1 agreement
        assert report["checks"]["level"] == "quick"  # the picker's default, the recipe's export.checks
        assert str(screen.query_one("#export-checks-line").content).startswith("checks: quick, ")

        # The checks picker: none writes the file unchecked, and the stages say so before it starts
        seen.clear()
        screen.query_one("#export-checks", Select).value = "none"
        await pilot.press("x")
        await pilot.pause()
        assert [stage for stage, state in seen if state == "pending"] == ["merge", "convert", "quantize_Q8_0"]
        for _ in range(1500):
            await pilot.pause(0.2)
            if not screen.busy:
                break
        await settle(pilot)
        report = json.loads(list_runs(ws / "runs")[0].export_report.read_text())
        assert report["ok"] and report["checks"]["level"] == "none" and "verify" not in report["files"][0]
        assert str(screen.query_one("#export-checks-line").content).startswith("checks: none")

    drive(app, steps)
