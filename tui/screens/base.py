"""What every studio screen shares: header, footer, the recipe store and the attached run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Header

from tunedeck.engine.run.rundir import RunDir, list_runs
from tunedeck.tui.messages import RunActionFinished, TrainLaunched, TrainLaunchFailed
from tunedeck.tui.widgets.key_footer import KeyBar
from tunedeck.tui.workers import background

if TYPE_CHECKING:
    from tunedeck.tui.recipe_store import RecipeStore


class StudioScreen(Screen[None]):
    """A screen of the studio; subclasses yield their body from ``compose_body``."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield from self.compose_body()
        yield KeyBar()

    def compose_body(self) -> ComposeResult:
        yield from ()

    @property
    def workspace(self) -> Path:
        return self.app.workspace  # type: ignore[attr-defined]

    @property
    def store(self) -> RecipeStore:
        return self.app.store  # type: ignore[attr-defined]

    @property
    def runs_dir(self) -> Path:
        """Where the recipe's runs go (train.runs_dir against the recipe's folder)."""
        runs = Path(str(self.store.get("train.runs_dir", "runs"))).expanduser()
        return runs if runs.is_absolute() else self.store.base / runs

    def current_run(self) -> RunDir | None:
        """The run the user attached to, else the newest run."""
        wanted = getattr(self.app, "attached_run", None)
        runs = list_runs(self.runs_dir)
        for run in runs:
            if run.id == wanted:
                return run
        return runs[-1] if runs else None

    @background("launch", exclusive=True)
    def start_training(self) -> None:
        """Start the shared recipe as a new run in a detached worker (Runs and Train both use this)."""
        # tunedeck.engine.recipe and tunedeck.engine.run.launch are light (no torch): the worker process loads the ML stack.
        from tunedeck.engine.recipe import RecipeError, resolve_paths
        from tunedeck.engine.run.launch import start_run
        from tunedeck.engine.run.preflight import PreflightError

        try:  # tunedeck.engine.run.preflight refuses a recipe the worker would fail on, before any run folder exists
            run = start_run(resolve_paths(self.store.recipe(), self.store.base))
        except (RecipeError, PreflightError, OSError) as e:
            self.post_message(TrainLaunchFailed(str(e)))
            return
        self.post_message(TrainLaunched(self.store.path, run.id))

    def stop_run(self, run: RunDir) -> None:
        """Stop ``run`` (Runs and Train both use this): SIGTERM, the worker checkpoints at the next step boundary
        and exits; the wait runs in a thread and ends in a RunActionFinished."""
        self.notify(f"stopping {run.id} (at the next step boundary)", markup=False)
        self._wait_for_stop(run)

    @background("run-verbs")
    def _wait_for_stop(self, run: RunDir) -> None:
        from tunedeck.engine.run.launch import RunStateError, stop_run

        try:
            seconds = stop_run(run)
        except (RunStateError, OSError, TimeoutError) as e:
            self.post_message(RunActionFinished(str(e), ok=False))
            return
        self.post_message(RunActionFinished(f"run {run.id} stopped after {seconds:.1f}s"))

    def on_run_action_finished(self, message: RunActionFinished) -> None:
        """Say how a stop/resume/delete ended (a screen that lists runs also re-reads them)."""
        if message.text != "recipe opened":
            self.notify(message.text, severity="information" if message.ok else "error", markup=False)
