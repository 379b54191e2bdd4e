"""TunedeckApp: the Textual app over one workspace (a folder with recipe.yaml and runs/)."""

from __future__ import annotations

import os
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from tunedeck.engine.recipe import RecipeError
from tunedeck.themes import DEFAULT_THEME, load_themes
from tunedeck.tui.commands import TunedeckCommands
from tunedeck.tui.keymap import keymap_path, load_keymap
from tunedeck.tui.messages import QueueWaiting, RunActionFinished, TrainLaunched, TrainLaunchFailed, WorkFailed
from tunedeck.tui.recipe_store import RecipeStore
from tunedeck.tui.screens import MODES, SCREEN_ORDER
from tunedeck.tui.screens.confirm import ConfirmScreen
from tunedeck.tui.screens.keys import KeyRow, KeysScreen
from tunedeck.tui.screens.open_recipe import OpenRecipeScreen
from tunedeck.tui.screens.row_view import RowViewScreen
from tunedeck.tui.textual_compat import compose_mode_ahead
from tunedeck.tui.widgets.key_footer import scoped_bindings

THEME_ENV = "TUNEDECK_THEME"
SCREENS_GROUP = Binding.Group("screens", compact=True)


def _screen_bindings() -> list[Binding]:
    """1..8 (and F1..F8) switch screens; grouped into one footer entry."""
    return [
        Binding(
            f"{n},f{n}", f"app.switch_mode('{mode}')", label, id=f"screen-{mode}",
            tooltip=f"Go to the {label} screen", group=SCREENS_GROUP,
        )  # fmt: skip
        for n, (mode, label, _) in enumerate(SCREEN_ORDER, start=1)
    ]


