"""Bounded-memory statistics: a deterministic reservoir sample and token-length summaries."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

TOKEN_SAMPLE = 2000  # rows tokenized for length stats: a tokenizer over a million rows does not fit in seconds


@dataclass
class Reservoir:
    """A uniform sample of at most ``size`` items from a stream (Algorithm R), deterministic in ``seed``."""

    size: int
    seed: int = 0
    seen: int = 0
    items: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def wants(self) -> int | None:
        """The slot the next item would take (None: skip it). Call ``put`` only when not None."""
        self.seen += 1
        if len(self.items) < self.size:
            return len(self.items)
        j = self._rng.randrange(self.seen)
        return j if j < self.size else None

    def put(self, slot: int, item: Any) -> None:
        if slot == len(self.items):
            self.items.append(item)
        else:
            self.items[slot] = item


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def length_stats(lengths: list[int], max_length: int | None) -> dict[str, Any]:
    """{min, mean, p50, p95, max, over_max_length} of token lengths."""
    values = sorted(lengths)
    return {
        "min": values[0] if values else 0,
        "mean": round(sum(values) / len(values), 1) if values else 0.0,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": values[-1] if values else 0,
        "over_max_length": sum(v > max_length for v in values) if max_length else 0,
    }
