"""A compact form over recipe fields: each edit validates through tunedeck.engine.recipe and names the bad field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select, Static

from tunedeck.engine.recipe import allowed


@dataclass(frozen=True)
class FormField:
    """One recipe field: dotted path, label, and the choices when it is a pick-one: by default the values its type
    allows (tunedeck.engine.recipe.allowed: a Literal's, true/false for a bool), never retyped here."""

    path: str
    label: str
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.choices:
            object.__setattr__(self, "choices", allowed(self.path))


def parse_value(text: str) -> Any:
    """Input text as YAML would read it (numbers, true/false, lists), '' as None."""
    if not text.strip():
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def show_value(value: Any) -> str:
    """A recipe value as the user would type it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


class FieldForm(VerticalScroll):
    """Rows of label + compact input; posts ``Changed`` after every accepted edit."""

    @dataclass
    class Changed(Message):
        """A field was set (``problem`` is '' when the recipe is valid)."""

        path: str
        problem: str

    def __init__(self, fields: list[FormField], **kwargs) -> None:
        super().__init__(**kwargs)
        self.fields = fields

    def _field_id(self, path: str) -> str:
        return "f-" + path.replace(".", "-")

    def compose(self) -> ComposeResult:
        store = self.app.store  # type: ignore[attr-defined]
        for f in self.fields:
            with Horizontal(classes="form-row"):
                yield Label(f.label, classes="form-label")
                value = show_value(store.get(f.path))
                if f.choices:
                    choices = f.choices if not value or value in f.choices else (*f.choices, value)  # e.g. pissa_niter_16
                    yield Select([(c, c) for c in choices], value=value if value in choices else Select.NULL,
                                 id=self._field_id(f.path), compact=True, allow_blank=value not in choices)  # fmt: skip
                else:
                    yield Input(value, id=self._field_id(f.path), compact=True)
        yield Static(id="form-error", markup=False)

    def reload(self) -> None:
        """Show the store's current values (another recipe was opened)."""
        store = self.app.store  # type: ignore[attr-defined]
        for f in self.fields:
            widget = self.query_one(f"#{self._field_id(f.path)}")
            value = show_value(store.get(f.path))
            with widget.prevent(Input.Changed, Select.Changed):
                if isinstance(widget, Select):
                    widget.value = value if value in f.choices else Select.NULL
                elif isinstance(widget, Input):
                    widget.value = value

    def _set(self, widget_id: str | None, value: Any) -> None:
        path = next((f.path for f in self.fields if self._field_id(f.path) == widget_id), None)
        if path is None:
            return
        store = self.app.store  # type: ignore[attr-defined]
        problem = store.set(path, value)
        self.query_one("#form-error", Static).update(problem)
        self.set_class(bool(problem), "-invalid")
        self.post_message(self.Changed(path, problem))

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._set(event.input.id, parse_value(event.value))

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is not Select.NULL:
            self._set(event.select.id, parse_value(str(event.value)))
