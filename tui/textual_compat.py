"""The one place that touches a private name of Textual (tests/test_import_contract.py refuses them elsewhere).

Each name below has no public equivalent in Textual 8.0 to 8.2; pyproject.toml pins Textual to the versions
tests/tui checked them on. Where a public API appears, use it and delete the entry here.

- ``textual.widgets._footer``: ``FooterKey``, ``FooterLabel`` and ``KeyGroup``, the pieces Textual's Footer composes.
  ``KeyFooter`` composes them per binding scope; ``textual.widgets`` exports only ``Footer``.
- ``App._screen_stacks``, ``App._modes``, ``App._get_screen``, ``App._load_screen_css``, ``App._exit``:
  ``compose_mode_ahead``. Textual composes a mode's screen on its first ``switch_mode`` only, and has no public
  call that mounts a screen without making it current.
- ``App._display``: ``on_frame``, for bench/tui_latency.py. Textual has no event for "a frame went to the terminal".
- ``Select._options``: ``select_options``, for tests. ``Select`` takes options (``set_options``) but does not give
  them back.
- ``Screen._compositor``, ``App._background_screens``: ``screen_update``, for tests that read the screen as text.
  Textual's public screenshots are SVG.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.widgets._footer import FooterKey, FooterLabel, KeyGroup

if TYPE_CHECKING:
    from textual.app import App
    from textual.screen import Screen
    from textual.widgets import Select

__all__ = ["FooterKey", "FooterLabel", "KeyGroup", "compose_mode_ahead", "on_frame", "screen_update", "select_options"]


def compose_mode_ahead(app: App, mode: str) -> None:
    """Compose ``mode``'s screen without making it current: ``App._init_mode`` less the resume that shows it.

    A no-op once the mode has a screen, or while the app is not running or is exiting."""
    if mode in app._screen_stacks or not app.is_running or app._exit:
        return
    screen, _ = app._get_screen(app._modes[mode]())
    app._load_screen_css(screen)
    app._screen_stacks[mode] = [screen]


def on_frame(app: App, hook: Callable[[Screen, Any], None]) -> None:
    """Call ``hook(screen, update)`` each time ``app`` hands an update to its driver, before the driver gets it."""
    display = app._display

    def recording(screen: Screen, renderable: Any) -> None:
        hook(screen, renderable)
        display(screen, renderable)

    app._display = recording  # type: ignore[method-assign]


def select_options(select: Select) -> list[tuple[Any, Any]]:
    """The (prompt, value) pairs ``select`` offers, the blank one first where it allows blank."""
    return list(select._options)


def screen_update(app: App) -> Any:
    """The whole current screen (and the screens it lets show through) as the next full update to the terminal."""
    return app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
