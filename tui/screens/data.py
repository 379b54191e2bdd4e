"""Data: the recipe's training set as normalized rows (paged), raw rows, a jumpable error list and stats."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import ContentSwitcher, DataTable, Static

from tunedeck.tui.messages import DataInspected, TokenLengthsRead, WorkFailed
from tunedeck.tui.screens.base import StudioScreen
from tunedeck.tui.screens.row_view import RowViewScreen, message_lines, raw_line
from tunedeck.tui.widgets.histogram import Histogram
from tunedeck.tui.workers import background, ml_turn

CELL = 60


def cell(value: Any) -> str:
    """One normalized field as a single short line (``user: hi | assistant: yo`` for chats, tool calls and
    reasoning marked)."""
    if isinstance(value, list):
        text = " | ".join("; ".join(message_lines(m)) if isinstance(m, dict) else str(m) for m in value)
    else:
        text = str(value)
    text = text.replace("\n", "⏎ ")
    return text if len(text) <= CELL else text[: CELL - 1] + "…"


class DataScreen(StudioScreen):
    """Inspects data.train in a thread (every row validated); token lengths use the recipe's tokenizer."""

    BINDINGS = [
        Binding("v", "show('data-rows')", "Rows", id="data-rows", tooltip="Normalized rows (pgup/pgdn page)"),
        Binding("e", "show('data-errors')", "Errors", id="data-errors", tooltip="Every invalid row; enter opens it"),
        Binding("h", "show('data-stats')", "Stats", id="data-stats", tooltip="Counts and the token-length histogram"),
        Binding("o", "open_row", "Raw row", id="data-open", tooltip="Open the highlighted row as written"),
        Binding("l", "load", "Reload", id="data-load", tooltip="Read data.train again"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.report: Any = None
        self.lengths: list[int] = []

    def compose_body(self) -> ComposeResult:
        yield Static(id="data-summary", markup=False)
        with ContentSwitcher(initial="data-rows", id="data-switch"):
            yield DataTable(id="data-rows", cursor_type="row", zebra_stripes=True)
            yield DataTable(id="data-errors", cursor_type="row", zebra_stripes=True)
            yield Histogram(id="data-stats", markup=False)

    def on_mount(self) -> None:
        self.query_one("#data-errors", DataTable).add_columns("where", "field", "kind", "reason")
        self.action_load()

    @property
    def source(self) -> str:
        return self.store.resolve(str(self.store.get("data.train", "")))

    def action_load(self) -> None:
        """Inspect data.train again."""
        if not self.store.get("data.train"):
            self.query_one("#data-summary", Static).update("the recipe has no data.train: open a recipe (ctrl+o)")
            return
        self.query_one("#data-summary", Static).update(f"reading {self.source} ...")
        self._inspect(self.source)

    @background("data", exclusive=True)
    def _inspect(self, source: str) -> None:
        from tunedeck.engine.data.errors import DataError
        from tunedeck.engine.data.inspect import inspect_data

        try:
            report = inspect_data(source)
        except (DataError, OSError, ValueError) as e:
            self.post_message(DataInspected(source, error=str(e)))
            return
        self.post_message(DataInspected(source, report))

    def on_data_inspected(self, message: DataInspected) -> None:
        if message.error:
            self.query_one("#data-summary", Static).update(f"cannot read {message.source}: {message.error}")
            self.post_message(WorkFailed("data", message.error))
            return
        self._show_report(message.report)
        template = str(self.store.get("template.name", "model"))
        self._token_lengths([row for _, row in message.report.sample], self.store.tokenizer_source(), template)

    def _show_report(self, report: Any) -> None:
        self.report = report
        sampled = "" if len(report.sample) >= report.valid else f" (showing a sample of {len(report.sample)})"
        labels = f", labels {report.labels.get('true', 0)} true / {report.labels.get('false', 0)} false" if report.labels else ""
        self.query_one("#data-summary", Static).update("\n".join([
            f"{report.source}: {report.format} ({report.confidence:.0%}), {report.rows} rows, "
            f"{report.valid} valid, {report.invalid} invalid, {report.duplicates} duplicates{labels}{sampled}",
            *(f"read: {n}" for n in report.notes), *(f"⚠ {w}" for w in report.warnings),
        ]))  # fmt: skip
        rows = self.query_one("#data-rows", DataTable)
        rows.clear(columns=True)
        columns = list(report.trl_columns) or ["row"]
        rows.add_columns("where", *columns)
        for i, (where, row) in enumerate(report.sample):
            rows.add_row(where.short(), *(Text(cell(row.get(c, ""))) for c in columns), key=str(i))
        errors = self.query_one("#data-errors", DataTable)
        errors.clear()
        for i, e in enumerate(report.errors):
            errors.add_row(e.where.short(), Text(e.field), e.kind, Text(cell(e.reason)), key=str(i))  # not markup
        self._show_stats()

    @background("data-tokens", exclusive=True)
    def _token_lengths(self, rows: list[dict], source: dict, template_name: str) -> None:
        with ml_turn(self, "the token lengths"):
            from tunedeck.engine.model.loading import load_chat_tokenizer
            from tunedeck.engine.templates import token_lengths

            try:
                tokenizer, template = load_chat_tokenizer(template=template_name, **source)
                lengths = token_lengths(tokenizer, rows, template)
            except (OSError, ValueError) as e:  # no tokenizer, or the template refuses: the rest of the report stays
                self.post_message(TokenLengthsRead([], str(e)))
                return
        self.post_message(TokenLengthsRead(lengths))

    def on_token_lengths_read(self, message: TokenLengthsRead) -> None:
        if message.error:
            self.notify(f"token lengths unavailable: {message.error}", severity="warning", markup=False)
            return
        self.lengths = message.lengths
        self._show_stats()

    def _show_stats(self) -> None:
        r = self.report
        if r is None:
            return
        lines = [f"format {r.format}  rows {r.rows}  valid {r.valid}  invalid {r.invalid}  duplicates {r.duplicates}"]
        if r.error_kinds:
            lines.append("errors: " + ", ".join(f"{k} {n}" for k, n in sorted(r.error_kinds.items())))
        lines += [f"warning: {w}" for w in r.warnings]
        if self.lengths:
            from tunedeck.engine.data.stats import length_stats

            s = length_stats(self.lengths, None)
            lines.append(f"tokens per row ({len(self.lengths)} rows): min {s['min']} p50 {s['p50']} "
                         f"p95 {s['p95']} max {s['max']} mean {s['mean']}")  # fmt: skip
            limit = self.store.get("train.max_length")
            self.query_one(Histogram).show(self.lengths, "\n".join(lines), limit if isinstance(limit, int) else None)
        else:
            self.query_one(Histogram).update("\n".join([*lines, "token lengths: loading the tokenizer..."]))

    def action_show(self, pane: str) -> None:
        """Switch between rows, errors and stats."""
        self.query_one(ContentSwitcher).current = pane
        widget = self.query_one(f"#{pane}")
        if widget.focusable:
            widget.focus()

    def action_open_row(self) -> None:
        """The highlighted row (or error) as written, normalized, with its errors."""
        if self.report is None:
            return
        pane = self.query_one(ContentSwitcher).current
        table = self.query_one(f"#{pane}", DataTable) if pane in ("data-rows", "data-errors") else None
        if table is None or not table.row_count:
            return
        i = table.cursor_row
        if pane == "data-rows":
            where, row = self.report.sample[i]
            errors: list[str] = []
        else:
            err = self.report.errors[i]
            where, row = err.where, None
            errors = [str(e) for e in self.report.errors if e.where == where]
        self.app.push_screen(RowViewScreen(str(where), raw_line(where.file, where.line), row, errors))

    @on(DataTable.RowSelected)
    def _selected(self) -> None:
        self.action_open_row()
