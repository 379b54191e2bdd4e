"""Import boundaries: the TUI starts without the ML stack, the engine never pulls in the UI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "trl", "peft", "llama_cpp", "datasets", "bitsandbytes")
UI = ("textual", "rich")


def imported_roots(statement: str) -> set[str]:
    """Top-level package names in sys.modules after running ``statement`` in a fresh interpreter."""
    code = f"{statement}; import sys, json; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_tui_app_import_pulls_in_no_ml_stack() -> None:
    roots = imported_roots("import tui.app, tui.cli")
    assert "textual" in roots  # the probe really imported the app
    assert roots.isdisjoint(HEAVY), sorted(roots & set(HEAVY))


@pytest.mark.parametrize("module", ["engine", "engine.runs", "engine.recipe"])
def test_engine_imports_no_ui(module: str) -> None:
    roots = imported_roots(f"import {module}")
    assert "engine" in roots
    assert roots.isdisjoint(UI), sorted(roots & set(UI))


def test_first_frame_of_the_app_pulls_in_no_ml_stack(tmp_path: Path) -> None:
    """Start the real app headless to its first frame on the home screen, then look at sys.modules."""
    code = (
        "import asyncio, sys, json\n"
        "from pathlib import Path\n"
        "from tui.app import TunedeckApp\n"
        "async def main():\n"
        f"    async with TunedeckApp(workspace=Path({str(tmp_path)!r})).run_test(size=(80, 24)) as pilot:\n"
        "        await pilot.pause()\n"
        "asyncio.run(main())\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    roots = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "textual" in roots
    assert roots.isdisjoint(HEAVY), sorted(roots & set(HEAVY))
