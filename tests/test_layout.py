"""Module and function size limits (issue 29): no module in engine/ or tui/ over 600 lines, no function over 80.

A function may stay over where a comment ``# long: <reason>`` sits on its ``def`` line or the line just above it.
Lengths are the body's span, ``end_lineno - lineno + 1`` of the ``def`` (decorators excluded).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.helpers import ROOT

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
PACKAGES = ("engine", "tui")
_EXCUSE = re.compile(r"#\s*long:\s*\S")


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _excused(lines: list[str], lineno: int) -> bool:
    """A ``# long: reason`` comment on the def line (1-based ``lineno``) or the line just above it."""
    return any(_EXCUSE.search(lines[n - 1]) for n in (lineno, lineno - 1) if 1 <= n <= len(lines))


def offenders() -> list[str]:
    found = []
    for path in _modules():
        text = path.read_text()
        lines = text.splitlines()
        where = path.relative_to(ROOT)
        if len(lines) > MAX_MODULE_LINES:
            found.append(f"{where}: {len(lines)} lines (limit {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES and not _excused(lines, node.lineno):
                found.append(f"{where}:{node.lineno} {node.name}(): {length} lines (limit {MAX_FUNCTION_LINES})")
    return found


def test_no_module_or_function_over_the_limits():
    found = offenders()
    assert not found, "over the size limits (split it, or say why with '# long: <reason>'):\n" + "\n".join(found)


def test_a_long_comment_excuses_a_function():
    lines = ["# long: one table", "def f():", "", "def g():  # long: one table", "", "def h():"]
    assert _excused(lines, 2) and _excused(lines, 4) and not _excused(lines, 6)
    assert not _excused(["# long:", "def f():"], 2)  # a reason is needed
