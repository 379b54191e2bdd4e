"""The run directory protocol (see DESIGN.md): one folder per run, the only shared state.

The worker writes; any number of readers (TUI, ``tunedeck attach``) read, at any time.
``events.jsonl`` is append-only, one complete JSON line per event; ``status.json`` is replaced
atomically. A run's state is derived from status.json plus pid liveness.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from tunedeck.engine.run.events import EventKind, check_kind

if TYPE_CHECKING:
    from typing_extensions import Unpack

    import tunedeck.engine.run.events as ev

TERMINAL_STATES = ("finished", "failed", "stopped", "crashed")
EXPORT_DONE = ("finished", "failed", "crashed")  # an export job's (tunedeck.engine.export.job) terminal states


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file, fsync, rename: readers see the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def new_run_id(method: str) -> str:
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{method}-{secrets.token_hex(2)}"


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


@dataclass(frozen=True)
class StatusFile:
    """One process's status as a JSON file replaced atomically (a run's status.json, its export-status.json): the
    process merges fields into it, anyone reads it at any time, and ``state`` tells a process that died without
    saying so."""

    path: Path

    def read(self) -> dict[str, Any]:
        """The status; {} before the first write."""
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def write(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the status, stamped with a heartbeat; returns the new status."""
        status = {**self.read(), **fields, "heartbeat": time.time()}
        atomic_write_text(self.path, json.dumps(status, indent=2))
        return status

    def state(
        self, terminal: tuple[str, ...], default: str | None, started: Callable[[dict[str, Any]], float]
    ) -> str | None:
        """The status's state (``default`` when it has none): as written once it is None or ``terminal``, or when
        the process is on another machine (a SLURM job: its pid means nothing here) or alive; else ``starting``
        for 30 s from ``started(status)`` while it says starting (its process may not exist yet), then
        ``crashed``: the process died without writing how it ended."""
        status = self.read()
        state = status.get("state", default)
        if state is None or state in terminal or status.get("host") not in (None, socket.gethostname()):
            return state
        if pid_alive(status.get("pid")):
            return state
        if state == "starting" and time.time() - started(status) < 30:
            return "starting"
        return "crashed"


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    recipe_path = property(lambda self: self.path / "recipe.yaml")
    events_path = property(lambda self: self.path / "events.jsonl")
    status_path = property(lambda self: self.path / "status.json")
    log_path = property(lambda self: self.path / "worker.log")
    checkpoints = property(lambda self: self.path / "checkpoints")
    adapter = property(lambda self: self.path / "adapter")
    model = property(lambda self: self.path / "model")  # full fine-tuning output
    merged = property(lambda self: self.path / "merged")
    gguf = property(lambda self: self.path / "gguf")
    export_report = property(lambda self: self.path / "export-report.json")
    export_status_path = property(lambda self: self.path / "export-status.json")  # tunedeck.engine.export.job's status
    ranks_dir = property(lambda self: self.path / "ranks")  # one heartbeat file per training process
    accelerate_config = property(lambda self: self.path / "accelerate_config.yaml")

    def rank_log(self, rank: int) -> Path:
        return self.path / f"worker-rank{rank}.log"

    # ---- writing (the worker)

    if TYPE_CHECKING:  # one signature per kind: a type checker names a field the kind does not have

        @overload
        def append_event(self, kind: Literal["started"], **fields: Unpack[ev.StartedEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(self, kind: Literal["model"], **fields: Unpack[ev.ModelEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(self, kind: Literal["launched"], **fields: Unpack[ev.LaunchedEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(
            self, kind: Literal["train_begin"], **fields: Unpack[ev.TrainBeginEvent]
        ) -> dict[str, Any]: ...
        @overload
        def append_event(self, kind: Literal["step"], **fields: Unpack[ev.StepEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(self, kind: Literal["eval"], **fields: Unpack[ev.EvalEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(self, kind: Literal["gpu"], **fields: Unpack[ev.GpuEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(self, kind: Literal["checkpoint"], **fields: Unpack[ev.CheckpointEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(self, kind: Literal["warning"], **fields: Unpack[ev.WarningEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(self, kind: Literal["stopping"], **fields: Unpack[ev.StoppingEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(self, kind: Literal["stopped"], **fields: Unpack[ev.StoppedEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(self, kind: Literal["killed"], **fields: Unpack[ev.KilledEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(self, kind: Literal["resumed"], **fields: Unpack[ev.ResumedEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(self, kind: Literal["finished"], **fields: Unpack[ev.FinishedEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(self, kind: Literal["failed"], **fields: Unpack[ev.FailedEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(
            self, kind: Literal["export_started"], **fields: Unpack[ev.ExportStartedEvent]
        ) -> dict[str, Any]: ...
        @overload
        def append_event(
            self, kind: Literal["export_stage"], **fields: Unpack[ev.ExportStageEvent]
        ) -> dict[str, Any]: ...
        @overload
        def append_event(
            self, kind: Literal["export_line"], **fields: Unpack[ev.ExportLineEvent]
        ) -> dict[str, Any]: ...
        @overload
        def append_event(
            self, kind: Literal["export_file"], **fields: Unpack[ev.ExportFileEvent]
        ) -> dict[str, Any]: ...
        @overload
        def append_event(self, kind: Literal["export"], **fields: Unpack[ev.ExportEvent]) -> dict[str, Any]: ...
        @overload
        def append_event(
            self, kind: Literal["export_failed"], **fields: Unpack[ev.ExportFailedEvent]
        ) -> dict[str, Any]: ...

    def append_event(self, kind: EventKind, **fields: Any) -> dict[str, Any]:
        """Append one event as a single write of one line (readers never see half a line); its fields are
        tunedeck.engine.run.events' TypedDict for ``kind``. ValueError for a kind tunedeck.engine.run.events.EventKind does not name."""
        check_kind(kind)
        event = {"ts": time.time(), "kind": kind, **fields}
        line = (json.dumps(event, default=str) + "\n").encode()
        fd = os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return event

    def write_status(self, **fields: Any) -> dict[str, Any]:
        return StatusFile(self.status_path).write(**fields)

    def write_rank(self, rank: int, **fields: Any) -> None:
        """Replace ranks/rank<N>.json: one process's step, memory and state (every rank writes its own)."""
        self.ranks_dir.mkdir(exist_ok=True)
        atomic_write_text(self.ranks_dir / f"rank{rank}.json", json.dumps({"rank": rank, **fields, "ts": time.time()}))

    # ---- reading (anyone)

    def read_ranks(self) -> list[dict[str, Any]]:
        """Every process's latest heartbeat, by rank."""
        ranks = []
        for path in self.ranks_dir.glob("rank*.json") if self.ranks_dir.is_dir() else []:
            try:
                ranks.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError):  # replaced atomically: only a vanished file lands here
                continue
        return sorted(ranks, key=lambda r: r.get("rank", 0))

    def read_status(self) -> dict[str, Any]:
        return StatusFile(self.status_path).read()

    def state(self) -> str:
        """running/stopping/... from status.json; ``crashed`` when the worker died without saying so (a run folder
        younger than 30 s with no live worker yet is ``starting``)."""
        return StatusFile(self.status_path).state(TERMINAL_STATES, "starting", lambda status: self.path.stat().st_mtime)

    def export_state(self) -> str | None:
        """The export job's state (tunedeck.engine.export.job): None when the run was never exported that way; ``crashed``
        when its process is gone (start_export writes ``starting`` with no pid just before the process exists, which
        has 30 s to write its own)."""
        return StatusFile(self.export_status_path).state(EXPORT_DONE, None, lambda status: status.get("started", 0))

    def ended(self) -> bool:
        """The training run is in a terminal state and no export job of it is starting or running: what a follower
        of the whole run (tunedeck.engine.run.events.follow) waits for."""
        return self.state() in TERMINAL_STATES and self.export_state() not in ("starting", "running")

    def read_events(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Complete events from byte ``offset``; returns them and the offset to continue from."""
        try:
            with self.events_path.open("rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1  # a trailing partial line waits for the next read
        events = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
        return events, offset + end

    def complete_checkpoints(self) -> list[Path]:
        """Checkpoints whose completion marker exists, oldest first."""
        if not self.checkpoints.is_dir():
            return []
        return sorted(p for p in self.checkpoints.glob("step-*") if (p / "COMPLETE").exists())


def list_runs(runs_dir: Path) -> list[RunDir]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    return sorted(
        (RunDir(p) for p in runs_dir.iterdir() if (p / "recipe.yaml").exists()),
        key=lambda r: r.path.name,
    )


def list_ggufs(runs_dir: Path) -> list[Path]:
    """Every exported GGUF under ``runs_dir``, newest run first."""
    runs = reversed(list_runs(runs_dir))
    return [p for run in runs if run.gguf.is_dir() for p in sorted(run.gguf.glob("*.gguf"), reverse=True)]


def find_run(ref: str, runs_dir: Path) -> RunDir:
    """A run by path, id or unique id prefix (``latest`` for the newest)."""
    path = Path(ref).expanduser()
    if (path / "recipe.yaml").exists():
        return RunDir(path.resolve())
    runs = list_runs(runs_dir)
    if ref == "latest" and runs:
        return runs[-1]
    matches = [r for r in runs if r.id == ref] or [r for r in runs if r.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise FileNotFoundError(f"no run {ref!r} in {runs_dir} (tunedeck runs lists them)")
    raise FileNotFoundError(f"{ref!r} matches several runs: {', '.join(r.id for r in matches)}")
