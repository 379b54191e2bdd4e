"""The Train screen's rank panel: each rank's step and memory from its heartbeat file."""

from __future__ import annotations

import time
from pathlib import Path

from textual.pilot import Pilot

from tests.helpers import drive, make_run, settle
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.widgets.ranks import RankPanel, rank_line


def test_rank_line_shows_step_memory_and_a_silent_rank():
    now = time.time()
    gpu = {"rank": 3, "step": 40, "max_steps": 100, "device": "cuda:3", "memory_mib": 5120, "peak_mib": 6144,
           "total_mib": 81920, "host": "gpu-b", "state": "running", "ts": now - 2}  # fmt: skip
    assert rank_line(gpu, now) == "rank 3  step 40/100  cuda:3 5.0/80.0 GiB (peak 6.0)  gpu-b  running"
    cpu = {"rank": 1, "step": 2, "device": "cpu", "memory_mib": 600, "state": "running", "ts": now - 90}
    assert rank_line(cpu, now) == "rank 1  step 2/?  cpu 0.6 GiB  running, silent 90s"


def test_train_shows_every_rank_of_a_many_process_run_only(tmp_path: Path) -> None:
    run = make_run(tmp_path, "20260101-000001-sft-beef", steps=7)  # the newest: selected on Runs
    for rank in (0, 1):
        run.write_rank(rank, world_size=2, pid=100 + rank, host="box", state="running", step=7, max_steps=10,
                       device=f"cuda:{rank}", memory_mib=2048.0 * (rank + 1), total_mib=24576.0)  # fmt: skip
    single = make_run(tmp_path, steps=2)
    single.write_rank(0, world_size=1, pid=99, host="box", state="finished", step=2, device="cpu", memory_mib=500.0)
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("a")  # attach the selected (first) run
        await pilot.pause(1.3)  # the panel polls every second
        await settle(pilot)
        panel = app.screen.query_one(RankPanel)
        assert app.screen.run.id == run.id and panel.display
        lines = str(panel.content).splitlines()
        assert lines[0].startswith("rank 0  step 7/10  cuda:0 2.0/24.0 GiB")
        assert lines[1].startswith("rank 1  step 7/10  cuda:1 4.0/24.0 GiB")
        app.screen._follow(single)
        await pilot.pause(1.3)
        await settle(pilot)
        assert not panel.display  # one process: nothing to compare

    drive(app, steps)
