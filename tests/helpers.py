"""Every test helper, in one place: the real CLI, demo runs, run folders with fixed ids and times, waiting,
and the TUI's Pilot driver. Fixtures live in conftest.py; no test module imports another."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from textual.pilot import Pilot

from tunedeck.engine.run.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
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
    """A finished run with ``steps`` step events at fixed times (none when 0), written through the engine's writer API."""
    run = RunDir(workspace / "runs" / run_id)
    run.path.mkdir(parents=True)
    run.recipe_path.write_text("model:\n  name_or_path: tiny\n")
    run.write_status(**{"state": "finished", "step": steps, "max_steps": 10, "loss": 1.5, "pid": 0, **status})
    if not steps:
        return run
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
    from tunedeck.tui.textual_compat import screen_update

    console.print(screen_update(app))
    return console.export_text().splitlines()


SHORT = ["--set", "train.logging_steps=1", "--set", "train.save_steps=10", "--set", "train.warmup_steps=2"]


def start(workspace: Path, *overrides: str, env: dict | None = None) -> RunDir:
    """`tunedeck train recipe.yaml --detach` in ``workspace`` (logging every step, checkpoints every 10); the run."""
    before = set((workspace / "runs").glob("*")) if (workspace / "runs").exists() else set()
    proc = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui.cli.main", "train", "recipe.yaml", "--detach", *SHORT, *overrides],
        cwd=workspace, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [path] = set((workspace / "runs").glob("*")) - before
    assert proc.stdout.strip().splitlines()[-1] == path.name  # --detach prints the run id
    return RunDir(path)


def losses(run: RunDir) -> dict[int, float]:
    events, _ = run.read_events()
    return {e["step"]: e["loss"] for e in events if e["kind"] == "step"}


def last_step(run: RunDir) -> int:
    return max(losses(run), default=0)


def wait_for(predicate, timeout: float = 300, what: str = "condition") -> None:
    """Poll ``predicate`` every 0.2 s; AssertionError naming ``what`` after ``timeout`` seconds."""
    t = time.time()
    while not predicate():
        if time.time() - t > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def tunedeck(*args: str, cwd: Path | None = None, timeout: float = 900, check: bool = False) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tunedeck {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def tunedeck_on_a_terminal(*args: str, cwd: Path | None = None, timeout: float = 900) -> tuple[int, str, str]:
    """Run the real CLI with stderr on a pseudo-terminal (where progress is drawn), stdout piped.
    Returns (exit code, stdout, what the terminal received)."""
    import pty
    import threading

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "tunedeck.tui.cli.main", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=slave,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"})  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:  # a full pty buffer would block the child
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stdout, _ = proc.communicate(timeout=timeout)
    reader.join(timeout=10)
    os.close(master)
    return proc.returncode, stdout, b"".join(chunks).decode(errors="replace")


def train_demo(workspace: Path, method: str, *sets: str):
    """`tunedeck demo --init` + `tunedeck train` with ``sets`` overrides (``section.field=value``); the one
    finished run."""
    from tunedeck.engine.run.rundir import RunDir

    tunedeck("demo", "--init", str(workspace), "--method", method, check=True)
    proc = tunedeck("train", "recipe.yaml", *[a for s in sets for a in ("--set", s)], cwd=workspace)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [path] = (workspace / "runs").iterdir()
    run = RunDir(path)
    assert run.state() == "finished"
    return run


def make_lora_run(assets, workspace: Path, run_id: str = "20260101-000000-sft-test", base: Path | None = None, **export) -> Path:
    """A finished LoRA run without the training: a randomly initialised (non-zero) adapter on the demo base
    (or on ``base``, a model folder, with the demo's data)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunedeck.engine.demo.base import demo_recipe
    from tunedeck.engine.run.rundir import RunDir

    run = RunDir(workspace / "runs" / run_id)
    run.path.mkdir(parents=True)
    recipe = demo_recipe(assets)
    recipe.train.runs_dir = str(workspace / "runs")
    base = Path(base or assets.base)
    recipe.model.name_or_path = str(base)
    for key, value in export.items():
        setattr(recipe.export, key, value)
    recipe.save(run.recipe_path)
    (workspace / "eval.jsonl").write_text("".join(assets.eval.read_text().splitlines(keepends=True)[:20]))
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False),
    )
    model.save_pretrained(run.adapter)
    AutoTokenizer.from_pretrained(base).save_pretrained(run.adapter)
    run.write_status(state="finished", step=1, max_steps=1)
    return run.path


def record_notifications(app, monkeypatch) -> list[tuple[str, str]]:
    """(severity, message) of every notification ``app`` gives from now on; recorded instead of shown."""
    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(app, "notify", lambda message, **kw: seen.append((kw.get("severity", "information"), message)))
    return seen
