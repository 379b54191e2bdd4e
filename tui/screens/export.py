"""Export: pick GGUF quant types, run merge -> convert -> quantize -> verify with progress per stage, and read
the size/fidelity table and the fallback warnings."""

from __future__ import annotations

import json
import time
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, ProgressBar, Select, SelectionList, Static

from tunedeck.engine.export.report import COLUMNS
from tunedeck.engine.export.stages import planned_stages, stage_label
from tunedeck.engine.recipe import GGUF_TYPES, allowed
from tunedeck.engine.run.rundir import RunDir
from tunedeck.tui.messages import EventsRead, ExportStarted, WorkFailed
from tunedeck.tui.screens.base import StudioScreen
from tunedeck.tui.workers import background

STATE_TEXT = {"pending": "·", "start": "running", "done": "done", "failed": "FAILED"}
POLL_SECONDS = 0.5
FINAL = "final"
CHECKS = [(f"checks: {v}" + (" (sampled)" if v == "quick" else ""), v) for v in allowed("export.checks")]


def checkpoint_options(run: RunDir) -> tuple[list[tuple[str, str]], str | None]:
    """The weights an export can start from, newest first, and the default (tunedeck.engine.export.merge.weights_source):
    the final weights of a finished run, else its newest complete checkpoint. ([], None): nothing to export yet."""
    from tunedeck.engine.export.errors import ExportError
    from tunedeck.engine.export.merge import weights_source

    try:
        default = weights_source(run)
    except (ExportError, OSError, ValueError):
        return [], None
    options = [(f"final weights ({run.state()})", FINAL)] if default.checkpoint is None else []
    options += [(f"checkpoint {c.name}", c.name) for c in reversed(run.complete_checkpoints())]
    return options, default.checkpoint or FINAL


