"""Every TUI test runs with its own config folder: no user theme, keymap, theme choice or NO_COLOR leaks in."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("TUNEDECK_THEME", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
