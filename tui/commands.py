"""Command palette entries: every screen switch and every screen's actions, from the bindings themselves."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class TunedeckCommands(Provider):
    """tunedeck's actions in the command palette (built from the Binding lists, so nothing is missed)."""

    def commands(self) -> Iterator[tuple[str, str, str]]:
        """(name, help, action) for the app's bindings and those of the screen the palette was opened on."""
        from tui.screens import SCREEN_ORDER

        app = self.app
        seen: set[str] = set()
        for mode, label, cls in SCREEN_ORDER:
            for b in cls.BINDINGS:
                action = b.action if b.action.startswith("app.") else f"{mode}:{b.action}"
                if action not in seen:
                    seen.add(action)
                    yield f"{label}: {b.description}", f"{b.tooltip} ({app.get_key_display(b)})", action
        for b in app.BINDINGS:
            if isinstance(b, tuple):
                continue
            yield b.description if b.group is None else f"Go to {b.description}", f"{b.tooltip} ({b.key.split(',')[0]})", (
                b.action if b.action.startswith("app.") else f"app.{b.action}"
            )

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
