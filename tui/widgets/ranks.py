"""Per-rank progress and memory of a many-process run, from its ranks/rank<N>.json heartbeats."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from textual.message import Message
from textual.widgets import Static

from tunedeck.engine.run.rundir import RunDir
from tunedeck.tui.workers import background

POLL_SECONDS = 1.0
STALE_SECONDS = 30.0  # a running rank silent this long is flagged


def rank_line(r: dict[str, Any], now: float) -> str:
    """rank, step/total, device memory (GPU: allocated/total and peak; CPU: RSS), host and state."""
    parts = [f"rank {r.get('rank', '?')}", f"step {r.get('step') or 0}/{r.get('max_steps') or '?'}"]
    if r.get("memory_mib") is not None:
        mem = f"{r.get('device', '?')} {r['memory_mib'] / 1024:.1f}"
        mem += f"/{r['total_mib'] / 1024:.1f} GiB" if r.get("total_mib") else " GiB"
        if r.get("peak_mib") is not None:
            mem += f" (peak {r['peak_mib'] / 1024:.1f})"
        parts.append(mem)
    parts.append(r.get("host") or "")
    state = r.get("state") or "?"
    age = now - float(r.get("ts") or now)
    if state in ("starting", "running") and age > STALE_SECONDS:
        state += f", silent {age:.0f}s"
    parts.append(state)
    return "  ".join(p for p in parts if p)


@dataclass
class RanksRead(Message):
    """The heartbeats of run ``run_id``, by rank."""

    run_id: str
    ranks: list[dict[str, Any]]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RanksRead)


class RankPanel(Static):
    """One line per rank of the screen's ``run``; hidden unless the run has more than one process."""

    DEFAULT_CSS = """
    RankPanel {
        height: auto;
        max-height: 10;
        padding: 0 1;
        display: none;
    }
    """

    def on_mount(self) -> None:
        self.border_title = "Ranks"
        self.set_interval(POLL_SECONDS, self._poll)

    def _poll(self) -> None:
        run = getattr(self.screen, "run", None)
        if isinstance(run, RunDir):
            self._read(run)
        else:
            self.display = False

    @background("ranks", exclusive=True)
    def _read(self, run: RunDir) -> None:
        self.post_message(RanksRead(run.id, run.read_ranks()))

    def on_ranks_read(self, message: RanksRead) -> None:
        run = getattr(self.screen, "run", None)
        if not isinstance(run, RunDir) or run.id != message.run_id:
            return
        self.display = len(message.ranks) > 1
        if self.display:
            now = time.time()
            self.update("\n".join(rank_line(r, now) for r in message.ranks))
