"""Start a worker detached from the terminal (its own session), stop it, resume it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tunedeck.engine.recipe import Recipe
from tunedeck.engine.run.accelerate_config import check_launchable, write_accelerate_config
from tunedeck.engine.run.rundir import TERMINAL_STATES, RunDir, new_run_id, pid_alive
from tunedeck.engine.run.supervisor import local_rank_pids


class RunStateError(RuntimeError):
    """The run is not in a state that allows this action; the message says what to do."""


def _spawn(run: RunDir, extra: list[str], distributed: bool = False, **status) -> int:
    """The worker (or, for many processes, its accelerate supervisor) in a new session, output to worker.log."""
    module = "tunedeck.engine.run.supervisor" if distributed else "tunedeck.engine.run.worker"
    with run.log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(run.path.resolve()), *extra],  # cwd is the run: no relative path
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=run.path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    run.write_status(state="starting", pid=proc.pid, pgid=proc.pid, **status)
    return proc.pid


def create_run(recipe: Recipe) -> RunDir:
    """runs/<id>/ with the resolved recipe (and, for many processes, accelerate_config.yaml)."""
    runs_dir = Path(recipe.train.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    run = RunDir(runs_dir / new_run_id(recipe.method.name))
    run.path.mkdir()
    recipe.save(run.recipe_path)
    if recipe.launch.distributed:
        write_accelerate_config(run, recipe)
    return run


def start_run(recipe: Recipe, progress: Callable[[str], None] = lambda m: None) -> RunDir:
    """Check the recipe (tunedeck.engine.run.preflight: a refusal is a PreflightError, and then nothing is created), create
    runs/<id>/ and start its worker; many processes go through ``accelerate launch``.

    The run's recipe.yaml names what it loads (a GGUF source resolved to its folder); the preflight's notes become
    its first events and go to ``progress`` with the other lines."""
    from tunedeck.engine.run.preflight import preflight

    checked = preflight(recipe, progress)
    progress(f"data: {checked.data_format} rows for {recipe.method.name}")
    run = create_run(checked.recipe)
    for note in checked.notes:
        progress(f"note: {note}")
        run.append_event("warning", message=note)
    _spawn(run, [], recipe.launch.distributed, method=recipe.method.name, started=time.time())
    return run


def delete_run(run: RunDir) -> None:
    """Remove the run folder and everything in it; refused while its worker lives."""
    state = run.state()
    if state not in TERMINAL_STATES:
        raise RunStateError(f"run {run.id} is {state}: stop it first (tunedeck stop {run.id})")
    shutil.rmtree(run.path)


def resume_run(run: RunDir) -> RunDir:
    """Start a new worker on the run; it continues from the newest complete checkpoint."""
    state = run.state()
    if state not in TERMINAL_STATES:
        raise RunStateError(f"run {run.id} is {state}: stop it first (tunedeck stop {run.id})")
    if state == "finished":
        raise RunStateError(f"run {run.id} already finished; raise train.max_steps in a new run to train further")
    distributed = run.accelerate_config.exists()
    if distributed:
        from tunedeck.engine.recipe import load_recipe

        check_launchable(load_recipe(run.recipe_path))
    _spawn(run, ["--resume"], distributed, resumed=time.time())
    return run


def stop_run(run: RunDir, now: bool = False, timeout: float = 600.0) -> float:
    """Stop a worker and wait until it has; returns the seconds it took.

    Default: SIGTERM, which the worker turns into a checkpoint at the next step boundary and
    state ``stopped``. ``now``: SIGKILL of the whole process group, no checkpoint.
    Under accelerate every rank runs in its own session (torch elastic starts them so): each rank
    of this machine gets the signal itself (the ranks agree on the step to stop at), and the
    supervisor's group only when no rank is up yet, or with ``now``.
    """
    status = run.read_status()
    pid, pgid = status.get("pid"), status.get("pgid") or status.get("pid")
    if status.get("host") not in (None, socket.gethostname()):
        raise RunStateError(f"run {run.id} runs on {status['host']}: stop it there (a SLURM job: scancel it)")
    if not pid or not pid_alive(pid):
        raise RunStateError(f"run {run.id} is {run.state()}: there is no live worker to stop")
    t = time.time()
    ranks = local_rank_pids(run) if status.get("launcher") == "accelerate" else []
    for rank_pid in ranks:
        try:
            os.killpg(rank_pid, signal.SIGKILL if now else signal.SIGTERM)
        except ProcessLookupError:
            pass
    if now or not ranks:
        os.killpg(pgid, signal.SIGKILL if now else signal.SIGTERM)
    if now:
        while pid_alive(pid) and time.time() - t < 10:
            time.sleep(0.05)
        run.append_event("killed", step=status.get("step"))
        run.write_status(state="stopped", ended=time.time(), killed=True)
        return time.time() - t
    while pid_alive(pid):
        if time.time() - t > timeout:
            raise TimeoutError(f"run {run.id} did not stop within {timeout:.0f}s; tunedeck stop --now kills it")
        time.sleep(0.1)
    return time.time() - t
