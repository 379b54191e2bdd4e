"""A run's events, both sides: one TypedDict per kind for the writers, one follow generator, one progress fold and
one formatter for the readers.

Writers append through tunedeck.engine.run.rundir.RunDir.append_event(kind, **fields), typed per kind by the TypedDicts below (a
type checker names a wrong field; an unknown kind is a ValueError at once). ``tunedeck attach``/``train``/
``resume``/``export``, the Runs, Train and Export screens and the bench scripts all read events through
RunDir.read_events or ``follow`` and show them through this module, so a new event kind is taught here once.
"""

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from typing_extensions import NotRequired, TypedDict

from tunedeck.engine.units import fmt_bytes, fmt_duration

# No ``from __future__ import annotations`` here: the TypedDicts keep their required and optional keys at runtime.
if TYPE_CHECKING:
    from tunedeck.engine.run.rundir import RunDir

# Every kind the worker (tunedeck.engine.run.worker, tunedeck.engine.run.launch, tunedeck.engine.run.supervisor) appends to events.jsonl.
EventKind = Literal[
    "started", "model", "launched", "train_begin", "step", "eval", "gpu", "checkpoint", "warning", "stopping",
    "stopped", "killed", "resumed", "finished", "failed",
    # the export job (tunedeck.engine.export.job), into the same file: started, its stages, what it does, each file, the end
    "export_started", "export_stage", "export_line", "export_file", "export", "export_failed",
]  # fmt: skip

# ---- the writing side: the fields of each kind, as the writers write them (every event also has ts and kind)


class StartedEvent(TypedDict):  # tunedeck.engine.run.worker: the worker process is up
    pid: int
    resume: bool
    world_size: int


class ModelEvent(TypedDict):  # tunedeck.engine.run.worker: the model is loaded (tunedeck.engine.model.loading.model_summary)
    adapter: str
    trainable_params: int
    total_params: int
    trainable_percent: float


class LaunchedEvent(TypedDict):  # tunedeck.engine.run.supervisor: accelerate launch started the ranks
    command: str
    machine_rank: int
    num_processes: int
    num_machines: int
    strategy: str
    host: str


class TrainBeginEvent(TypedDict):
    step: int
    max_steps: int
    world_size: int


class StepEvent(TypedDict, extra_items=Any):  # the Trainer's other log metrics ride along (num_tokens, rewards/...)
    step: int
    max_steps: int
    loss: float
    lr: float | None
    grad_norm: float | None
    tokens_per_s: float | None


class EvalEvent(TypedDict, extra_items=Any):  # the Trainer's eval log as it is: eval_loss, eval_..., epoch
    step: int


class GpuEvent(TypedDict):  # tunedeck.engine.gpu.sample_gpus: one dict per device
    step: int
    devices: list[dict[str, Any]]


class CheckpointEvent(TypedDict):  # a complete checkpoint folder
    step: int
    path: str


class WarningEvent(TypedDict):
    message: str


class StoppingEvent(TypedDict):  # a stop was asked for (the signal's name)
    signal: str


class StoppedEvent(TypedDict):
    step: int | None


class KilledEvent(TypedDict):  # tunedeck.engine.run.launch: stop --now
    step: int | None


class ResumedEvent(TypedDict):
    checkpoint: str | None  # None: no complete checkpoint, training starts at step 0 (``note`` says so)
    note: NotRequired[str]


class FinishedEvent(TypedDict):
    step: int | None
    output: NotRequired[str]  # the adapter or model folder
    note: NotRequired[str]  # a machine other than 0 under accelerate: its ranks ended cleanly


class FailedEvent(TypedDict):
    error: str
    hint: str
    traceback: list[str]  # the last lines
    rank: NotRequired[int]  # tunedeck.engine.run.supervisor: the rank that died first, and its exit code
    exitcode: NotRequired[int]


class ExportStartedEvent(TypedDict):  # tunedeck.engine.export.job: the job's pid and its request
    pid: int
    quants: NotRequired[list[str] | None]
    overrides: NotRequired[dict[str, Any]]
    checkpoint: NotRequired[str | None]


class ExportStageEvent(TypedDict):  # a pipeline stage started ("start") or ended ("done", "failed")
    stage: str
    state: str
    seconds: float | None


class ExportLineEvent(TypedDict):  # what the pipeline does now
    message: str


class ExportFileEvent(TypedDict):  # one file written and checked (the report row's fields)
    path: str | None
    type: str | None
    size_bytes: int | None
    fidelity: dict[str, Any] | None


class ExportEvent(TypedDict):  # the export ended well: every file
    files: list[dict[str, Any]]


