"""Pilot tests of the TUI at 80x24: the runs table, keys, training launch and themes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tests.helpers import RUN_ID, drive, make_run, record_notifications, settle
from tunedeck.themes import ThemeError, load_themes, parse_theme
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.screens.keys import KeysScreen
from tunedeck.tui.screens.runs import RunsScreen

THEME_NAMES = {"tunedeck-dark", "tunedeck-light", "tunedeck-high-contrast"}


def table_rows(app: TunedeckApp) -> list[list[str]]:
    table = app.screen.query_one("#runs", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def static_text(app: TunedeckApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


def test_runs_table_shows_run_state_progress_loss_and_events(tmp_path: Path) -> None:
    make_run(tmp_path)
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot: Pilot) -> None:
        assert isinstance(app.screen, RunsScreen)
        await settle(pilot)  # the runs are read in a worker
        assert table_rows(app) == [[RUN_ID, "finished", "5/10", "1.5000"]]
        assert "step 5/10  loss 0.6000  lr 1.00e-03" in static_text(app, "#detail")
        assert static_text(app, "#recipe").startswith(f"no recipe.yaml in {tmp_path}")

    drive(app, steps)


def test_refresh_picks_up_new_runs_newest_first_and_the_recipe(tmp_path: Path) -> None:
    make_run(tmp_path)
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot: Pilot) -> None:
        make_run(tmp_path, "20260102-000000-sft-beef", state="failed", step=2, loss=2.25)
        (tmp_path / "recipe.yaml").write_text("model: {}\n")
        await pilot.press("r")
        await settle(pilot)
        ids_states = [row[:2] for row in table_rows(app)]
        assert ids_states == [["20260102-000000-sft-beef", "failed"], [RUN_ID, "finished"]]
        assert static_text(app, "#recipe") == f"recipe: {tmp_path / 'recipe.yaml'}"

    drive(app, steps)


def test_the_runs_are_read_off_the_ui_thread_and_shown_by_one_message(tmp_path: Path, monkeypatch) -> None:
    """The folder, every run's status and the selected run's events are read by a worker; RunsRead fills the table
    and the events pane, so a run written to disk shows up after a refresh without the UI thread touching a file."""
    import threading

    import tunedeck.tui.screens.runs as runs_module
    from tunedeck.tui.messages import RunsRead

    make_run(tmp_path)
    app = TunedeckApp(workspace=tmp_path)
    readers: list[threading.Thread] = []
    answers: list[RunsRead] = []
    real_list, real_handler = runs_module.list_runs, RunsScreen.on_runs_read

    def list_runs(path):
        readers.append(threading.current_thread())
        return real_list(path)

    def on_runs_read(self, message: RunsRead) -> None:
        answers.append(message)
        real_handler(self, message)

    monkeypatch.setattr(runs_module, "list_runs", list_runs)
    monkeypatch.setattr(RunsScreen, "on_runs_read", on_runs_read)

    async def steps(pilot: Pilot) -> None:
        await settle(pilot)
        assert table_rows(app) == [[RUN_ID, "finished", "5/10", "1.5000"]]
        newer = "20260103-000000-sft-cafe"
        make_run(tmp_path, newer, state="failed", step=3, loss=2.0)
        shown = len(answers)
        app.screen.refresh_runs()
        await settle(pilot)
        assert [row[:2] for row in table_rows(app)] == [[newer, "failed"], [RUN_ID, "finished"]]
        assert len(answers) > shown and answers[-1].rows[0][0] == newer
        assert "step 5/10" in static_text(app, "#detail")  # the cursor stayed on the run it was on
        assert readers and threading.main_thread() not in readers

    drive(app, steps)


def test_empty_workspace_says_how_to_start(tmp_path: Path) -> None:
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot: Pilot) -> None:
        await settle(pilot)
        assert table_rows(app) == []
        assert "press t to train" in static_text(app, "#detail")

    drive(app, steps)


def test_question_mark_lists_the_keys_and_escape_closes(tmp_path: Path) -> None:
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, KeysScreen)
        keys = {key: (desc, tip, id_) for key, desc, tip, id_ in app.screen.rows}
        assert {"t", "r", "q", "?"} <= set(keys)
        assert keys["t"] == ("Train", "Start training recipe.yaml in the background", "train")
        assert "Start training recipe.yaml" in str(app.screen.query_one("#keys-table", Static).content)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)

    drive(app, steps)


def test_train_without_recipe_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = TunedeckApp(workspace=tmp_path)
    seen = record_notifications(app, monkeypatch)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("t")
        await pilot.pause()
        assert seen and seen[-1][0] == "error"
        assert f"no recipe.yaml in {tmp_path}" in seen[-1][1]

    drive(app, steps)


@pytest.mark.parametrize("case", ["bad field", "missing model"])
def test_train_refuses_before_any_worker_starts(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad recipe names its field; a missing model is refused by the same preflight as `tunedeck train`
    (tunedeck.engine.run.preflight, inside start_run). Either way: no run folder, no process."""
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    if case == "bad field":
        recipe, wanted = "model: {name_or_path: m}\ndata: {train: d}\nadapter: {r: lots}\n", "adapter.r"
    else:
        recipe = f"model: {{name_or_path: {tmp_path}/no-model}}\ndata: {{train: {data}}}\n"
        wanted = f"model.name_or_path: {tmp_path}/no-model: no such folder"
    (tmp_path / "recipe.yaml").write_text(recipe)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    app = TunedeckApp(workspace=tmp_path)
    seen = record_notifications(app, monkeypatch)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert seen[-1][0] == "error" and wanted in seen[-1][1]
        assert not (tmp_path / "runs").exists()

    drive(app, steps)