class TunedeckApp(App[None]):
    """A keyboard-driven studio for fine-tuning runs; the run folders hold all state."""

    TITLE = "tunedeck"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {TunedeckCommands}
    MODES = MODES
    DEFAULT_MODE = "runs"
    BINDINGS = [
        *_screen_bindings(),
        Binding("ctrl+s", "save_recipe", "Save", id="save", tooltip="Save the recipe as the YAML `tunedeck train` runs"),
        Binding("ctrl+o", "open_recipe", "Open", id="open", tooltip="Open another recipe file"),
        Binding("question_mark", "help", "Keys", key_display="?", id="help", tooltip="Show or hide this key list"),
        Binding("q", "quit", "Quit", id="quit", tooltip="Leave tunedeck; running trainings carry on"),
    ]

    def __init__(self, workspace: Path | None = None, recipe: Path | None = None) -> None:
        super().__init__()
        self.workspace = (workspace if workspace is not None else Path.cwd()).expanduser().resolve()
        self.store = RecipeStore(Path(recipe).expanduser().resolve() if recipe else self.workspace / "recipe.yaml")
        self.attached_run: str | None = None
        self.theme_warnings: list[str] = []
        self.keymap: dict[str, str] = {}
        self._clashes_told: set[frozenset[str]] = set()

    @classmethod
    def all_bindings(cls) -> list[Binding]:
        """Every Binding of the app and its screens (what a keymap may name)."""
        owners = [cls, KeysScreen, ConfirmScreen, OpenRecipeScreen, RowViewScreen, *(c for _, _, c in SCREEN_ORDER)]
        return [b for owner in owners for b in owner.BINDINGS if isinstance(b, Binding)]

    def binding_key(self, binding: Binding) -> str:
        """The key shown for ``binding``, after the user's keymap."""
        keys = self.keymap.get(binding.id or "")
        if keys:
            return self.get_key_display(binding.with_key(keys.split(",")[0], key_display=None))
        return self.get_key_display(binding.with_key(binding.key.split(",")[0], key_display=binding.key_display))

    def load_user_keymap(self, path: Path | None = None) -> None:
        """Apply keymap.yaml from the user config dir; bad lines are skipped and reported."""
        loaded = load_keymap((b.id for b in self.all_bindings() if b.id), path or keymap_path())
        self.keymap = loaded.keymap
        self.set_keymap(loaded.keymap)
        for warning in loaded.warnings:
            self.notify(warning, title="keymap", severity="warning", timeout=15, markup=False)

    def handle_bindings_clash(self, clashed_bindings: set[Binding], node) -> None:
        """Tell the user (once) which bindings their keymap made share a key."""
        names = frozenset(b.id or b.action for b in clashed_bindings)
        if names and names not in self._clashes_told:
            self._clashes_told.add(names)
            self.notify(f"{keymap_path()}: {', '.join(sorted(names))} lost their key to a keymap entry",
                        title="keymap", severity="warning", timeout=15, markup=False)  # fmt: skip

    def get_system_commands(self, screen):
        """Textual's palette commands less Keys and Quit: tunedeck's own (? and q) replace them."""
        for command in super().get_system_commands(screen):
            if command.title not in ("Keys", "Quit"):
                yield command

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
        self.load_user_keymap()
        self.call_after_refresh(self._build_ahead)  # once the first frame is out

    def _build_ahead(self) -> None:
        """Build the Train screen right after the app's first frame, so that the first switch to it is as quick
        as later ones: Textual composes a mode's screen on its first ``switch_mode``, and that first switch was the
        slowest key press while a run trains (bench/tui_latency.py). It is composed only: Train starts reading its
        run on its first visit (TrainScreen.on_screen_resume). Only Train: the other screens' first visit loads a
        tokenizer, a dataset or a GGUF, which must not happen unasked."""
        compose_mode_ahead(self, "train")

    def key_rows(self) -> list[KeyRow]:
        """The current screen's keys, then the app's, with tooltips and binding ids (for keymap.yaml)."""
        rows: dict[str, KeyRow] = {}
        for scope in ("screen", "app"):
            for binding, _, tooltip in scoped_bindings(self.screen, scope):
                if binding.action not in rows:
                    rows[binding.action] = (self.get_key_display(binding), binding.description, tooltip, binding.id or "")
        return [*rows.values(), ("^p", "Palette", "Search every command", "")]

    def action_help(self) -> None:
        """Open the key list (it closes itself on escape or ?)."""
        if isinstance(self.screen, KeysScreen):
            self.screen.dismiss()
            return
        self.push_screen(KeysScreen(self.key_rows()))

    def action_doctor(self) -> None:
        """What this machine can do (`tunedeck doctor`), checked in a thread."""
        from tunedeck.tui.screens.doctor import DoctorScreen

        self.push_screen(DoctorScreen(self.workspace / "runs"))

    def action_attach(self, run_id: str) -> None:
        """Follow ``run_id`` on the Train screen."""
        self.attached_run = run_id
        self.switch_mode("train")

    def action_save_recipe(self) -> None:
        """Save the shared recipe (refused, with the field named, while it is invalid)."""
        try:
            path = self.store.save()
        except (RecipeError, OSError) as e:
            self.notify(f"not saved: {e}", title="recipe", severity="error", timeout=10, markup=False)
            return
        self.notify(f"saved {path}", title="recipe", markup=False)

    def action_open_recipe(self) -> None:
        """Ask for a recipe file and make it the shared recipe."""

        def opened(path: Path | None) -> None:
            if path is None:
                return
            problem = self.store.load(path)
            severity = "warning" if problem else "information"
            self.notify(problem or f"opened {path}", title="recipe", severity=severity, markup=False)
            self.screen.post_message(RunActionFinished("recipe opened"))

        self.push_screen(OpenRecipeScreen(self.store.path), opened)

    def on_train_launched(self, message: TrainLaunched) -> None:
        self.attached_run = message.run_id
        self.notify(f"training {message.recipe.name} as run {message.run_id}", title="train", markup=False)

    def on_train_launch_failed(self, message: TrainLaunchFailed) -> None:
        self.notify(message.reason, title="train", severity="error", timeout=15, markup=False)

    def on_queue_waiting(self, message: QueueWaiting) -> None:
        self.notify(message.text, markup=False)

    def on_work_failed(self, message: WorkFailed) -> None:
        self.notify(message.reason, title=message.title, severity="error", timeout=15, markup=False)
