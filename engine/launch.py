"""Start a worker detached from the terminal (its own session), stop it, resume it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from engine.recipe import Recipe
from engine.runs import RunDir, new_run_id


def _spawn(run: RunDir, extra: list[str]) -> int:
    """The worker in a new session and process group, stdin closed, output to worker.log."""
    with run.log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.worker", str(run.path), *extra],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=run.path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    run.write_status(state="starting", pid=proc.pid, pgid=proc.pid)
    return proc.pid


def start_run(recipe: Recipe) -> RunDir:
    """Create runs/<id>/ with the resolved recipe and start its worker."""
    runs_dir = Path(recipe.train.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    run = RunDir(runs_dir / new_run_id(recipe.method.name))
    run.path.mkdir()
    recipe.save(run.recipe_path)
    _spawn(run, [])
    return run


def resume_run(run: RunDir) -> RunDir:
    _spawn(run, ["--resume"])
    return run


def stop_run(run: RunDir, now: bool = False) -> None:
    """SIGTERM (checkpoint at the next step, then exit) or, with ``now``, SIGKILL of the group."""
    status = run.read_status()
    pgid = status.get("pgid") or status.get("pid")
    if not pgid:
        raise ProcessLookupError(f"run {run.id} has no worker process recorded")
    os.killpg(pgid, signal.SIGKILL if now else signal.SIGTERM)
    if now:
        run.append_event("killed")
        run.write_status(state="stopped")
