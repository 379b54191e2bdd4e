"""Method: every method the recipe knows, with a one-line explanation and the data it needs, and its settings."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tunedeck.engine.data.formats import FORMAT_HELP
from tunedeck.engine.methods import METHODS
from tunedeck.tui.screens.base import StudioScreen
from tunedeck.tui.widgets.field_form import FieldForm, FormField

COMMON = ["train.learning_rate", "train.max_steps", "train.num_train_epochs"]
NAME_WIDTH, EXPLAIN_WIDTH, DATA_WIDTH = 9, 44, 24  # fits 80 columns


def method_fields(method: str) -> list[FormField]:
    """The settings shown for ``method``: its own (tunedeck.engine.methods), then the common training ones."""
    paths = [f"method.{name}" for name in METHODS[method].settings] + COMMON
    return [FormField(p, p.split(".")[1]) for p in paths]


def requirement(method: str) -> str:
    """The data formats ``method`` trains on, with the columns of the first."""
    formats = METHODS[method].formats
    return f"{', '.join(formats)} (e.g. {FORMAT_HELP.get(formats[0], formats[0])})" if formats else "any format"


def method_line(method: str) -> Text:
    """One list entry: name, what it does, the data formats it needs (cut with an ellipsis when narrow)."""
    data = "/".join(METHODS[method].formats) or "any format"
    data = data if len(data) <= DATA_WIDTH else data[: DATA_WIDTH - 1] + "…"  # the list does not wrap: cut here
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(method.ljust(NAME_WIDTH), style="bold")
    line.append(METHODS[method].summary.ljust(EXPLAIN_WIDTH))
    line.append(data, style="dim")
    return line


class MethodScreen(StudioScreen):
    """Enter on a method sets method.name; the settings below follow the chosen method."""

    AUTO_FOCUS = "#methods"
    BINDINGS = [
        Binding("m", "focus_methods", "Methods", id="method-list", tooltip="Move to the method list"),
        Binding("f", "focus_form", "Settings", id="method-form", tooltip="Move to the method's settings"),
    ]

    def compose_body(self) -> ComposeResult:
        current = str(self.store.get("method.name", "sft"))
        with Vertical(id="method-body"):
            yield OptionList(*(Option(method_line(m), id=m) for m in METHODS), id="methods")
            with Vertical(id="method-side"):
                yield Static(id="method-needs", markup=False)
                yield FieldForm(method_fields(current), id="method-form")

    def on_mount(self) -> None:
        methods = self.query_one("#methods", OptionList)
        methods.border_title = "method"
        current = str(self.store.get("method.name", "sft"))
        methods.highlighted = list(METHODS).index(current) if current in METHODS else 0
        self._describe(current)

    def on_screen_resume(self) -> None:
        self.query_one(FieldForm).reload()

    def _describe(self, method: str) -> None:
        chosen = str(self.store.get("method.name", "sft"))
        mark = "(chosen)" if method == chosen else f"(enter chooses it; now {chosen})"
        self.query_one("#method-needs", Static).update(f"{method}: {METHODS[method].title} {mark}\ndata: {requirement(method)}")

    @on(OptionList.OptionHighlighted, "#methods")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._describe(str(event.option.id))

    @on(OptionList.OptionSelected, "#methods")
    async def _selected(self, event: OptionList.OptionSelected) -> None:
        method = str(event.option.id)
        section = self.store.data.get("method") or {}
        stale = [k for k in section if k != "name" and k not in METHODS[method].settings]
        problem = self.store.set("method", {"name": method, **{k: v for k, v in section.items() if k not in stale and k != "name"}})
        dropped = [k for k in stale if section[k] != self.store.default(f"method.{k}", section[k])]
        if dropped:
            self.notify(f"{method} does not use {', '.join(dropped)}: removed from the recipe", markup=False)
        if problem:
            self.notify(f"{problem} (fix it below; ctrl+s saves once valid)", severity="warning", markup=False)
        await self.query_one(FieldForm).remove()
        await self.query_one("#method-side", Vertical).mount(FieldForm(method_fields(method), id="method-form"))
        self._describe(method)

    def action_focus_methods(self) -> None:
        """Focus the method list."""
        self.query_one("#methods", OptionList).focus()

    def action_focus_form(self) -> None:
        """Focus the first setting."""
        self.query_one(FieldForm).focus_next()
