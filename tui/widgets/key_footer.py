"""Two footer rows: the screen's own keys above, the app-wide keys (screens, save, help, palette) below.

One row cannot hold every key at 80 columns; Textual's Footer then scrolls the rest out of sight.
``KeyFooter`` is Textual's Footer showing one scope of the active bindings, so each row fits.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import groupby
from typing import Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer

from tunedeck.tui.textual_compat import FooterKey, FooterLabel, KeyGroup

Scope = Literal["screen", "app"]


def scoped_bindings(screen, scope: Scope) -> list[tuple[Binding, bool, str]]:
    """The footer-shown (binding, enabled, tooltip) of ``screen``: its own and its widgets', or the app's."""
    want_app = scope == "app"
    return [
        (binding, enabled, tooltip)
        for node, binding, enabled, tooltip in screen.active_bindings.values()
        if binding.show and (node is screen.app) == want_app
    ]


class KeyFooter(Footer):
    """A Footer row restricted to one scope; only the app row shows the palette key."""

    DEFAULT_CSS = """
    KeyFooter {
        dock: none;
        &.-compact FooterLabel {
            margin: 0 1 0 0;
        }
    }
    """

    def __init__(self, scope: Scope, **kwargs) -> None:
        super().__init__(compact=True, show_command_palette=scope == "app", **kwargs)
        self.scope: Scope = scope
        self.bindings_ready = False  # Footer's own flag, which is private: no keys until the screen's are known

    def bindings_changed(self, screen: Screen) -> None:
        self.bindings_ready = True
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        if not self.bindings_ready:
            return
        by_action: defaultdict[str, list[tuple[Binding, bool, str]]] = defaultdict(list)
        for binding, enabled, tooltip in scoped_bindings(self.screen, self.scope):
            by_action[binding.action].append((binding, enabled, tooltip))
        for group, runs in groupby(by_action.values(), lambda bs: bs[0][0].group):
            entries = [bs[0] for bs in runs]
            if group is not None and len(entries) > 1:
                with KeyGroup(classes="-compact" if group.compact else ""):
                    for binding, enabled, tooltip in entries:
                        yield self._key(binding, enabled, tooltip or binding.description, "", "-grouped")
                yield FooterLabel(group.description)
            else:
                for binding, enabled, tooltip in entries:
                    yield self._key(binding, enabled, tooltip, binding.description)
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            palette = self.screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
            if palette is not None:
                _, binding, enabled, _ = palette
                yield self._key(binding, enabled, binding.tooltip or binding.description, binding.description,
                                "-command-palette")  # fmt: skip

    def _key(self, binding: Binding, enabled: bool, tooltip: str, description: str, classes: str = "") -> FooterKey:
        key = FooterKey(binding.key, self.app.get_key_display(binding), description, binding.action,
                        disabled=not enabled, tooltip=tooltip, classes=classes)  # fmt: skip
        # Set, not data_bind(compact=Footer.compact) as Textual's Footer does: a data binding leaves a watcher on this
        # footer that Textual drops only when ``compact`` changes, which it never does here, so every recompose (each
        # screen switch) kept its keys alive: ~800 dead widgets after 20 switches, and gen-2 GC pauses that grew past
        # 140 ms (tests/tui/test_keys.py checks the keys are freed).
        key.set_reactive(FooterKey.compact, self.compact)
        key.set_class(self.compact, "-compact")  # what FooterKey's watcher does, which set_reactive does not call
        return key


class KeyBar(Vertical):
    """Both footer rows, docked at the bottom."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: auto;
    }
    """

    def compose(self) -> ComposeResult:
        yield KeyFooter("screen", id="screen-keys")
        yield KeyFooter("app", id="app-keys")
