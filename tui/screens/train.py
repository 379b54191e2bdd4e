"""Train: start a run, follow it live (loss chart, the method's own metrics, LR, throughput, ETA, progress)
with a GPU panel."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, Static

from tunedeck.engine.run.events import RunProgress
from tunedeck.engine.run.rundir import RunDir
from tunedeck.tui.messages import EventsRead, TrainLaunched
from tunedeck.tui.screens.base import StudioScreen
from tunedeck.tui.widgets.gpu_panel import GpuPanel
from tunedeck.tui.widgets.loss_chart import LossChart
from tunedeck.tui.widgets.metric_chart import MetricChart
from tunedeck.tui.widgets.ranks import RankPanel
from tunedeck.tui.workers import background

POLL_SECONDS = 0.5



def header_state(state: str, note: str) -> str:
    """The run's state and the last event's note, each word once ("stopped", not "stopped  stopped";
    "failed: ..." not "failed  failed: ...")."""
    state = state or "reading..."
    if not note or note == state:
        return state
    return note if note.startswith(state) else f"{state}  {note}"


class TrainScreen(StudioScreen):
    """Follows the attached (or newest) run: history first, then live events."""

    BINDINGS = [
        Binding("t", "train", "Train", id="train-start", tooltip="Start training the recipe as a new run"),
        Binding("s", "stop", "Stop", id="train-stop", tooltip="Stop this run at the next step (checkpoint)"),
        Binding("m", "cycle_metric", "Metric", id="train-metric", tooltip="Chart the run's next metric (rewards, kl, ...)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.run: RunDir | None = None
        self.event_offset = 0
        self.progress = RunProgress()
        self.state = ""
        self._reading = False
        self._poller = None  # the poll timer, from the first visit on

    def compose_body(self) -> ComposeResult:
        yield Static(id="train-run", markup=False)
        yield ProgressBar(id="train-bar", show_eta=False)
        yield Static(id="train-stats", markup=False)
        yield RankPanel(id="rank-panel", markup=False)  # shown for runs of more than one process
        with Horizontal(id="train-panels"):
            with Vertical(id="train-charts"):
                yield LossChart(id="loss-chart")
                yield MetricChart(id="metric-chart")
            yield GpuPanel(id="gpu-panel", markup=False)

    def on_screen_resume(self) -> None:
        """Start following on the first visit (the app may build this screen ahead of it), then keep up with the
        attached run."""
        if self._poller is None:
            self._poller = self.set_interval(POLL_SECONDS, self._poll)
            self._follow(self.current_run())
            return
        run = self.current_run()
        if run is not None and (self.run is None or run.id != self.run.id):
            self._follow(run)

    def _follow(self, run: RunDir | None) -> None:
        """Start over on ``run``: its full history is read on the next poll."""
        self.run, self.event_offset, self.progress, self.state = run, 0, RunProgress(), ""
        for chart in (self.query_one(LossChart), self.query_one(MetricChart)):
            chart.clear_points()
            chart.redraw()
        self._show_progress()
        self._reading = False
        self._poll()

    def _poll(self) -> None:
        if self.run is not None and not self._reading:
            self._reading = True
            self._read(self.run, self.event_offset)

    @background("tail")
    def _read(self, run: RunDir, offset: int) -> None:
        events, end, state = [], offset, self.state
        try:
            events, end = run.read_events(offset)
            state = run.state()
        finally:
            self.post_message(EventsRead(run.id, events, state, offset, end))

    def on_events_read(self, message: EventsRead) -> None:
        self._reading = False
        if self.run is None or message.run_id != self.run.id or message.start != self.event_offset:
            return
        self.event_offset = message.end
        chart, metrics = self.query_one(LossChart), self.query_one(MetricChart)
        for event in message.events:
            self.progress.fold(event)
            metrics.add_event(event)
            if event.get("kind") == "step" and isinstance(event.get("loss"), (int, float)):
                chart.add(event["step"], event["loss"])
            elif event.get("kind") == "eval" and isinstance(event.get("eval_loss"), (int, float)):
                chart.add(event["step"], event["eval_loss"], eval_=True)
        self.state = message.state
        if message.events:
            chart.redraw()
            metrics.redraw()
        self._show_progress()

    def _show_progress(self) -> None:
        head = self.query_one("#train-run", Static)
        bar = self.query_one("#train-bar", ProgressBar)
        stats = self.query_one("#train-stats", Static)
        if self.run is None:
            head.update("no run yet: press t to train the recipe (or attach one on Runs)")
            bar.update(total=None, progress=0)
            stats.update("")
            return
        p = self.progress
        head.update(f"run {self.run.id}  {header_state(self.state, p.note)}")
        bar.update(total=p.max_steps or None, progress=p.step)
        stats.update(p.line(self.state))

    def action_train(self) -> None:
        """Start the recipe as a new run (the same as t on Runs)."""
        self.start_training()

    def on_train_launched(self, message: TrainLaunched) -> None:
        """Follow the run just started (the message goes on to the app's notification)."""
        self._follow(RunDir(self.runs_dir / message.run_id))

    def action_cycle_metric(self) -> None:
        """Chart the next of the run's own metrics."""
        if self.query_one(MetricChart).cycle() is None:
            self.notify("this run has logged no metrics besides loss yet", severity="warning")

    def action_stop(self) -> None:
        """Stop the followed run (SIGTERM; it checkpoints and exits)."""
        if self.run is None:
            self.notify("no run to stop", severity="warning")
            return
        self.stop_run(self.run)
