"""Messages the screens post to the app (small dataclasses, past-tense names)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
