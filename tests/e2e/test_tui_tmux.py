"""The real TUI in tmux: open, load the demo data, train, watch the loss, quit, reopen, export, chat."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT
from tunedeck.engine.run.rundir import RunDir

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


class Tmux:
    """One detached tmux session running the TUI."""

    def __init__(self, name: str, command: str, env: dict[str, str]) -> None:
        self.name = name
        flags = [arg for k, v in env.items() for arg in ("-e", f"{k}={v}")]
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "100", "-y", "30", *flags, command], check=True)
        subprocess.run(["tmux", "set", "-t", name, "remain-on-exit", "on"], check=True)

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return out.stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", self.name, *(["-l"] if literal else []), key], check=True)
            time.sleep(0.3)

    def wait(self, found: Callable[[str], bool] | str, timeout: float, what: str = "") -> str:
        """Poll the pane until ``found`` (a predicate or a substring) holds; fail with the last screen.

        Timeouts are generous: they cost nothing when the screen is right, and CI's 2 busy cores are slow."""
        test = found if callable(found) else (lambda s: found in s)
        end = time.time() + timeout
        while time.time() < end:
            text = self.screen()
            if test(text):
                return text
            time.sleep(1.0)
        raise AssertionError(f"waited {timeout:.0f}s for {what or found!r}; the screen was:\n{self.screen()}")

    def dead(self) -> bool:
        out = subprocess.run(["tmux", "display", "-p", "-t", self.name, "#{pane_dead}"], capture_output=True, text=True)
        return out.stdout.strip() == "1"

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


@pytest.fixture
def workspace(tmp_path: Path, demo_assets) -> Path:
    ws = tmp_path / "ws"
    subprocess.run([sys.executable, "-m", "tunedeck.tui.cli.main", "demo", "--init", str(ws)], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    recipe = yaml.safe_load((ws / "recipe.yaml").read_text())
    recipe["train"].update(max_steps=200, logging_steps=10, save_steps=200)  # enough to answer "The sum of"
    recipe["export"].update(quant=["F16"], fidelity_texts=4, eval_rows=4, calibration_rows=4, modelfile=False)
    (ws / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return ws


def test_tui_journey_in_tmux(workspace: Path, cache_dir: Path) -> None:
    env = {"TUNEDECK_CACHE_DIR": str(cache_dir), "HF_HUB_OFFLINE": "1", "XDG_CONFIG_HOME": str(workspace / "cfg")}
    command = f"cd {ROOT} && {sys.executable} -m tunedeck.tui.cli.main --workspace {workspace}"
    name = f"tunedeck-e2e-{int(time.time())}"
    tui = Tmux(name, command, env)
    try:
        tui.wait("tunedeck", 60, "the first frame")
        tui.keys("2")
        tui.wait("1500 valid", 120, "the demo data")
        tui.keys("1")
        tui.wait("press t to train", 120, "the Runs screen")  # a key sent mid-switch goes to the screen being left
        tui.keys("t")
        tui.wait(re.compile(r"\d{8}-\d{6}-sft-").search, 180, "the new run in the table")  # preflight loads a tokenizer
        tui.keys("6")
        tui.wait(re.compile(r"loss \d+\.\d{4}").search, 400, "a loss value on Train")
        tui.keys("q")  # quit while it trains: the run must carry on without the TUI
        end = time.time() + 120
        while not tui.dead() and time.time() < end:
            time.sleep(0.5)
        assert tui.dead(), tui.screen()
        tui.kill()
        [run] = list((workspace / "runs").iterdir())
        assert RunDir(run).state() in ("running", "finished"), RunDir(run).read_status()

        tui = Tmux(name + "-2", command, env)
        text = tui.wait(re.compile(r"-sft-\S+\s+finished\s+200/200").search, 600, "the run, finished, after reopening")
        assert "loss" in text
        tui.keys("7")
        tui.wait("(finished)", 120, "the run on Export")
        tui.keys("x")
        tui.wait("done:", 900, "the export to finish")
        tui.wait("F16", 60)
        tui.keys("8")
        tui.wait(".F16.gguf ready", 180, "the GGUF to load")
        tui.keys("i")
        tui.keys("What is 3 plus 4?", literal=True)
        tui.keys("Enter")
        text = tui.wait("The sum of", 180, "the model's answer")
        assert "you: What is 3 plus 4?" in text
        tui.keys("Escape", "q")
    finally:
        tui.kill()
        _stop_runs(workspace)


def _stop_runs(workspace: Path) -> None:
    """Never leave a training behind when the test fails half way."""
    from tunedeck.engine.run.launch import RunStateError, stop_run
    from tunedeck.engine.run.rundir import list_runs

    for run in list_runs(workspace / "runs"):
        try:
            stop_run(run, now=True)
        except RunStateError:
            pass
