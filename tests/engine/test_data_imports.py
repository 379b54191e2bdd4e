"""engine.data and engine.templates import nothing heavy or UI; tui.cli_data starts fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"torch", "transformers", "trl", "peft", "datasets", "textual", "rich"}


@pytest.mark.parametrize("module", ["engine.data", "engine.templates", "tui.cli_data"])
def test_import_pulls_in_nothing_heavy(module):
    code = f"import {module}, sys, json; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    roots = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not roots & HEAVY, sorted(roots & HEAVY)
