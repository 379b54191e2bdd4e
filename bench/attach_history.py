"""Attach to a run with 100,000 events: seconds until its whole history is on screen (JSON out)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tunedeck.engine.run.rundir import RunDir

N_EVENTS = 100_000


def make_run(root: Path) -> RunDir:
    run = RunDir(root / "runs" / "20260101-000000-sft-bench")
    run.path.mkdir(parents=True)
    run.recipe_path.write_text("model: {}\n")
    t0 = time.time()
    with run.events_path.open("w") as f:
        f.write(json.dumps({"ts": t0, "kind": "train_begin", "step": 0, "max_steps": N_EVENTS}) + "\n")
        for step in range(1, N_EVENTS):
            event = {"ts": t0 + step * 0.1, "kind": "step", "step": step, "max_steps": N_EVENTS,
                     "loss": 2.0 / (1 + step / 1000), "lr": 2e-4, "grad_norm": 1.0, "tokens_per_s": 5000.0}  # fmt: skip
            f.write(json.dumps(event) + "\n")
    run.append_event("finished", step=N_EVENTS)
    run.write_status(state="finished", step=N_EVENTS, max_steps=N_EVENTS, pid=0)
    return run


def main() -> None:
    from tunedeck.tui.cli.main import follow_run

    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp))
        t = time.perf_counter()
        follow_run(run, out=io.StringIO())
        in_process = time.perf_counter() - t
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "tunedeck.tui.cli.main", "attach", str(run.path)],
            capture_output=True, text=True, env={**os.environ},
        )  # fmt: skip
        cli = time.perf_counter() - t
    result = {
        "name": "attach_history",
        "events": N_EVENTS,
        "history_seconds_in_process": round(in_process, 3),
        "attach_cli_seconds_total": round(cli, 3),
        "attach_cli_exit": proc.returncode,
        "lines_printed": len(proc.stdout.splitlines()),
        "goal_seconds": 1.0,
        "command": "python bench/attach_history.py",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