class ExportScreen(StudioScreen):
    """Exports the attached (or newest) run; progress per stage, then the report's table and warnings."""

    BINDINGS = [
        Binding("x", "export", "Export", id="export-start", tooltip="Export the run to the checked GGUF types"),
        Binding("l", "load_report", "Report", id="export-report", tooltip="Show the run's export-report.json"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.run: RunDir | None = None
        self.busy = False  # following a live export job of self.run
        self.stage_states: dict[str, str] = {}
        self.job_offset, self.job_started, self._reading = 0, 0.0, False
        self._poller = None

    def compose_body(self) -> ComposeResult:
        yield Static(id="export-run", markup=False)
        with Horizontal(id="export-pickers"):
            yield Select[str]([], prompt="no complete checkpoint yet", id="export-checkpoint", compact=True,
                              tooltip="The weights to export: the final ones, or any complete checkpoint")  # fmt: skip
            yield Select[str](CHECKS, value="quick", allow_blank=False, id="export-checks", compact=True,
                              tooltip="How much each file is checked against the HF model: quick samples to a token "
                                      "budget, full uses every held-out text and eval row, none checks nothing")  # fmt: skip
        with Horizontal(id="export-top"):
            yield SelectionList[str](*((q, q, False) for q in GGUF_TYPES), id="export-quants")
            with Vertical(id="export-progress"):
                yield ProgressBar(id="export-bar", show_eta=False)
                yield Static(id="export-now", markup=False)
                yield DataTable(id="export-stages", cursor_type="none", show_header=False)
        yield DataTable(id="export-files", cursor_type="row")
        yield Static(id="export-checks-line", markup=False)
        yield Static(id="export-warnings", markup=False)

    def on_mount(self) -> None:
        quants = self.query_one("#export-quants", SelectionList)
        quants.border_title = "GGUF (space)"
        if self.store.get("export.checks") in {v for _, v in CHECKS}:
            self.query_one("#export-checks", Select).value = self.store.get("export.checks")
        for q in self.store.get("export.quant") or []:
            if str(q).upper() in GGUF_TYPES:
                quants.select(str(q).upper())
        self.query_one("#export-progress", Vertical).border_title = "progress per stage"
        stages = self.query_one("#export-stages", DataTable)
        stages.add_column("stage", key="stage")
        stages.add_column("state", key="state")
        stages.add_column("seconds", key="seconds")
        self.query_one("#export-bar", ProgressBar).update(total=1, progress=0)
        self.query_one("#export-files", DataTable).add_columns(*COLUMNS)
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        from tunedeck.engine.export.job import ExportJob

        run = self.current_run()
        if self.busy and run is not None and self.run is not None and run.id == self.run.id:
            return  # still following this run's export
        self.run, self.busy = run, False
        text = f"run {self.run.id} ({self.run.state()})" if self.run else "no run to export yet: train one first"
        self.query_one("#export-run", Static).update(text)
        picker = self.query_one("#export-checkpoint", Select)
        options, default = checkpoint_options(self.run) if self.run else ([], None)
        picker.set_options(options)
        if default is not None:
            picker.value = default
        self.action_load_report()
        job = ExportJob(self.run) if self.run else None
        if job is not None and job.live():  # started earlier, here or by `tunedeck export`: follow it
            status = job.read_status()
            self._reset_stages([])
            self._follow_job(int(status.get("events_offset") or 0), float(status.get("started") or time.time()))

    def action_load_report(self) -> None:
        """Fill the table from the run's export-report.json, when there is one."""
        if self.run is None or not self.run.export_report.is_file():
            return
        try:
            self._show_report(json.loads(self.run.export_report.read_text()))
        except (OSError, ValueError) as e:
            self.notify(f"cannot read {self.run.export_report}: {e}", severity="error", markup=False)

    def _show_report(self, report: dict[str, Any], live: bool = False) -> None:
        """The report's files and warnings; its stage seconds too unless the stages were just shown live."""
        if not live and not self.busy:  # the stages of the export that wrote this report, with their seconds
            self._reset_stages([])
            for stage, seconds in (report.get("seconds") or {}).items():
                self._stage(stage, "done", seconds)
            if report.get("error"):
                self.query_one("#export-now", Static).update(f"failed: {report['error']}")
        from tunedeck.engine.export.report import checks_line, fidelity_rows

        table = self.query_one("#export-files", DataTable)
        table.clear()
        for row in fidelity_rows(report):  # the rows `tunedeck export` prints
            table.add_row(*row)

        warnings = list(report.get("warnings", []))
        if report.get("error"):
            warnings.insert(0, f"export failed: {report['error']}")
        line = self.query_one("#export-checks-line", Static)
        line.update(checks_line(report, brief=True))
        line.display = bool(report.get("checks"))
        self.query_one("#export-warnings", Static).update(
            "\n".join(f"! {w}" for w in warnings) if warnings else "no fallback or parity warnings"
        )

    def action_export(self) -> None:
        """Start the export job (tunedeck.engine.export.job) on the selected types; the screen follows its events."""
        quants = list(self.query_one("#export-quants", SelectionList).selected)
        if self.run is None:
            self.notify("no run to export (attach one on Runs)", severity="error")
            return
        choice = self.query_one("#export-checkpoint", Select).value
        if not isinstance(choice, str):
            self.notify(f"run {self.run.id} ({self.run.state()}) has no final weights and no complete checkpoint yet",
                        severity="error", markup=False)  # fmt: skip
            return
        if not quants:
            self.notify("check at least one GGUF type (space)", severity="error")
            return
        if self.busy:
            self.notify("an export of this run is already running: its progress is shown here", severity="warning")
            return
        checks = str(self.query_one("#export-checks", Select).value)
        self.busy = True
        self._reset_stages(planned_stages(quants, checks))
        self._start(self.run, quants, None if choice == FINAL else choice, checks)

    @background("export")
    def _start(self, run: RunDir, quants: list[str], checkpoint: str | None, checks: str) -> None:
        from tunedeck.engine.export.errors import ExportError
        from tunedeck.engine.export.job import start_export
        from tunedeck.engine.recipe import RecipeError
        from tunedeck.engine.run.launch import RunStateError

        try:
            _, offset = start_export(run, quants, {"checks": checks}, checkpoint)
        except (ExportError, RunStateError, RecipeError, OSError) as e:
            self.post_message(ExportStarted(run.id, None, str(e)))
            return
        self.post_message(ExportStarted(run.id, offset))

    def on_export_started(self, message: ExportStarted) -> None:
        if message.error is not None:
            self.busy = False
            self.query_one("#export-now", Static).update(f"not started: {message.error}")
            self.notify(message.error, severity="error", markup=False)
            return
        self._follow_job(message.offset or 0, time.time())

    def _follow_job(self, offset: int, started: float) -> None:
        """Read the job's events from ``offset`` every POLL_SECONDS until it has ended; the log line's seconds count
        from ``started``."""
        self.busy, self.job_offset, self.job_started, self._reading = True, offset, started, False
        if self._poller is None:
            self._poller = self.set_interval(POLL_SECONDS, self._poll)
        self._poller.resume()

    def _poll(self) -> None:
        if self.busy and self.run is not None and not self._reading:
            self._reading = True
            self._read(self.run, self.job_offset)

    @background("export-tail")
    def _read(self, run: RunDir, offset: int) -> None:
        from tunedeck.engine.export.job import ExportJob

        events, end, state = [], offset, None
        try:
            state = ExportJob(run).state()  # before the read: every event of an ended job is in this read
            events, end = run.read_events(offset)
        finally:
            self.post_message(EventsRead(run.id, events, state or "", offset, end))

    def on_events_read(self, message: EventsRead) -> None:
        self._reading = False
        if self.run is None or message.run_id != self.run.id or message.start != self.job_offset or not self.busy:
            return
        self.job_offset = message.end
        for event in message.events:
            kind = event.get("kind")
            if kind == "export_stage":
                self._stage(event["stage"], event["state"], event.get("seconds"))
            elif kind == "export_line":
                self._log(event["message"], event.get("ts"))
            elif kind == "export_file":
                self.action_load_report()  # the report was rewritten just before: the table grows file by file
        if message.state in ("finished", "failed", "crashed"):
            self._ended(message.state)

    def _ended(self, state: str) -> None:
        self.busy = False
        if self._poller is not None:
            self._poller.pause()
        try:
            report = json.loads(self.run.export_report.read_text()) if self.run and self.run.export_report.is_file() else {}
        except (OSError, ValueError):
            report = {}
        if state == "finished" and report.get("ok"):
            self._log(f"done: {len(report.get('files', []))} file(s) in {self.run.gguf if self.run else '?'}")
            self._show_report(report, live=True)
            return
        error = report.get("error") or f"the export job {state}: see {self.run.path / 'export.log' if self.run else '?'}"
        self._log(f"failed: {error}")
        self._show_report(report, live=True)
        self.post_message(WorkFailed("export", error))

    def _reset_stages(self, planned: list[str]) -> None:
        """Empty the stage table, then list ``planned`` as pending."""
        self.query_one("#export-stages", DataTable).clear()
        self.stage_states = {}
        self.query_one("#export-now", Static).update("")
        for stage in planned:
            self._stage(stage, "pending", None)

    def _stage(self, stage: str, state: str, seconds: float | None) -> None:
        """Show one stage event (tunedeck.engine.export.pipeline.Stage) in the table and the bar."""
        table = self.query_one("#export-stages", DataTable)
        cells = (stage_label(stage), STATE_TEXT.get(state, state), f"{seconds:.1f}" if seconds is not None else "")
        if stage in self.stage_states:
            for column, value in zip(("stage", "state", "seconds"), cells, strict=True):
                table.update_cell(stage, column, value)
        else:
            table.add_row(*cells, key=stage)
        self.stage_states[stage] = state
        if state == "start":
            table.move_cursor(row=table.get_row_index(stage))
        done = sum(s in ("done", "failed") for s in self.stage_states.values())
        self.query_one("#export-bar", ProgressBar).update(total=max(len(self.stage_states), 1), progress=done)

    def _log(self, message: str, ts: float | None = None) -> None:
        self.query_one("#export-now", Static).update(f"{(ts or time.time()) - self.job_started:6.1f}s {message}")
