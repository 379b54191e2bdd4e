"""Export as a detached job, the way training runs: it outlives the terminal, the TUI and the SSH session.

``start_export`` starts ``python -m tunedeck.engine.export.job RUN_DIR`` in its own session and returns at once. The job
runs ``tunedeck.engine.export.pipeline.export_run`` and writes, as it goes, into the run's folder:

- ``export-status.json``: state (starting, running, finished, failed; crashed when its process died without
  saying so), pid, the request, started/ended; replaced atomically like status.json;
- ``events.jsonl`` (the run's own): export_started, export_stage (stage, state, seconds), export_line (what it
  does now), export_file (each file as it is checked), then export or export_failed;
- ``export-report.json``: rewritten after each file, complete at the end; ``export.log``: the job's output.

One export per run at a time: the job holds an exclusive lock on ``export.lock`` for its life (the kernel drops it
when the process ends, however it ends), and a second ``start_export`` is refused with a line naming the first.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunedeck.engine.run.launch import RunStateError
from tunedeck.engine.run.rundir import EXPORT_DONE, RunDir, StatusFile

DONE = EXPORT_DONE


class ExportBusy(RunStateError):
    """Another export of this run is running; the message names it and how to follow it."""


@dataclass(frozen=True)
class ExportJob:
    run: RunDir

    status_path = property(lambda self: self.run.export_status_path)
    log_path = property(lambda self: self.run.path / "export.log")
    lock_path = property(lambda self: self.run.path / "export.lock")

    def read_status(self) -> dict[str, Any]:
        return StatusFile(self.status_path).read()

    def write_status(self, **fields: Any) -> dict[str, Any]:
        return StatusFile(self.status_path).write(**fields)

    def state(self) -> str | None:
        """None when the run was never exported this way; else its state (``crashed``: the process is gone)."""
        return self.run.export_state()

    def live(self) -> bool:
        return self.state() in ("starting", "running")

    def describe(self) -> str:
        """The job in one line: what it exports, since when, its pid."""
        status = self.read_status()
        request = status.get("request") or {}
        quants = ",".join(request.get("quants") or []) or "the recipe's types"
        since = time.strftime("%H:%M:%S", time.localtime(status["started"])) if status.get("started") else "?"
        return f"export of {self.run.id} ({quants}, started {since}, pid {status.get('pid')})"

    def follow(self, offset: int = 0, poll: float = 0.5) -> Iterator[dict[str, Any]]:
        """The run's export events from byte ``offset`` until the job has ended (tunedeck.engine.run.events.follow, whose exit
        rule here is the job's own end: a training run may go on after it)."""
        from tunedeck.engine.run.events import follow

        for event in follow(self.run, offset, until=lambda: not self.live(), poll=poll):
            if str(event.get("kind", "")).startswith("export"):
                yield event


def start_export(run: RunDir, quants: list[str] | None = None, overrides: dict[str, Any] | None = None,
                 checkpoint: str | None = None) -> tuple[ExportJob, int]:  # fmt: skip
    """Check the request, then start the job; returns it and the events.jsonl offset its events start from.

    Refused at once (ExportError, RecipeError): a request the pipeline would refuse (an unknown type, no weights to
    export); ExportBusy: another export of the run is running."""
    from tunedeck.engine.export.merge import weights_source
    from tunedeck.engine.export.pipeline import export_args
    from tunedeck.engine.recipe import load_recipe

    run = RunDir(run.path.resolve())
    export_args(load_recipe(run.recipe_path), quants, overrides)
    weights_source(run, checkpoint)
    job = ExportJob(run)
    fd = os.open(job.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _lock(fd, job):
            raise ExportBusy(f"{job.describe()} is still running: follow it with `tunedeck attach {run.id}`, or "
                             "wait for it to end") from None  # fmt: skip
        _, offset = run.read_events()
        request = {"quants": quants, "overrides": overrides or {}, "checkpoint": checkpoint}
        # Every field of the last job's status replaced; from here on only the job itself writes it.
        job.write_status(state="starting", pid=None, request=request, started=time.time(), ended=None,
                         events_offset=offset, error=None)  # fmt: skip
        with job.log_path.open("ab") as log:
            subprocess.Popen(  # not waited for: a reader tells a dead job by its pid (tunedeck.engine.run.rundir.pid_alive)
                [sys.executable, "-m", "tunedeck.engine.export.job", str(run.path), "--lock-fd", str(fd)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=run.path, pass_fds=(fd,), env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
    finally:
        os.close(fd)  # the job holds the lock through its inherited copy
    return job, offset


def _lock(fd: int, job: ExportJob) -> bool:
    """The run's export lock, or False while another job holds it. A job that has written its end lets go of the
    lock a moment later (``main``): wait that moment rather than refuse."""
    deadline = time.time() + 10
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if job.read_status().get("state") not in DONE or time.time() > deadline:
                return False
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    """``python -m tunedeck.engine.export.job RUN_DIR --lock-fd N``: the job itself (start_export starts it)."""
    p = argparse.ArgumentParser(prog="python -m tunedeck.engine.export.job")
    p.add_argument("run")
    p.add_argument("--lock-fd", type=int, required=True, help="the export.lock descriptor it inherits and holds")
    args = p.parse_args(argv)
    job = ExportJob(RunDir(Path(args.run)))
    os.set_inheritable(args.lock_fd, False)  # held by this process alone: llama.cpp's tools must not keep it alive
    request = job.read_status().get("request") or {}
    job.write_status(state="running", pid=os.getpid())
    job.run.append_event("export_started", pid=os.getpid(), **request)
    from tunedeck.engine.export.errors import ExportError
    from tunedeck.engine.export.pipeline import export_run

    try:
        export_run(job.run, request.get("quants"), overrides=request.get("overrides"),
                   checkpoint=request.get("checkpoint"),
                   progress=lambda m: job.run.append_event("export_line", message=m),
                   stage=lambda name, state, seconds: job.run.append_event("export_stage", stage=name, state=state,
                                                                           seconds=seconds))  # fmt: skip
    except ExportError as e:  # the pipeline wrote the report and the export_failed event
        _end(job, args.lock_fd, state="failed", error=str(e))
        return 1
    except BaseException as e:  # anything else too: said in the events and the status, the traceback in the log
        error = f"{type(e).__name__}: {e}"
        job.run.append_event("export_failed", error=error)
        _end(job, args.lock_fd, state="failed", error=error)
        raise
    _end(job, args.lock_fd, state="finished")
    return 0


def _end(job: ExportJob, lock_fd: int, **status) -> None:
    """The job's last status, then the lock let go at once (not at the interpreter's slow exit)."""
    job.write_status(ended=time.time(), **status)
    os.close(lock_fd)


if __name__ == "__main__":
    sys.exit(main())
