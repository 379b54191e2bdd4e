"""The recipe is marked unsaved only when a field's value differs from the file, and headers say each word once."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Static

from tests.helpers import drive
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.recipe_store import RecipeStore
from tunedeck.tui.screens import SCREEN_ORDER
from tunedeck.tui.screens.train import header_state


def _workspace(tmp_path: Path) -> Path:
    (tmp_path / "d.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}\n')
    (tmp_path / "recipe.yaml").write_text(
        f"model: {{name_or_path: {tmp_path}/no-model}}\ndata: {{train: d.jsonl}}\nadapter: {{kind: lora, r: 8}}\n"
    )
    return tmp_path


def test_visiting_every_screen_without_typing_leaves_the_recipe_saved(tmp_path: Path) -> None:
    app = TunedeckApp(workspace=_workspace(tmp_path))

    async def steps(pilot: Pilot) -> None:
        for n in range(1, len(SCREEN_ORDER) + 1):
            await pilot.press(str(n))
            await pilot.pause()
            await pilot.pause(0.2)
        await pilot.press("1")
        await pilot.pause(0.2)
        text = str(app.screen.query_one("#recipe", Static).content)
        assert text == f"recipe: {tmp_path / 'recipe.yaml'}", text

    drive(app, steps, size=(100, 30))


def test_an_edit_marks_unsaved_and_undoing_it_clears_the_mark(tmp_path: Path) -> None:
    store = RecipeStore(_workspace(tmp_path) / "recipe.yaml")
    assert not store.dirty
    store.set("adapter.r", 8)  # the value the file has
    store.set("adapter.lora_alpha", store.get("adapter.lora_alpha"))  # the default, now written out
    assert not store.dirty
    store.set("adapter.r", 16)
    assert store.dirty
    store.set("adapter.r", 8)
    assert not store.dirty
    store.set("adapter.r", 32)
    store.save()
    assert not store.dirty and "r: 32" in (tmp_path / "recipe.yaml").read_text()


def test_the_train_header_says_each_state_word_once() -> None:
    assert header_state("stopped", "stopped") == "stopped"
    assert header_state("failed", "failed: boom  hint: x") == "failed: boom  hint: x"
    assert header_state("crashed", "killed") == "crashed  killed"
    assert header_state("running", "") == "running"
    assert header_state("", "") == "reading..."
