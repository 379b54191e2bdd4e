"""A modal list of the keys of the screen it was opened from (`?`)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

KeyRow = tuple[str, str, str, str]  # key as displayed, description, tooltip, binding id (for keymap.yaml)


class KeysScreen(ModalScreen[None]):
    """Shows key, action, binding id and what it does; escape or ? closes it."""

    BINDINGS = [
        Binding("escape,question_mark", "dismiss", "Close", id="close-keys", tooltip="Close this list"),
    ]

    def __init__(self, rows: list[KeyRow]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(id="keys"):
            yield Static(self.render_rows(), id="keys-table")
            yield Static("escape or ? closes; ids (dim) rebind keys in keymap.yaml", id="keys-hint")

    def render_rows(self) -> Text:
        """Aligned columns: key (bold), description, binding id (dim), tooltip."""
        key_width = max((len(key) for key, *_ in self.rows), default=0)
        desc_width = max((len(desc) for _, desc, *_ in self.rows), default=0)
        id_width = max((len(id_) for *_, id_ in self.rows), default=0)
        text = Text(no_wrap=True, overflow="ellipsis")
        for key, desc, tooltip, id_ in self.rows:
            text.append(key.rjust(key_width), style="bold")
            text.append(f"  {desc.ljust(desc_width)}  ")
            text.append(id_.ljust(id_width), style="dim")
            text.append(f"  {tooltip}".rstrip() + "\n")
        text.rstrip()
        return text

    def on_mount(self) -> None:
        self.query_one("#keys", Vertical).border_title = "keys"
