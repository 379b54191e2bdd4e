"""A modal list of the keys of the screen it was opened from (`?`)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

KeyRow = tuple[str, str, str]  # key as displayed, description, tooltip


class KeysScreen(ModalScreen[None]):
    """Shows key, action and what it does; escape or ? closes it."""

    BINDINGS = [
        Binding("escape,question_mark", "dismiss", "Close", id="close-keys", tooltip="Close this list"),
    ]

    def __init__(self, rows: list[KeyRow]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(id="keys"):
            yield Static(self.render_rows(), id="keys-table")
            yield Static("escape or ? closes", id="keys-hint")

    def render_rows(self) -> Text:
        """Aligned columns: key (bold), description, tooltip."""
        key_width = max((len(key) for key, _, _ in self.rows), default=0)
        desc_width = max((len(desc) for _, desc, _ in self.rows), default=0)
        text = Text()
        for key, desc, tooltip in self.rows:
            text.append(key.rjust(key_width), style="bold")
            text.append(f"  {desc.ljust(desc_width)}  {tooltip}".rstrip() + "\n")
        text.rstrip()
        return text

    def on_mount(self) -> None:
        self.query_one("#keys", Vertical).border_title = "keys"
