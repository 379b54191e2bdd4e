"""A token-length histogram drawn with block characters (fits any width, no colours of its own)."""

from __future__ import annotations

from textual.widgets import Static

BAR = "█"


def histogram_lines(values: list[int], bins: int = 8, width: int = 40, limit: int | None = None) -> list[str]:
    """``lo-hi │███ count`` per bin; values over ``limit`` are counted in the note below."""
    if not values:
        return ["no lengths yet"]
    lo, hi = min(values), max(values)
    step = max(1, -(-(hi - lo + 1) // bins))
    counts = [0] * bins
    for v in values:
        counts[min((v - lo) // step, bins - 1)] += 1
    top = max(counts) or 1
    label_width = len(f"{lo + step * bins - 1}") * 2 + 1
    lines = []
    for i, count in enumerate(counts):
        a, b = lo + i * step, lo + (i + 1) * step - 1
        if a > hi:
            break
        bar = BAR * max(1 if count else 0, round(width * count / top))
        lines.append(f"{f'{a}-{b}':>{label_width}} │{bar} {count}")
    if limit:
        over = sum(v > limit for v in values)
        lines.append(f"{over} of {len(values)} over train.max_length={limit} (truncated)" if over else
                     f"all {len(values)} within train.max_length={limit}")  # fmt: skip
    return lines


class Histogram(Static):
    """Static text histogram; ``show(values)`` redraws it."""

    def show(self, values: list[int], title: str = "", limit: int | None = None) -> None:
        """Draw ``values`` under ``title``."""
        lines = ([title] if title else []) + histogram_lines(values, limit=limit)
        self.update("\n".join(lines))