class ExportFailedEvent(TypedDict):
    error: str


EVENT_FIELDS: dict[str, type] = {
    "started": StartedEvent, "model": ModelEvent, "launched": LaunchedEvent, "train_begin": TrainBeginEvent,
    "step": StepEvent, "eval": EvalEvent, "gpu": GpuEvent, "checkpoint": CheckpointEvent, "warning": WarningEvent,
    "stopping": StoppingEvent, "stopped": StoppedEvent, "killed": KilledEvent, "resumed": ResumedEvent,
    "finished": FinishedEvent, "failed": FailedEvent, "export_started": ExportStartedEvent,
    "export_stage": ExportStageEvent, "export_line": ExportLineEvent, "export_file": ExportFileEvent,
    "export": ExportEvent, "export_failed": ExportFailedEvent,
}  # fmt: skip


def check_kind(kind: str) -> None:
    """ValueError naming ``kind`` when it is not an EventKind: a typo'd kind never reaches events.jsonl."""
    if kind not in EVENT_FIELDS:
        raise ValueError(f"unknown event kind {kind!r}: tunedeck.engine.run.events.EventKind lists the kinds a run writes")


# ---- the reading side


def follow(run: "RunDir", since: int = 0, *, until: Callable[[], bool] | None = None,
           poll: float = 0.5) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Every follower's generator: the run's events from byte offset ``since``, then new ones live as they are
    written, each once and in order.

    Exit rule: a read that finds nothing new asks ``until()`` (default ``run.ended``: the training run is in a
    terminal state and no export of it is starting or running); once it is true, one last read yields whatever
    was written before it, then the generator returns. So every event written before the end is yielded, and
    nothing after. It sleeps ``poll`` seconds between reads that find nothing.

    The TUI's screens do not block on it: a timer asks a worker for one ``RunDir.read_events`` from their
    offset, and the worker posts what it read as one message."""
    until = until or run.ended
    offset = since
    while True:
        events, offset = run.read_events(offset)
        yield from events
        if not events and until():
            events, offset = run.read_events(offset)
            yield from events
            return
        if not events:
            time.sleep(poll)


def events_of(run: "RunDir", *kinds: EventKind) -> list[dict[str, Any]]:
    """The run's events so far, only those of ``kinds`` (all when none is named): what the bench scripts read."""
    events, _ = run.read_events()
    return [e for e in events if not kinds or e.get("kind") in kinds]


def run_summary(run) -> dict[str, Any]:
    """What a list of runs shows of ``run`` (tunedeck.engine.run.rundir.RunDir), raw and as text: the CLI's ``runs``
    and the Runs screen both read this."""
    status = run.read_status()
    step, total, loss, started = status.get("step"), status.get("max_steps"), status.get("loss"), status.get("started")
    return {
        "id": run.id,
        "method": status.get("method"),
        "state": run.state(),
        "step": step,
        "max_steps": total,
        "loss": loss,
        "started": started,
        "age_s": time.time() - started if started else None,
        "error": status.get("error"),
        "step_text": f"{step or 0}/{total or '?'}" if step is not None or total else "-",
        "loss_text": f"{loss:.4f}" if isinstance(loss, (int, float)) else "-",
    }


class RunProgress:
    """Where a run stands, folded from its events in order: step, loss, lr, throughput, ETA, last note."""

    def __init__(self) -> None:
        self.step = 0
        self.max_steps = 0
        self.loss: float | None = None
        self.lr: float | None = None
        self.tokens_per_s: float | None = None
        self.first: tuple[float, int] | None = None  # (ts, step) of the first step seen since (re)start
        self.last_ts = 0.0
        self.note = ""

    def fold(self, event: dict[str, Any]) -> None:
        """Update from one event."""
        kind = event.get("kind")
        if kind in ("started", "resumed"):
            self.first = None
        elif kind == "step":
            self.step = int(event.get("step") or 0)
            self.max_steps = int(event.get("max_steps") or self.max_steps or 0)
            self.loss = event.get("loss")
            self.lr = event.get("lr")
            self.tokens_per_s = event.get("tokens_per_s") or self.tokens_per_s
            self.last_ts = float(event.get("ts") or 0.0)
            if self.first is None:
                self.first = (self.last_ts, self.step)
        elif kind == "train_begin":
            self.max_steps = int(event.get("max_steps") or 0)
        elif kind == "failed":
            self.note = f"failed: {event.get('error')}  hint: {event.get('hint')}"
        elif kind in ("finished", "stopped", "killed"):
            self.note = kind

    def eta(self, state: str = "running") -> str:
        """Remaining time from the step rate since the first step seen; '-' when unknown or over."""
        if state != "running" or self.first is None or not self.max_steps:
            return "-"
        ts0, step0 = self.first
        if self.step <= step0 or self.last_ts <= ts0:
            return "-"
        return fmt_duration((self.last_ts - ts0) / (self.step - step0) * (self.max_steps - self.step))

    def line(self, state: str = "running", bar: bool = False) -> str:
        """step/total (with a text bar when ``bar``), loss, lr, tok/s and ETA on one line."""
        total = self.max_steps
        parts = [f"step {self.step}/{total or '?'}"]
        if bar and total:
            done = int(20 * self.step / total)
            parts.append("[" + "#" * done + "." * (20 - done) + f"] {100 * self.step / total:5.1f}%")
        parts.append(f"loss {self.loss:.4f}" if isinstance(self.loss, (int, float)) else "loss -")
        parts.append(f"lr {self.lr:.2e}" if isinstance(self.lr, (int, float)) else "lr -")
        parts.append(f"{self.tokens_per_s:.0f} tok/s" if self.tokens_per_s else "- tok/s")
        parts.append(f"ETA {self.eta(state)}")
        return "  ".join(parts)


