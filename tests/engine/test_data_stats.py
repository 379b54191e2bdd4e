"""Bounded-memory stats: the reservoir sample and token-length summaries."""

from __future__ import annotations

from tunedeck.engine.data.stats import Reservoir, length_stats, percentile


def fill(size: int, n: int, seed: int) -> list[int]:
    r = Reservoir(size, seed)
    for i in range(n):
        slot = r.wants()
        if slot is not None:
            r.put(slot, i)
    return r.items


def test_reservoir_keeps_everything_when_small_and_a_deterministic_spread_when_large():
    assert fill(10, 5, 0) == [0, 1, 2, 3, 4]
    sample = fill(100, 10_000, 1)
    assert len(sample) == 100 and sample == fill(100, 10_000, 1) and sample != fill(100, 10_000, 2)
    assert sum(i >= 5000 for i in sample) > 30  # drawn from the whole stream, not the head


def test_length_stats():
    assert percentile([], 50) == 0
    stats = length_stats(list(range(1, 101)), max_length=90)
    assert stats == {"min": 1, "mean": 50.5, "p50": 50, "p95": 95, "max": 100, "over_max_length": 10}
    assert length_stats([7], None)["over_max_length"] == 0
