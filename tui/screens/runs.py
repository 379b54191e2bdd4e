"""The home screen: the workspace's runs; train, attach, stop, resume and delete them."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from tunedeck.engine.run.events import format_event, run_summary
from tunedeck.engine.run.rundir import TERMINAL_STATES, RunDir, list_runs
from tunedeck.tui.messages import RunActionFinished, RunsRead, TrainLaunched, TrainLaunchFailed
from tunedeck.tui.screens.base import StudioScreen
from tunedeck.tui.screens.confirm import ConfirmScreen
from tunedeck.tui.workers import background

REFRESH_SECONDS = 2.0
TAIL_EVENTS = 6
COLUMNS = (("id", "id"), ("state", "state"), ("step/total", "step"), ("loss", "loss"))


def run_row(run: RunDir) -> tuple[str, str, str, str]:
    """The table cells for one run: id, state, step/total, loss."""
    s = run_summary(run)
    return s["id"], s["state"], s["step_text"], s["loss_text"]


class EventTail:
    """The last few event lines of one run and the byte offset its next read starts at (filled by RunsRead)."""

    def __init__(self, run: RunDir, size: int = TAIL_EVENTS) -> None:
        self.run = run
        self.offset = 0
        self.lines: deque[str] = deque(maxlen=size)


def read_tail(run: RunDir, offset: int) -> tuple[list[str], int]:
    """The event lines appended to ``run`` since byte ``offset``, and where the next read starts."""
    events, end = run.read_events(offset)
    return [line for event in events if (line := format_event(event, clock=True))], end


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
        self._asked = self._shown = 0  # refreshes asked for, and the newest one shown

    @property
    def recipe_path(self):
        return self.store.path

    def compose_body(self) -> ComposeResult:
        yield Static(id="recipe", markup=False)
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(id="detail", markup=False)

    def on_mount(self) -> None:
        self._fill_table([])
        self.query_one("#detail", Static).border_title = "events"
        self.refresh_runs()
        self.set_interval(REFRESH_SECONDS, self.refresh_runs)

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    # ---- reading

    def refresh_runs(self) -> None:
        """Re-read the recipe, the runs and the selected run's events in a worker (RunsRead fills the screen)."""
        self._asked += 1
        tail = self._tail
        self._read_runs(self._asked, self.recipe_path, self.runs_dir, self.selected_run_id(),
                        tail.run.id if tail else None, tail.offset if tail else 0)  # fmt: skip

    @background("runs-read")
    def _read_runs(self, asked: int, recipe_path: Path, runs_dir: Path, selected: str | None, tail_run: str | None,
                   tail_offset: int) -> None:  # fmt: skip
        rows, error = [], ""
        try:
            runs = list(reversed(list_runs(runs_dir)))  # newest first
        except OSError as e:
            runs, error = [], str(e)
        for run in runs:
            try:
                rows.append(run_row(run))
            except OSError:  # deleted between listing and reading
                continue
        read = RunsRead(asked, recipe_path.is_file(), rows, error)
        keys = [row[0] for row in rows]
        read.tail_run = selected if selected in keys else (keys[0] if keys else None)  # where the cursor will be
        if read.tail_run is not None:
            run = RunDir(runs_dir / read.tail_run)
            read.tail_start = read.tail_end = tail_offset if read.tail_run == tail_run else 0
            try:
                read.tail_lines, read.tail_end = read_tail(run, read.tail_start)
            except (OSError, ValueError) as e:
                read.tail_error = f"cannot read {run.events_path}: {e}"
        self.post_message(read)

    def on_runs_read(self, message: RunsRead) -> None:
        if message.asked < self._shown:  # an older read that finished after a newer one
            return
        self._shown = message.asked
        if message.recipe_exists:
            recipe = f"recipe: {self.recipe_path}" + (" (unsaved edits)" if self.store.dirty else "")
        else:
            recipe = f"no recipe.yaml in {self.workspace} (tunedeck demo --init {self.workspace} writes one)"
        self.query_one("#recipe", Static).update(recipe)
        if message.error and message.error != self._read_error:  # say it once, not every two seconds
            self.notify(f"cannot read {self.runs_dir}: {message.error}", severity="error", markup=False)
        if message.error:
            self._read_error = message.error
        self._fill_table(message.rows)
        self._show_detail(message)

    def _fill_table(self, rows: list[tuple[str, str, str, str]]) -> None:
        """Show ``rows``: cells updated in place while the runs and the column widths stay; else the table is
        rebuilt with columns as wide as their widest cell (set here: DataTable measures auto widths only when idle,
        after rows added from a message may already be drawn at the old widths)."""
        table = self.query_one("#runs", DataTable)
        keys = [row[0] for row in rows]
        widths = [max([cell_len(label), *(cell_len(row[i]) for row in rows)]) for i, (label, _) in enumerate(COLUMNS)]
        if keys == [key.value for key in table.rows] and widths == [column.width for column in table.ordered_columns]:
            for row in rows:
                for (_, column), value in zip(COLUMNS, row, strict=True):
                    table.update_cell(row[0], column, Text(value))
            return
        selected = self.selected_run_id()
        table.clear(columns=True)
        for (label, key), width in zip(COLUMNS, widths, strict=True):
            table.add_column(label, width=width, key=key)
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

    def _show_detail(self, message: RunsRead) -> None:
        detail = self.query_one("#detail", Static)
        run_id = self.selected_run_id()
        if run_id is None:
            self._tail = None
            detail.update(f"no runs in {self.runs_dir} yet: press t to train the workspace recipe")
            return
        if message.tail_run != run_id:  # the cursor moved while the worker read
            self.refresh_runs()
            return
        if message.tail_error:
            detail.update(message.tail_error)
            return
        if self._tail is None or self._tail.run.id != run_id:
            self._tail = EventTail(RunDir(self.runs_dir / run_id))
        if message.tail_start == self._tail.offset:
            self._tail.lines.extend(message.tail_lines)
            self._tail.offset = message.tail_end
        elif not self._tail.offset:  # read from where an earlier tail stood: read this one from the start
            self.refresh_runs()
        lines = self._tail.lines
        detail.update("\n".join(lines) if lines else f"{run_id}: no events yet")

    @on(DataTable.RowHighlighted, "#runs")
    def _row_highlighted(self) -> None:
        run_id = self.selected_run_id()
        if run_id is not None and (self._tail is None or self._tail.run.id != run_id):
            self.refresh_runs()  # the worker reads the newly highlighted run's events

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self) -> None:
        self.action_attach()

    def on_run_action_finished(self, message: RunActionFinished) -> None:
        """After StudioScreen's word on it: show what the action changed."""
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
            self.stop_run(run)

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
        from tunedeck.engine.run.launch import RunStateError, delete_run, resume_run

        try:
            if verb == "resume":
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
