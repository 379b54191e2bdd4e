"""Shared fixtures: the demo assets are built once per session, offline, in a private cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# No UI shares the machine with the tests: training workers take every core (a worker leaves one for the UI otherwise).
os.environ.setdefault("TUNEDECK_TORCH_THREADS", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2))

@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """TUNEDECK_TEST_CACHE reuses a cache between local runs; CI builds a fresh one."""
    path = Path(os.environ.get("TUNEDECK_TEST_CACHE") or tmp_path_factory.mktemp("cache"))
    os.environ["TUNEDECK_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def demo_assets(cache_dir):
    from tunedeck.engine.demo.base import ensure_demo_assets

    return ensure_demo_assets()


def pytest_collection_modifyitems(config, items):
    """A test that needs the demo model (built by pretraining it) is slow, whatever its module says."""
    for item in items:
        if "demo_assets" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
