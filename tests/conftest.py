"""Shared fixtures: the demo assets are built once per session, offline, in a private cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """TUNEDECK_TEST_CACHE reuses a cache between local runs; CI builds a fresh one."""
    path = Path(os.environ.get("TUNEDECK_TEST_CACHE") or tmp_path_factory.mktemp("cache"))
    os.environ["TUNEDECK_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def demo_assets(cache_dir):
    from engine.demo import ensure_demo_assets

    return ensure_demo_assets()


def tunedeck(*args: str, cwd: Path | None = None, timeout: float = 900, check: bool = False) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tunedeck {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def train_demo(workspace: Path, method: str, *sets: str):
    """`tunedeck demo --init` + `tunedeck train` with ``sets`` overrides (``section.field=value``); the one
    finished run."""
    from engine.runs import RunDir

    tunedeck("demo", "--init", str(workspace), "--method", method, check=True)
    proc = tunedeck("train", "recipe.yaml", *[a for s in sets for a in ("--set", s)], cwd=workspace)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [path] = (workspace / "runs").iterdir()
    run = RunDir(path)
    assert run.state() == "finished"
    return run
