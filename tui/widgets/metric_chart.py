"""The run's own metrics beside the loss: whatever numbers a method logs (rewards/margins, kl, reward, ...).

Nothing here knows a method: every finite number in a ``step`` event (and every ``eval_*`` number of
an ``eval`` event, as that metric's eval points) is a metric, except the ones the Train screen
already shows. One metric is charted at a time; ``cycle`` moves to the next.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from textual_plotext import PlotextPlot

# already on the screen (loss chart, stats line) or bookkeeping, not a training signal
SHOWN_ELSEWHERE = frozenset(
    {"ts", "kind", "step", "max_steps", "loss", "lr", "learning_rate", "grad_norm", "epoch", "tokens_per_s",
     "num_tokens", "world_size", "rank"}
)  # fmt: skip
EVAL_BOOKKEEPING = ("runtime", "samples_per_second", "steps_per_second")
# charted first when present: the figure that says whether the method is working
PREFERRED = ("rewards/margins", "reward", "objective/rlhf_reward", "objective/scores", "rewards/accuracies")


def metric_points(event: dict[str, Any]) -> Iterator[tuple[str, float, bool]]:
    """(metric, value, is_eval) for each method metric carried by a step or eval event."""
    kind = event.get("kind")
    if kind not in ("step", "eval"):
        return
    for key, value in event.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        if kind == "eval":
            if not key.startswith("eval_"):
                continue
            key = key.removeprefix("eval_")
        if key not in SHOWN_ELSEWHERE and not key.endswith(EVAL_BOOKKEEPING):
            yield key, float(value), kind == "eval"


class MetricChart(PlotextPlot):
    """One of the run's metrics against step (train line, eval points); ``cycle`` picks another."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.series: dict[str, dict[bool, tuple[list[float], list[float]]]] = {}
        self.chosen: str | None = None  # set once the user cycles; else the preferred metric is shown

    @property
    def names(self) -> list[str]:
        """Metrics seen so far, in the order they first appeared."""
        return list(self.series)

    @property
    def current(self) -> str | None:
        """The metric on the chart."""
        if self.chosen in self.series:
            return self.chosen
        return next((m for m in PREFERRED if m in self.series), next(iter(self.series), None))

    def add_event(self, event: dict[str, Any]) -> None:
        """Take the metrics of one event (call ``redraw`` after a batch)."""
        step = event.get("step")
        if not isinstance(step, (int, float)):
            return
        for name, value, is_eval in metric_points(event):
            steps, values = self.series.setdefault(name, {}).setdefault(is_eval, ([], []))
            steps.append(step)
            values.append(value)

    def cycle(self, by: int = 1) -> str | None:
        """Chart the next metric (``by=-1``: the previous); returns its name."""
        names = self.names
        if names:
            self.chosen = names[(names.index(self.current) + by) % len(names)]
            self.redraw()
        return self.chosen

    def clear_points(self) -> None:
        """Forget every metric (another run was attached)."""
        self.series.clear()
        self.chosen = None

    def redraw(self) -> None:
        """Plot the current metric."""
        plt = self.plt
        plt.clear_data()
        name = self.current
        if name is None:
            plt.title("no method metrics logged yet")
            self.refresh()
            return
        plt.title(f"{name} ({self.names.index(name) + 1}/{len(self.names)})")
        for is_eval, (steps, values) in sorted(self.series[name].items()):
            if is_eval:
                plt.scatter(steps, values, label="eval")
            else:
                plt.plot(steps, values, label="train", marker="braille")
        self.refresh()
