"""Snapshots of every screen at 80x24 (pytest-textual-snapshot); regenerate with --snapshot-update.

Deterministic inputs: a workspace at a fixed path, a run with a fixed id and event times, host RAM
pinned, UTC clock, and every worker settled before the picture is taken.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.helpers import drive, fresh, make_run, settle, write_workspace  # noqa: F401
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens import SCREEN_ORDER

SNAP_WS = Path("/tmp/tunedeck-snapshot-ws")


@pytest.fixture
def snap_app(demo_assets, monkeypatch: pytest.MonkeyPatch) -> TunedeckApp:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr("tunedeck.tui.widgets.gpu_panel.host_ram", lambda: (4 * 2**30, 16 * 2**30))
    monkeypatch.setattr("tunedeck.tui.widgets.gpu_panel.sample_gpus", lambda: ([], "no NVIDIA GPU (NVML not available)"))
    ws = fresh(SNAP_WS)
    write_workspace(ws, demo_assets.base)
    run = make_run(ws, steps=7)
    run.export_report.write_text(json.dumps({"files": [{"type": "F16", "size_bytes": 3 * 2**20,
                                                        "fidelity": {"perplexity": 1.5, "top1_agreement": 0.99}}],
                                             "seconds": {"merge": 1.2, "reference": 0.8, "convert": 2.1,
                                                         "parity": 0.4, "verify_F16": 0.9},
                                             "warnings": []}))  # fmt: skip
    return TunedeckApp(workspace=ws)


@pytest.mark.parametrize("number", range(1, len(SCREEN_ORDER) + 1), ids=[m for m, _, _ in SCREEN_ORDER])
def test_screen_at_80x24(snap_compare, snap_app: TunedeckApp, number: int) -> None:
    async def before(pilot: Pilot) -> None:
        await pilot.press(str(number))
        await settle(pilot, rounds=4)
        if number == 8:  # nothing exported in the fixture: the chat screen shows its empty state
            await pilot.pause(0.2)

    assert snap_compare(snap_app, terminal_size=(80, 24), run_before=before)


def test_help_at_80x24(snap_compare, snap_app: TunedeckApp) -> None:
    async def before(pilot: Pilot) -> None:
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(snap_app, terminal_size=(80, 24), run_before=before)