def format_event(event: dict[str, Any], progress: RunProgress | None = None, clock: bool = False) -> str | None:
    """One event as the line a user reads; None for kinds only charts use (gpu, model, ...).

    ``progress``: the fold that has already seen this event (a step line then has its bar, tok/s and ETA).
    ``clock``: prefix the event's local time (a tail of recent events)."""
    kind = event.get("kind", "?")
    if kind == "step":
        if progress is None:  # one event alone: no rate, so no bar or ETA
            progress = RunProgress()
            progress.fold(event)
            text = "  ".join(progress.line().split("  ")[:3])  # step, loss, lr
        else:
            text = progress.line(bar=True)
    elif kind == "checkpoint":
        text = f"checkpoint at step {event.get('step')}: {event.get('path')}"
    elif kind == "failed":
        text = f"FAILED: {event.get('error', '?')}" + (f"\nhint: {event['hint']}" if event.get("hint") else "")
    elif kind in ("finished", "stopped"):
        text = (
            f"{kind} at step {event.get('step')}"
            if event.get("step") is not None
            else f"{kind}: {event.get('note', '')}"
        )
    elif kind in ("stopping", "killed"):
        text = f"{kind} ({event.get('signal', 'SIGKILL')})"
    elif kind == "resumed":
        text = f"resumed from {event.get('checkpoint') or 'step 0 (no complete checkpoint)'}"
    elif kind == "launched":
        text = (f"accelerate launch: {event.get('num_processes')} processes ({event.get('strategy')}) on "
                f"{event.get('num_machines')} machine(s); each rank logs to worker-rank<N>.log")  # fmt: skip
    elif kind == "eval":
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in event.items() if k.startswith("eval_") and isinstance(v, float))
        text = f"eval at step {event.get('step')}: {metrics}"
    elif kind == "started":
        text = f"worker started (pid {event.get('pid')}, {event.get('world_size') or 1} process(es))" + (
            ", resuming" if event.get("resume") else ""
        )
    elif kind == "train_begin":
        text = f"training from step {event.get('step')} to {event.get('max_steps')}"
    elif kind == "model":
        n = event.get("trainable_params")
        text = f"model loaded ({event.get('adapter')}): {f'{n:,}' if isinstance(n, int) else '?'} trainable parameters"
    elif kind == "export":
        text = "exported " + ", ".join(
            f"{f.get('type')} ({fmt_bytes(f.get('size_bytes') or 0)})" for f in event.get("files", [])
        )
    elif kind == "warning":
        text = f"warning: {event.get('message')}"
    elif kind == "export_failed":
        text = f"export failed: {event.get('error')}"
    elif kind == "export_started":
        text = f"export started (pid {event.get('pid')}): " + (
            ",".join(event.get("quants") or []) or "the recipe's types"
        )
    elif kind == "export_line":
        text = f"export: {event.get('message')}"
    elif kind == "export_file":
        fid = event.get("fidelity") or {}
        top1 = f", top-1 {fid['top1_agreement']:.1%}" if isinstance(fid.get("top1_agreement"), float) else ""
        text = f"export: wrote {event.get('type')} ({fmt_bytes(event.get('size_bytes') or 0)}{top1})"
    else:
        return None
    if clock:
        ts = event.get("ts")
        stamp = time.strftime("%H:%M:%S", time.localtime(ts)) if isinstance(ts, (int, float)) else "--:--:--"
        text = f"{stamp} {text}"
    return text
