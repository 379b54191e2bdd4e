"""Reading a run's events: the kinds the worker writes, one progress fold and one formatter.

``tunedeck attach``/``train``/``resume``, the Runs screen and the Train screen all show events
through this module, so a new event kind is taught here once. Writing is engine.runs.RunDir.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from engine.units import fmt_bytes, fmt_duration

# Every kind the worker (engine.worker, engine.launch, engine.supervisor) appends to events.jsonl.
EventKind = Literal[
    "started", "model", "launched", "train_begin", "step", "eval", "gpu", "checkpoint", "warning", "stopping",
    "stopped", "killed", "resumed", "finished", "failed",
    # the export job (engine.export.job), into the same file: started, its stages, what it does, each file, the end
    "export_started", "export_stage", "export_line", "export_file", "export", "export_failed",
]  # fmt: skip


def run_summary(run) -> dict[str, Any]:
    """What a list of runs shows of ``run`` (engine.runs.RunDir), raw and as text: the CLI's ``runs``
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
        text = f"export started (pid {event.get('pid')}): " + (",".join(event.get("quants") or []) or "the recipe's types")
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
