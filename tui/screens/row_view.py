"""A modal with one dataset row: where it is, the raw line, the normalized row and its errors."""

from __future__ import annotations

import json
from itertools import islice
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def raw_line(file: str | None, line: int | None) -> str | None:
    """Line ``line`` (1-based) of ``file`` as written, or None when not line-oriented."""
    if not file or line is None:
        return None
    try:
        with open(file, encoding="utf-8", errors="replace") as f:
            return next(islice(f, line - 1, line), "").rstrip("\n")
    except OSError:
        return None


class RowViewScreen(ModalScreen[None]):
    """Escape closes; the text scrolls with the arrows."""

    BINDINGS = [Binding("escape,enter", "dismiss", "Close", id="close-row", tooltip="Back to the table")]

    def __init__(self, title: str, raw: str | None, normalized: Any, errors: list[str]) -> None:
        super().__init__()
        self.title_text, self.raw, self.normalized, self.errors = title, raw, normalized, errors

    def compose(self) -> ComposeResult:
        parts = [self.title_text]
        if self.errors:
            parts += ["", "errors:", *(f"  {e}" for e in self.errors)]
        if self.raw is not None:
            parts += ["", "raw:", self.raw]
        if self.normalized is not None:
            parts += ["", "normalized:", json.dumps(self.normalized, indent=2, ensure_ascii=False, default=str)]
        with VerticalScroll(id="dialog"):
            yield Static("\n".join(parts), markup=False, id="row-text")
