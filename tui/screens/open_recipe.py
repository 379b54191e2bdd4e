"""A modal asking for a recipe file path (ctrl+o)."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class OpenRecipeScreen(ModalScreen[Path | None]):
    """Type a path, enter opens it, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel-open", tooltip="Keep the current recipe")]

    def __init__(self, current: Path) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("recipe file to open (enter opens, escape cancels)")
            yield Input(str(self.current), id="recipe-path")
            yield Static(id="open-error", markup=False)

    @on(Input.Submitted, "#recipe-path")
    def _submitted(self, event: Input.Submitted) -> None:
        path = Path(event.value).expanduser()
        if not path.is_file():
            self.query_one("#open-error", Static).update(f"{path}: no such file")
            return
        self.dismiss(path.resolve())

    def action_cancel(self) -> None:
        """Close without opening anything."""
        self.dismiss(None)
