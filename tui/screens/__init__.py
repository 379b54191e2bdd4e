"""One screen per module."""

from tui.screens.keys import KeysScreen
from tui.screens.runs import RunsScreen

__all__ = ["KeysScreen", "RunsScreen"]
