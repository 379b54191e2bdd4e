"""TunedeckApp: the Textual app over one workspace (a folder with recipe.yaml and runs/)."""

from __future__ import annotations

import os
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from themes import DEFAULT_THEME, load_themes
from tui.commands import TunedeckCommands
from tui.messages import TrainLaunched, TrainLaunchFailed
from tui.screens.keys import KeyRow, KeysScreen
from tui.screens.runs import RunsScreen

THEME_ENV = "TUNEDECK_THEME"


class TunedeckApp(App[None]):
    """A keyboard-driven studio for fine-tuning runs; the run folders hold all state."""

    TITLE = "tunedeck"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {TunedeckCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit", tooltip="Leave tunedeck; running trainings carry on"),
        Binding("question_mark", "help", "Keys", key_display="?", id="help", tooltip="Show or hide this key list"),
    ]

    def __init__(self, workspace: Path | None = None) -> None:
        super().__init__()
        self.workspace = (workspace if workspace is not None else Path.cwd()).expanduser().resolve()
        self.theme_warnings: list[str] = []

    def get_default_screen(self) -> Screen:
        return RunsScreen(self.workspace)

    def on_mount(self) -> None:
        self.sub_title = str(self.workspace)
        loaded = load_themes()
        for theme in loaded.themes:
            self.register_theme(theme)
        self.theme_warnings = list(loaded.warnings)
        wanted = os.environ.get(THEME_ENV) or DEFAULT_THEME
        if wanted not in self.available_themes:
            self.theme_warnings.append(f"{THEME_ENV}={wanted!r} is not a theme; using {DEFAULT_THEME}")
            wanted = DEFAULT_THEME
        self.theme = wanted
        for warning in self.theme_warnings:
            self.notify(warning, title="theme", severity="warning", markup=False)

    def key_rows(self) -> list[KeyRow]:
        """The keys shown in the footer of the current screen, with their tooltips."""
        rows: dict[str, KeyRow] = {}
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if binding.show and not binding.system and binding.action not in rows:
                rows[binding.action] = (self.get_key_display(binding), binding.description, active.tooltip)
        return [*rows.values(), ("^p", "Palette", "Search every command")]

    def action_help(self) -> None:
        """Open the key list (it closes itself on escape or ?)."""
        self.push_screen(KeysScreen(self.key_rows()))

    def on_train_launched(self, message: TrainLaunched) -> None:
        self.notify(
            f"training {message.recipe.name} as run {message.run_id}",
            title="train",
            markup=False,
        )

    def on_train_launch_failed(self, message: TrainLaunchFailed) -> None:
        self.notify(message.reason, title="train", severity="error", timeout=15, markup=False)
