"""Keys at 80x24: every footer key is really on screen, the palette holds every action, user keymaps apply."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.helpers import drive, make_run, record_notifications, screen_lines, settle, write_workspace
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.commands import TunedeckCommands
from tunedeck.tui.keymap import keymap_path, load_keymap
from tunedeck.tui.screens import SCREEN_ORDER
from tunedeck.tui.screens.chat import ChatScreen
from tunedeck.tui.screens.keys import KeysScreen
from tunedeck.tui.widgets.key_footer import KeyFooter


def footer_keys(app: TunedeckApp) -> list:
    return [key for footer in app.screen.query(KeyFooter) for key in footer.query("FooterKey")]


def test_every_footer_key_is_visible_at_80x24_on_every_screen(tmp_path: Path, demo_assets) -> None:
    ws = tmp_path / "ws"
    write_workspace(ws, demo_assets.base)
    make_run(ws, steps=3)
    app = TunedeckApp(workspace=ws)

    async def steps(pilot: Pilot) -> None:
        for n, (mode, _, cls) in enumerate(SCREEN_ORDER, start=1):
            await pilot.press(str(n))
            await settle(pilot)
            assert type(app.screen) is cls
            wanted = {b.action for b in cls.BINDINGS if b.show}
            for _ in range(50):  # under load the footer may recompose a little later
                if wanted <= {k.action for k in footer_keys(app)}:
                    break
                await pilot.pause(0.1)
            keys = footer_keys(app)
            lines = screen_lines(app)
            bottom = "\n".join(lines[-2:])
            for key in keys:
                region = key.region
                assert region.width > 0 and region.right <= 80 and region.bottom <= 24, (mode, key.key_display, region)
                for x in (region.x, region.right - 1):  # nothing (e.g. the docked palette key) covers either end
                    assert app.screen.get_widget_at(x, region.y)[0] is key, (mode, key.key_display, key.description)
                label = f"{key.key_display} {key.description}".strip()
                assert label in lines[region.y], (mode, label, lines[region.y])
            shown = {(k.action, k.key_display) for k in keys}
            for b in [*cls.BINDINGS, *TunedeckApp.BINDINGS]:  # each action, with one of its keys, in the footer
                if b.show:
                    displays = {app.get_key_display(b.with_key(k)) for k in b.key.split(",")}
                    assert any((b.action, d) in shown for d in displays), (mode, b.action)
            assert "^p palette" in bottom and "q Quit" in bottom and "? Keys" in bottom

    drive(app, steps)


def test_palette_holds_every_action_of_the_screen_and_app_and_runs_them(tmp_path: Path) -> None:
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot: Pilot) -> None:
        for n, (mode, label, cls) in enumerate(SCREEN_ORDER, start=1):
            await pilot.press(str(n))
            await pilot.pause()
            commands = list(TunedeckCommands(app.screen).commands())
            names = [name for name, _, _ in commands]
            own = [f"{label}: {b.description}" for b in cls.BINDINGS]
            assert names[: len(own)] == own, mode  # the current screen's actions come first
            for b in TunedeckApp.BINDINGS:
                assert (b.description if b.group is None else f"Go to {b.description}") in names
            for name, help_text, _ in commands:
                # every entry names one key, or says it has none (Doctor: the palette is its only way in)
                assert re.search(r"\([^,() ]+\)$", help_text) or help_text.endswith("(palette only)"), (name, help_text)
            helps = dict((name, help_text) for name, help_text, _ in commands)
            assert helps[f"Go to {label}"].endswith(f"({n})") and helps["Keys"].endswith("(?)")
        # through the real palette: type, enter, and the action runs
        await pilot.press("1", "ctrl+p")
        await pilot.pause()
        await pilot.press(*"Go to Chat", "enter")
        await settle(pilot)
        assert isinstance(app.screen, ChatScreen)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Keys", "enter")
        await settle(pilot)
        assert isinstance(app.screen, KeysScreen)

    drive(app, steps)


def test_user_keymap_rebinds_keys_everywhere_and_reports_bad_lines(tmp_path: Path, monkeypatch) -> None:
    path = keymap_path()
    assert path == tmp_path / "config" / "tunedeck" / "keymap.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("train: ctrl+t\nscreen-chat: [c, f8]\nno-such-action: x\nrefresh: 5\n")
    app = TunedeckApp(workspace=tmp_path)
    seen = record_notifications(app, monkeypatch)

    async def steps(pilot: Pilot) -> None:
        await settle(pilot)  # the footer recomposes once the keymap is applied
        assert app.keymap == {"train": "ctrl+t", "screen-chat": "c,f8"}
        warnings = [m for s, m in seen if s == "warning"]
        assert any("'no-such-action' is not a binding id" in m and str(path) in m for m in warnings), warnings
        assert any("refresh: 5 is not a key" in m for m in warnings), warnings
        for _ in range(50):  # under load the footer may recompose a little later
            labels = {f"{k.key_display} {k.description}".strip() for k in footer_keys(app)}
            if "Train" in " ".join(labels):
                break
            await pilot.pause(0.1)
        assert "^t Train" in labels and "t Train" not in labels
        await pilot.press("t")  # no longer bound: nothing starts
        await settle(pilot)
        assert not any("no recipe.yaml" in m for _, m in seen)
        await pilot.press("ctrl+t")  # the new key runs the action (no recipe here: it says so)
        await settle(pilot)
        assert any("no recipe.yaml" in m for s, m in seen if s == "error"), seen
        commands = {name: help_text for name, help_text, _ in TunedeckCommands(app.screen).commands()}
        assert commands["Runs: Train"].endswith("(^t)") and commands["Go to Chat"].endswith("(c)")
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, ChatScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        rows = {id_: key for key, _, _, id_ in app.screen.rows}
        assert rows["screen-chat"] == "c" and rows["quit"] == "q"

    drive(app, steps)


def test_every_binding_has_a_unique_id_and_a_tooltip() -> None:
    """A keymap addresses a binding by its id; the key list and the footer show its tooltip."""
    bindings = TunedeckApp.all_bindings()
    assert [b for b in bindings if not (b.id and b.tooltip)] == []
    ids = [b.id for b in bindings]
    assert len(ids) == len(set(ids)), "binding ids must be unique for keymaps to address them"


def test_keymap_file_problems_are_named() -> None:
    missing = load_keymap(["quit"], Path("/nonexistent/keymap.yaml"))
    assert missing.keymap == {} and missing.warnings == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [("train: [ctrl+t\n", "not read"), ("- train\n", "expected a mapping"), ("train: {a: 1}\n", "is not a key")],
)
def test_bad_keymap_files_say_what_to_write(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "keymap.yaml"
    path.write_text(text)
    loaded = load_keymap(["train"], path)
    assert loaded.keymap == {} and len(loaded.warnings) == 1
    assert problem in loaded.warnings[0] and str(path) in loaded.warnings[0]


def test_switching_screens_frees_the_footer_keys_it_replaces(tmp_path: Path) -> None:
    """Each switch recomposes both footer rows; the keys they replace must become garbage, not stay alive through a
    data binding to the footer (Textual drops those watchers only when the bound value changes): 800 dead widgets
    after 20 switches made gen-2 GC pauses grow past 140 ms while a run trained. A few replaced keys may still be
    referenced by the last frame; their number must not grow with the switches."""
    import gc

    from tunedeck.tui.textual_compat import FooterKey

    make_run(tmp_path)
    app = TunedeckApp(workspace=tmp_path)

    async def detached_after(pilot: Pilot, round_trips: int) -> int:
        for _ in range(round_trips):
            for key in ("6", "1"):
                await pilot.press(key)
                await pilot.pause()
        await settle(pilot)
        gc.collect()
        return sum(not o.is_attached for o in gc.get_objects() if isinstance(o, FooterKey))

    async def steps(pilot: Pilot) -> None:
        first = await detached_after(pilot, 5)
        later = await detached_after(pilot, 15)
        assert later <= first + 5, f"{first} dead footer keys after 5 round trips, {later} after 15 more"

    drive(app, steps)
