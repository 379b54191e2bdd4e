"""Command palette entries for the same actions as the key bindings."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

# (name, help, action as run from the screen the palette was opened on)
COMMANDS = (
    ("Train recipe.yaml", "Start training the workspace recipe in the background (t)", "train"),
    ("Refresh runs", "Re-read the runs folder now (r)", "refresh_runs"),
    ("Show keys", "Toggle the panel listing the keys (?)", "app.help"),
    ("Quit", "Leave tunedeck; running trainings carry on (q)", "app.quit"),
)


class TunedeckCommands(Provider):
    """tunedeck's actions in the command palette."""

    async def discover(self) -> Hits:
        for name, help_text, action in COMMANDS:
            yield DiscoveryHit(name, partial(self.screen.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, action in COMMANDS:
            if (score := matcher.match(name)) > 0:
                yield Hit(score, matcher.highlight(name), partial(self.screen.run_action, action), help=help_text)
