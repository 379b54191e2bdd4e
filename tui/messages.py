"""Messages the screens and workers post (small dataclasses, past-tense names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message


@dataclass
class TrainLaunched(Message):
    """A worker for RECIPE was started in its own session; ``run_id`` names its run folder."""

    recipe: Path
    run_id: str


@dataclass
class TrainLaunchFailed(Message):
    """Training could not be started; ``reason`` says what is wrong and what to do."""

    reason: str


@dataclass
class RunActionFinished(Message):
    """A stop/resume/delete finished; ``text`` says what happened, ``ok`` whether it worked."""

    text: str
    ok: bool = True


@dataclass
class EventsRead(Message):
    """New events of run ``run_id`` (the history on the first read, then only what was appended)."""

    run_id: str
    events: list[dict[str, Any]]
    state: str
    start: int  # the byte offset the read began at
    end: int  # where the next read continues


@dataclass
class GpuSampled(Message):
    """One NVML sample per device (empty without an NVIDIA GPU) and host RAM in bytes."""

    devices: list[dict[str, Any]]
    ram_used: int
    ram_total: int
    note: str = ""

    def can_replace(self, message: Message) -> bool:
        """A newer sample makes a queued one pointless."""
        return isinstance(message, GpuSampled)


@dataclass
class QueueWaiting(Message):
    """A worker waits for the ML queue; ``text`` says for what."""

    text: str


@dataclass
class WorkFailed(Message):
    """A background task failed; ``reason`` is what the user is told."""

    title: str
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExportStarted(Message):
    """The export job of run ``run_id`` started (its events begin at byte ``offset``), or ``error`` says why not."""

    run_id: str
    offset: int | None
    error: str | None = None


@dataclass
class RunsRead(Message):
    """The runs folder as a worker read it: table rows newest first (or ``error``), whether the recipe file
    exists, and the events appended to run ``tail_run`` from byte ``tail_start`` on (or ``tail_error``)."""

    asked: int  # which refresh this answers: an older answer than the one shown is dropped
    recipe_exists: bool
    rows: list[tuple[str, str, str, str]]
    error: str = ""
    tail_run: str | None = None
    tail_start: int = 0
    tail_end: int = 0
    tail_lines: list[str] = field(default_factory=list)
    tail_error: str = ""


@dataclass
class DataInspected(Message):
    """data.train ``source`` was read: ``report`` (tunedeck.engine.data.inspect's), or ``error`` says why not."""

    source: str
    report: Any = None
    error: str = ""


@dataclass
class TokenLengthsRead(Message):
    """Token lengths of the sampled rows under the recipe's tokenizer, or ``error`` says why there are none."""

    lengths: list[int]
    error: str = ""


@dataclass
class EstimateComputed(Message):
    """The Adapter screen's parameter math and memory estimate, or why it was not computed, as lines of text."""

    text: str


@dataclass
class TemplateRendered(Message):
    """Row ``index`` rendered with template ``name``: the head line, the tokens and the mask banner, or
    ``error`` says why not."""

    name: str
    index: int
    head: str = ""
    tokens: list[Any] = field(default_factory=list)
    banner: str = ""
    error: str = ""


@dataclass
class DoctorChecked(Message):
    """`tunedeck doctor`'s checks ran: tunedeck.engine.doctor's ``result`` and the panel's ``text``."""

    result: dict[str, Any]
    text: str
