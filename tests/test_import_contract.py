"""The import contract, checked over every module (engine, tui, tests):

- engine/ never imports tui, textual or rich (not even inside a function);
- engine/ has no import cycle, counting imports inside functions;
- the TUI's startup path (tui.app, tui.cli, the first frame) and the engine modules it reads
  (recipe, runs, events, methods, data, templates, adapters, estimate) import no ML library;
- test modules share code only through tests/helpers.py, never by importing each other.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

HEAVY = {"torch", "transformers", "trl", "peft", "llama_cpp", "datasets", "bitsandbytes", "accelerate"}
UI = {"tui", "textual", "rich"}
LIGHT_ENGINE = ["engine.recipe", "engine.runs", "engine.events", "engine.methods", "engine.data", "engine.templates",
                "engine.adapters", "engine.estimate", "engine.export.stages"]  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute module names ``path`` imports anywhere (in functions too; ``if TYPE_CHECKING:`` excluded)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = {
        id(n) for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", None) == "TYPE_CHECKING"
        for stmt in block.body for n in ast.walk(stmt)
    }  # fmt: skip
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


ENGINE_FILES = sorted((ROOT / "engine").rglob("*.py"))


def test_engine_never_imports_the_ui():
    offenders = {
        _module_name(path): sorted(m for m in _imports(path) if m.split(".")[0] in UI)
        for path in ENGINE_FILES
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_engine_has_no_import_cycle():
    modules = {_module_name(p): p for p in ENGINE_FILES}
    graph = {name: {m for m in _imports(p) if m in modules and m != name} for name, p in modules.items()}
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*stack, node])):
                return cycle
        state[node] = 2
        return None

    cycles = [cycle for name in sorted(graph) if name not in state and (cycle := visit(name, []))]
    assert not cycles, " -> ".join(cycles[0])


def imported_roots(code: str) -> set[str]:
    """Top-level package names in sys.modules after running ``code`` in a fresh interpreter."""
    code += "\nimport sys, json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_tui_and_the_engine_modules_it_reads_import_no_ml_library():
    roots = imported_roots("import tui.app, tui.cli, " + ", ".join(LIGHT_ENGINE))
    assert "textual" in roots  # the probe really imported the app
    assert not roots & HEAVY, sorted(roots & HEAVY)


@pytest.mark.parametrize("module", LIGHT_ENGINE)
def test_engine_modules_import_no_ui_at_run_time(module):
    assert not imported_roots(f"import {module}") & UI


def test_first_frame_of_the_app_pulls_in_no_ml_library(tmp_path: Path) -> None:
    """Start the real app headless to its first frame on the home screen, then look at sys.modules."""
    roots = imported_roots(
        "import asyncio\n"
        "from pathlib import Path\n"
        "from tui.app import TunedeckApp\n"
        "async def main():\n"
        f"    async with TunedeckApp(workspace=Path({str(tmp_path)!r})).run_test(size=(80, 24)) as pilot:\n"
        "        await pilot.pause()\n"
        "asyncio.run(main())"
    )
    assert "textual" in roots and not roots & HEAVY, sorted(roots & HEAVY)


def test_test_modules_share_helpers_only_through_tests_helpers():
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.startswith("tests.") and m.split(".")[1] != "helpers")
        for p in (ROOT / "tests").rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}
