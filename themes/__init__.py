"""Colour themes: the packaged JSON files plus the user's own from the config dir.

Each file holds the keyword arguments of ``textual.theme.Theme``. A bad user file is skipped with
a warning naming the file and the problem; a bad packaged file is a bug and raises.
"""

from __future__ import annotations

import dataclasses
import json
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import platformdirs

if TYPE_CHECKING:
    from textual.theme import Theme

DEFAULT_THEME = "tunedeck-dark"
PACKAGED = ("dark.json", "light.json", "high-contrast.json")
COLOUR_KEYS = ("primary", "secondary", "accent", "foreground", "background", "surface", "panel", "boost",
               "success", "warning", "error")  # fmt: skip


class ThemeError(ValueError):
    """A theme file that cannot become a Theme."""


class LoadedThemes(NamedTuple):
    """Themes that loaded, and one warning per user file that was skipped."""

    themes: list[Theme]
    warnings: list[str]


def user_themes_dir() -> Path:
    """Where users put their own ``*.json`` themes (honours XDG_CONFIG_HOME on Linux)."""
    return Path(platformdirs.user_config_dir("tunedeck")) / "themes"


def parse_theme(text: str) -> Theme:
    """A Theme from JSON text; raises ThemeError saying which key is wrong."""
    from textual.color import Color, ColorParseError
    from textual.theme import Theme

    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as e:
        raise ThemeError(f"line {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise ThemeError("expected a JSON object of Theme fields")
    allowed = {f.name for f in dataclasses.fields(Theme)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ThemeError(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    for key in ("name", "primary"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ThemeError(f"{key!r} is required and must be a non-empty string")
    for key in COLOUR_KEYS:
        if data.get(key) is None:
            continue
        try:
            Color.parse(data[key])
        except (ColorParseError, TypeError, ValueError):
            raise ThemeError(f'{key!r}: {data[key]!r} is not a colour (use e.g. "#4EA1FF")') from None
    if "dark" in data and not isinstance(data["dark"], bool):
        raise ThemeError("'dark' must be true or false")
    if "variables" in data and not isinstance(data["variables"], dict):
        raise ThemeError("'variables' must be an object of name -> value")
    theme = Theme(**data)
    try:
        theme.to_color_system().generate()
    except Exception as e:  # whatever fails here is the file's fault: report it, never crash the app
        raise ThemeError(f"cannot build colours from it ({e})") from None
    return theme


def load_themes(user_dir: Path | None = None) -> LoadedThemes:
    """The packaged themes, then valid user themes (a user theme may override a packaged name)."""
    package = files(__name__)
    themes = [parse_theme(package.joinpath(name).read_text(encoding="utf-8")) for name in PACKAGED]
    warnings: list[str] = []
    user_dir = user_themes_dir() if user_dir is None else user_dir
    for path in sorted(user_dir.glob("*.json")) if user_dir.is_dir() else []:
        try:
            themes.append(parse_theme(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ThemeError) as e:
            warnings.append(f"theme {path} skipped: {e}")
    return LoadedThemes(themes, warnings)
