"""Shared builders for the TUI tests: tiny workspaces, runs with fixed ids and times, a Pilot driver."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from textual.pilot import Pilot

from engine.runs import RunDir

RUN_ID = "20260101-000000-sft-abcd"
T0 = 1767225600.0  # 2026-01-01 00:00:00 UTC: fixed event times keep snapshots stable
ROWS = [
    {"messages": [{"role": "user", "content": f"What is {a} plus {b}?"},
                  {"role": "assistant", "content": f"The sum of {a} and {b} is {a + b}."}]}
    for a, b in ((1, 2), (3, 4), (5, 6), (7, 8))
]  # fmt: skip


def write_workspace(ws: Path, base: Path | None, bad_row: bool = True, max_steps: int = 10) -> Path:
    """recipe.yaml with relative paths (base/ links to the demo model), data.jsonl with one invalid row."""
    ws.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r) for r in ROWS]
    if bad_row:
        lines.insert(2, json.dumps({"messages": [{"role": "user", "content": "no answer"}]}))
    (ws / "data.jsonl").write_text("\n".join(lines) + "\n")
    if base is not None and not (ws / "base").exists():
        (ws / "base").symlink_to(base, target_is_directory=True)
    recipe = {
        "model": {"name_or_path": "base"},
        "data": {"train": "data.jsonl"},
        "adapter": {"kind": "lora", "r": 16, "lora_alpha": 32},
        "train": {"max_steps": max_steps, "per_device_train_batch_size": 2, "max_length": 64, "logging_steps": 1},
        "export": {"quant": ["F16"]},
    }
    (ws / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return ws / "recipe.yaml"


def make_run(workspace: Path, run_id: str = RUN_ID, steps: int = 5, **status: Any) -> RunDir:
    """A finished run with ``steps`` step events at fixed times, written through the engine's writer API."""
    run = RunDir(workspace / "runs" / run_id)
    run.path.mkdir(parents=True)
    run.recipe_path.write_text("model:\n  name_or_path: tiny\n")
    run.write_status(**{"state": "finished", "step": steps, "max_steps": 10, "loss": 1.5, "pid": 0, **status})
    with run.events_path.open("w") as f:
        f.write(json.dumps({"ts": T0, "kind": "started", "pid": 0}) + "\n")
        for i in range(1, steps + 1):
            event = {"ts": T0 + i, "kind": "step", "step": i, "max_steps": 10, "loss": 3.0 / i, "lr": 1e-3,
                     "tokens_per_s": 1000.0}  # fmt: skip
            f.write(json.dumps(event) + "\n")
    return run


def fresh(path: Path) -> Path:
    """An empty folder at a fixed path."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


async def settle(pilot: Pilot, rounds: int = 3) -> None:
    """Let workers finish and the screen repaint."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def drive(app, steps: Callable[[Pilot], Awaitable[None]], size: tuple[int, int] = (80, 24)) -> None:
    """Run ``steps`` against the app (sync wrapper: no pytest-asyncio here)."""

    async def inner() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await steps(pilot)

    asyncio.run(inner())


def screen_lines(app) -> list[str]:
    """The screen as the terminal shows it, one string per row (what a user reads)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True, color_system=None)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text().splitlines()
