"""tui/textual_compat.py against the installed Textual: inside pyproject's pin, and every private name still there.

What each name does is checked where it is used (test_keys, test_app, test_export_checkpoints); this says which."""

from __future__ import annotations

import ast
import importlib.metadata
import re

import tomllib
from textual.app import App
from textual.screen import Screen
from textual.widgets import Select

from tests.helpers import ROOT


def test_textual_is_inside_the_pin() -> None:
    spec = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
                if d.startswith("textual") and not d.startswith("textual-"))  # fmt: skip
    low, high = re.fullmatch(r"textual>=([\d.]+),<([\d.]+)", spec.split(";")[0].strip()).groups()
    version = tuple(int(x) for x in importlib.metadata.version("textual").split(".")[:2])
    assert tuple(int(x) for x in low.split(".")[:2]) <= version < tuple(int(x) for x in high.split(".")[:2])


def test_every_private_name_the_compat_module_uses_is_there() -> None:
    import tunedeck.tui.textual_compat  # noqa: F401  (imports the private modules)

    tree = ast.parse((ROOT / "tui" / "textual_compat.py").read_text())
    used = {(ast.unparse(n.value), n.attr) for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_")}
    on = {"app": App(), "app.screen": Screen(), "select": Select([("a", "a")])}
    assert not [f"{owner}.{name}" for owner, name in sorted(used) if not hasattr(on[owner], name)]