def test_packaged_themes_load_and_dark_is_default(tmp_path: Path) -> None:
    loaded = load_themes()
    assert {t.name for t in loaded.themes} == THEME_NAMES and loaded.warnings == []
    assert {t.name: t.dark for t in loaded.themes} == {
        "tunedeck-dark": True,
        "tunedeck-light": False,
        "tunedeck-high-contrast": True,
    }
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot: Pilot) -> None:
        assert app.theme == "tunedeck-dark"
        assert THEME_NAMES <= set(app.available_themes)
        assert app.theme_warnings == []

    drive(app, steps)


def test_tunedeck_theme_env_selects_and_unknown_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEDECK_THEME", "tunedeck-light")
    app = TunedeckApp(workspace=tmp_path)

    async def light(pilot: Pilot) -> None:
        assert app.theme == "tunedeck-light" and not app.current_theme.dark

    drive(app, light)
    monkeypatch.setenv("TUNEDECK_THEME", "no-such-theme")
    app = TunedeckApp(workspace=tmp_path)

    async def fallback(pilot: Pilot) -> None:
        assert app.theme == "tunedeck-dark"
        assert any("no-such-theme" in w for w in app.theme_warnings)

    drive(app, fallback)


def test_invalid_user_theme_is_skipped_and_reported(tmp_path: Path) -> None:
    user_dir = tmp_path / "config" / "tunedeck" / "themes"  # XDG_CONFIG_HOME is tmp_path/config
    user_dir.mkdir(parents=True)
    (user_dir / "bad.json").write_text('{"name": "bad", "primary": ')
    (user_dir / "wrong-colour.json").write_text('{"name": "wrong", "primary": "blurple"}')
    (user_dir / "mine.json").write_text('{"name": "mine", "primary": "#884488", "dark": true}')
    loaded = load_themes()
    assert {t.name for t in loaded.themes} == THEME_NAMES | {"mine"}
    assert len(loaded.warnings) == 2
    assert "bad.json" in loaded.warnings[0] and "invalid JSON" in loaded.warnings[0]
    assert "wrong-colour.json" in loaded.warnings[1] and "'primary'" in loaded.warnings[1]
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot: Pilot) -> None:
        assert app.theme == "tunedeck-dark" and "mine" in app.available_themes
        assert app.theme_warnings == loaded.warnings
        app.theme = "mine"  # the valid user theme really works
        await pilot.pause()
        assert app.current_theme.primary == "#884488"

    drive(app, steps)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[]", "JSON object"),
        ('{"name": "x"}', "'primary' is required"),
        ('{"name": "x", "primary": "#fff", "colour": "#000"}', "unknown key(s) colour"),
        ('{"name": "x", "primary": "#fff", "dark": "yes"}', "'dark' must be"),
    ],
)
def test_parse_theme_names_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ThemeError, match=re.escape(problem)):
        parse_theme(text)


def test_no_color_is_honoured_by_textual(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot: Pilot) -> None:
        assert app.no_color
        assert any(type(f).__name__ in ("Monochrome", "NoColor") for f in app.get_line_filters())
        assert app.theme == "tunedeck-dark"  # we do not fight it: the theme stays, Textual drains the colour

    drive(app, steps)


def test_the_train_screen_is_built_while_idle_and_shown_at_once(tmp_path: Path) -> None:
    """Train is composed right after the first frame without becoming current (the first switch to it was the slowest key
    press while a run trains); the switch then shows the run. Checks the Textual internals that
    tui/textual_compat.py ``compose_mode_ahead`` uses: a textual that changes them fails here."""
    from tunedeck.tui.screens.train import TrainScreen

    make_run(tmp_path)
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot: Pilot) -> None:
        home, focused = app.screen, app.focused
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        (train,) = app.get_screen_stack("train")
        assert isinstance(train, TrainScreen) and train.is_mounted
        assert train.run is None  # composed only: it reads no run before its first visit
        assert app.screen is home and app.focused is focused  # nothing changed for the user
        await pilot.press("6")
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen is train and RUN_ID in str(train.query_one("#train-run", Static).content)
        assert train.progress.step == 5 and train.progress.max_steps == 10  # its history was read on the visit

    drive(app, steps)
