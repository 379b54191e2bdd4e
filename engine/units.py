"""Durations and byte counts as people read them (one formatter each, for the CLI and the TUI)."""

from __future__ import annotations

GIB = 2**30
MIB = 2**20


def fmt_duration(seconds: float) -> str:
    """h:mm:ss."""
    s = int(max(seconds, 0))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def fmt_bytes(n: float) -> str:
    """KiB below a MiB, MiB below a GiB, GiB from there."""
    if abs(n) >= GIB:
        return f"{n / GIB:.2f} GiB"
    if abs(n) >= MIB:
        return f"{n / MIB:.1f} MiB"
    return f"{n / 1024:.0f} KiB"
