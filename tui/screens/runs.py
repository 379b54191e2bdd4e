"""The home screen: the workspace's runs; train, attach, stop, resume and delete them."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from engine.events import format_event, run_summary
from engine.runs import TERMINAL_STATES, RunDir, list_runs
from tui.messages import RunActionFinished, TrainLaunched, TrainLaunchFailed
from tui.screens.base import StudioScreen
from tui.screens.confirm import ConfirmScreen
from tui.workers import background

REFRESH_SECONDS = 2.0
TAIL_EVENTS = 6
COLUMNS = (("id", "id"), ("state", "state"), ("step/total", "step"), ("loss", "loss"))


def run_row(run: RunDir) -> tuple[str, str, str, str]:
    """The table cells for one run: id, state, step/total, loss."""
    s = run_summary(run)
    return s["id"], s["state"], s["step_text"], s["loss_text"]


class EventTail:
    """The last few events of one run, read incrementally from a byte offset."""

    def __init__(self, run: RunDir, size: int = TAIL_EVENTS) -> None:
        self.run = run
        self.offset = 0
        self.lines: deque[str] = deque(maxlen=size)

    def poll(self) -> None:
        """Read the events appended since the last poll."""
        events, self.offset = self.run.read_events(self.offset)
        self.lines.extend(line for event in events if (line := format_event(event, clock=True)))


class RunsScreen(StudioScreen):
    """Lists the runs of the recipe's runs folder and tails the selected one."""

    BINDINGS = [
        Binding("t", "train", "Train", id="train", tooltip="Start training recipe.yaml in the background"),
        Binding("enter,a", "attach", "Attach", id="attach", tooltip="Follow the selected run on the Train screen"),
        Binding("s", "stop", "Stop", id="stop", tooltip="Stop the selected run (checkpoints first)"),
        Binding("u", "resume", "Resume", id="resume", tooltip="Resume the selected run from its last checkpoint"),
        Binding("d", "delete", "Delete", id="delete", tooltip="Delete the selected run folder (asks first)"),
        Binding("r", "refresh_runs", "Refresh", id="refresh", tooltip="Re-read the runs folder now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._tail: EventTail | None = None
        self._read_error = ""

    @property
    def recipe_path(self):
        return self.store.path

    def compose_body(self) -> ComposeResult:
        yield Static(id="recipe", markup=False)
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(id="detail", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        self.query_one("#detail", Static).border_title = "events"
        self.refresh_runs()
        self.set_interval(REFRESH_SECONDS, self.refresh_runs)

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    # ---- reading

    def refresh_runs(self) -> None:
        """Re-read the recipe, the runs and the selected run's events."""
        if self.recipe_path.is_file():
            recipe = f"recipe: {self.recipe_path}" + (" (unsaved edits)" if self.store.dirty else "")
        else:
            recipe = f"no recipe.yaml in {self.workspace} (tunedeck demo --init {self.workspace} writes one)"
        self.query_one("#recipe", Static).update(recipe)
        rows = []
        try:
            runs = list(reversed(list_runs(self.runs_dir)))  # newest first
        except OSError as e:  # say it once, not every two seconds
            runs = []
            if str(e) != self._read_error:
                self.notify(f"cannot read {self.runs_dir}: {e}", severity="error", markup=False)
            self._read_error = str(e)
        for run in runs:
            try:
                rows.append(run_row(run))
            except OSError:  # deleted between listing and reading
                continue
        self._fill_table(rows)
        self._show_detail()

    def _fill_table(self, rows: list[tuple[str, str, str, str]]) -> None:
        table = self.query_one("#runs", DataTable)
        keys = [row[0] for row in rows]
        if keys == [key.value for key in table.rows]:
            for row in rows:
                for (_, column), value in zip(COLUMNS, row, strict=True):
                    table.update_cell(row[0], column, Text(value), update_width=True)
            return
        selected = self.selected_run_id()
        table.clear()
        for row in rows:
            table.add_row(*(Text(value) for value in row), key=row[0])
        if selected in keys:
            table.move_cursor(row=keys.index(selected))

    def selected_run_id(self) -> str | None:
        """The id of the highlighted run, or None when the table is empty."""
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def selected_run(self) -> RunDir | None:
        """The highlighted run, telling the user when there is none."""
        run_id = self.selected_run_id()
        if run_id is None:
            self.notify("no run selected: press t to train one", severity="warning")
            return None
        return RunDir(self.runs_dir / run_id)

    def _show_detail(self) -> None:
        detail = self.query_one("#detail", Static)
        run_id = self.selected_run_id()
        if run_id is None:
            self._tail = None
            detail.update(f"no runs in {self.runs_dir} yet: press t to train the workspace recipe")
            return
        if self._tail is None or self._tail.run.id != run_id:
            self._tail = EventTail(RunDir(self.runs_dir / run_id))
        try:
            self._tail.poll()
        except (OSError, ValueError) as e:
            detail.update(f"cannot read {self._tail.run.events_path}: {e}")
            return
        lines = self._tail.lines
        detail.update("\n".join(lines) if lines else f"{run_id}: no events yet")

    @on(DataTable.RowHighlighted, "#runs")
    def _row_highlighted(self) -> None:
        self._show_detail()

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self) -> None:
        self.action_attach()

    def on_run_action_finished(self, message: RunActionFinished) -> None:
        if message.text != "recipe opened":
            self.notify(message.text, severity="information" if message.ok else "error", markup=False)
        self.refresh_runs()

    # ---- actions

    def action_refresh_runs(self) -> None:
        """Re-read everything now."""
        self.refresh_runs()

    def action_attach(self) -> None:
        """Show the selected run's full history and live progress on the Train screen."""
        if (run := self.selected_run()) is not None:
            self.app.action_attach(run.id)  # type: ignore[attr-defined]

    def action_stop(self) -> None:
        """Signal the worker; it checkpoints at the next step and exits (waits in a thread)."""
        if (run := self.selected_run()) is not None:
            self._run_verb(run, "stop")

    def action_resume(self) -> None:
        """Start a new worker on a stopped run from its newest complete checkpoint."""
        if (run := self.selected_run()) is not None:
            self._run_verb(run, "resume")

    def action_delete(self) -> None:
        """Remove the run folder after a confirm; refused while its worker lives."""
        run = self.selected_run()
        if run is None:
            return
        if run.state() not in TERMINAL_STATES:
            self.notify(f"run {run.id} is {run.state()}: stop it first (s)", severity="error", markup=False)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._run_verb(run, "delete")

        self.app.push_screen(ConfirmScreen(f"Delete run {run.id} and all its files?"), answered)

    @background("run-verbs")
    def _run_verb(self, run: RunDir, verb: str) -> None:
        from engine.launch import RunStateError, delete_run, resume_run, stop_run

        try:
            if verb == "stop":
                self.post_message(RunActionFinished(f"stopping {run.id} (at the next step boundary)"))
                seconds = stop_run(run)
                text = f"run {run.id} stopped after {seconds:.1f}s"
            elif verb == "resume":
                resume_run(run)
                text = f"run {run.id} resumed"
            else:
                delete_run(run)
                text = f"run {run.id} deleted"
        except (RunStateError, OSError, TimeoutError) as e:
            self.post_message(RunActionFinished(str(e), ok=False))
            return
        self.post_message(RunActionFinished(text))

    def action_train(self) -> None:
        """Start training the shared recipe in a detached worker; never blocks the UI."""
        if not self.recipe_path.is_file() and not self.store.data:
            self.post_message(
                TrainLaunchFailed(
                    f"no recipe.yaml in {self.workspace}: write one there "
                    f"(tunedeck demo --init {self.workspace} makes a demo recipe)"
                )
            )
            return
        self.start_training()

    def on_train_launched(self, message: TrainLaunched) -> None:
        """Show the new run at once (the message goes on to the app's notification)."""
        self.refresh_runs()
