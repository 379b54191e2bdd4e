"""Command palette entries: every screen switch and every screen's actions, from the bindings themselves."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider


class TunedeckCommands(Provider):
    """tunedeck's actions in the command palette (built from the Binding lists, so nothing is missed)."""

    def _key(self, binding: Binding) -> str:
        key_of = getattr(self.app, "binding_key", self.app.get_key_display)
        return key_of(binding)

    def commands(self) -> Iterator[tuple[str, str, str]]:
        """(name, help, action): the current screen's actions first, then every other screen's, then the app's.

        The help names the key after the user's keymap. ``mode:action`` runs on that screen (switching to
        it first); ``app.``-prefixed actions run on the app.
        """
        from tunedeck.tui.screens import SCREEN_ORDER

        app, screen = self.app, self.screen
        here = next(((mode, label) for mode, label, cls in SCREEN_ORDER if type(screen) is cls), None)
        seen: set[str] = set()

        def entry(label: str, mode: str, b: Binding) -> Iterator[tuple[str, str, str]]:
            action = b.action if b.action.startswith("app.") else f"{mode}:{b.action}"
            if action not in seen and b.description:
                seen.add(action)
                yield f"{label}: {b.description}", f"{b.tooltip} ({self._key(b)})", action

        if here is not None:  # the current screen's actions come first
            for b in type(screen).BINDINGS:
                if isinstance(b, Binding):
                    yield from entry(here[1], here[0], b)
        for mode, label, cls in SCREEN_ORDER:
            for b in cls.BINDINGS:
                if isinstance(b, Binding):
                    yield from entry(label, mode, b)
        for b in app.BINDINGS:
            if isinstance(b, Binding):
                name = b.description if b.group is None else f"Go to {b.description}"
                action = b.action if b.action.startswith("app.") else f"app.{b.action}"
                yield name, f"{b.tooltip} ({self._key(b)})", action
        yield "Doctor", "What this machine can do: torch build, GPUs, bitsandbytes, llama.cpp, disk, Hub (palette only)", "app.doctor"

    async def _run(self, action: str) -> None:
        """Run an action; ``mode:action`` switches to that screen first."""
        if ":" in action:
            mode, action = action.split(":", 1)
            await self.app.switch_mode(mode)
            await self.app.screen.run_action(action)
        else:
            await self.app.run_action(action)

    async def discover(self) -> Hits:
        for name, help_text, action in self.commands():
            yield DiscoveryHit(name, partial(self._run, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, action in self.commands():
            if (score := matcher.match(name)) > 0:
                yield Hit(score, matcher.highlight(name), partial(self._run, action), help=help_text)
