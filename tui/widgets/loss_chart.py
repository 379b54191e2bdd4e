"""The loss curve of a run (plotext through textual-plotext)."""

from __future__ import annotations

from textual_plotext import PlotextPlot


class LossChart(PlotextPlot):
    """Training (and eval) loss against step; ``set_points`` replaces the data and redraws."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.steps: list[float] = []
        self.losses: list[float] = []
        self.eval_steps: list[float] = []
        self.eval_losses: list[float] = []

    def add(self, step: float, loss: float, *, eval_: bool = False) -> None:
        """Append one point (call ``redraw`` after a batch)."""
        (self.eval_steps if eval_ else self.steps).append(step)
        (self.eval_losses if eval_ else self.losses).append(loss)

    def clear_points(self) -> None:
        """Forget every point (another run was attached)."""
        for series in (self.steps, self.losses, self.eval_steps, self.eval_losses):
            series.clear()

    def redraw(self) -> None:
        """Plot the current points."""
        plt = self.plt
        plt.clear_data()
        plt.title("loss")
        plt.xlabel("step")
        if self.steps:
            plt.plot(self.steps, self.losses, label="train", marker="braille")
        if self.eval_steps:
            plt.scatter(self.eval_steps, self.eval_losses, label="eval")
        self.refresh()
