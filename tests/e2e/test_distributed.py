"""Two real processes of the demo through ``accelerate launch`` (DDP over gloo on CPU), as a user starts them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, losses, tunedeck, wait_for
from tunedeck.engine.run.rundir import RunDir, pid_alive

pytestmark = pytest.mark.slow

STEPS = 10
# Same global batch: 2 ranks x 8 rows against 1 process x 16 rows.
DDP = ["--set", "launch.num_processes=2", "--set", "launch.strategy=ddp", "--set", "train.per_device_train_batch_size=8"]
COMMON = ["--set", f"train.max_steps={STEPS}", "--set", "train.logging_steps=1", "--set", "train.save_steps=5"]


@pytest.fixture(scope="module")
def workspace(demo_assets, tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("ddp")
    tunedeck("demo", "--init", str(ws), check=True)
    return ws


def new_run(workspace: Path, before: set[Path]) -> RunDir:
    [path] = set((workspace / "runs").glob("*")) - before
    return RunDir(path)


def train(workspace: Path, *overrides: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, RunDir]:
    """``tunedeck train recipe.yaml`` in the foreground, as a user runs it."""
    before = set((workspace / "runs").glob("*")) if (workspace / "runs").exists() else set()
    proc = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui.cli.main", "train", "recipe.yaml", *overrides],
        cwd=workspace, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )  # fmt: skip
    return proc, new_run(workspace, before)


def events(run: RunDir) -> list[dict]:
    return run.read_events()[0]


def ranks(run: RunDir) -> dict[int, dict]:
    return {r["rank"]: r for r in run.read_ranks()}


@pytest.fixture(scope="module")
def single(workspace) -> RunDir:
    """The same steps in one process with the same global batch (16 rows a step)."""
    proc, run = train(workspace, *COMMON, "--set", "train.per_device_train_batch_size=16")
    assert proc.returncode == 0, proc.stderr
    return run


@pytest.fixture(scope="module")
def ddp(workspace) -> tuple[subprocess.CompletedProcess, RunDir]:
    return train(workspace, *COMMON, *DDP)


def test_two_process_ddp_goes_through_accelerate_launch_with_the_runs_config(ddp):
    proc, run = ddp
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert f"finished at step {STEPS}" in proc.stdout and run.state() == "finished"
    assert "accelerate launch: 2 processes (ddp) on 1 machine(s)" in proc.stdout
    config = yaml.safe_load(run.accelerate_config.read_text())
    assert (config["distributed_type"], config["num_processes"], config["use_cpu"]) == ("MULTI_GPU", 2, True)
    [launched] = [e for e in events(run) if e["kind"] == "launched"]
    assert f"-m accelerate.commands.launch --config_file {run.accelerate_config} -m tunedeck.engine.run.worker {run.path}" in launched["command"]
    assert run.read_status()["pid"] not in {r["pid"] for r in run.read_ranks()}  # the supervisor owns the status
    assert (run.adapter / "adapter_model.safetensors").exists()
    [ckpt] = run.complete_checkpoints()[-1:]
    assert {p.name for p in ckpt.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}  # both ranks' parts


def test_every_rank_logs_apart_and_only_rank_0_writes_events(ddp):
    _, run = ddp
    r = ranks(run)
    assert sorted(r) == [0, 1] and {x["world_size"] for x in r.values()} == {2}
    assert r[0]["pid"] != r[1]["pid"] and all(x["state"] == "finished" for x in r.values())
    for rank in (0, 1):
        log = run.rank_log(rank).read_text()
        assert f"tunedeck worker: rank {rank} of 2, pid {r[rank]['pid']}" in log
    [started] = [e for e in events(run) if e["kind"] == "started"]
    assert started["pid"] == r[0]["pid"] and started["world_size"] == 2
    assert sorted(losses(run)) == list(range(1, STEPS + 1))  # one step event per step: rank 1 wrote none


def test_each_rank_trained_on_its_own_half_of_the_global_batch(ddp, single):
    _, run = ddp
    r, one = ranks(run), ranks(single)[0]
    first0, first1 = set(r[0]["first_batch"]), set(r[1]["first_batch"])
    assert len(first0) == len(first1) == 8 and not first0 & first1  # disjoint shards
    assert first0 | first1 == set(one["first_batch"])  # together: the single process's first batch of 16
    assert r[0]["rows_seen"] == r[1]["rows_seen"] == STEPS * 8
    assert r[0]["rows_seen"] + r[1]["rows_seen"] == one["rows_seen"] == STEPS * 16


def test_loss_matches_the_single_process_run(ddp, single):
    _, run = ddp
    got, ref = losses(run), losses(single)
    assert sorted(got) == sorted(ref)
    for step in ref:
        assert got[step] == pytest.approx(ref[step], rel=0.02), step
    assert got[STEPS] < got[1]  # and it learns


def test_a_rank_that_dies_fails_the_run_naming_it(workspace):
    proc, run = train(workspace, *COMMON, *DDP, env={"TUNEDECK_FAULT": "step@3:rank1"})
    assert proc.returncode == 1
    assert "FAILED: rank 1 exited with signal SIGKILL" in proc.stdout
    assert run.state() == "failed"
    status = run.read_status()
    assert status["error"].startswith("rank 1 exited with signal SIGKILL") and "worker-rank1.log" in status["hint"]
    [failed] = [e for e in events(run) if e["kind"] == "failed"]
    assert failed["rank"] == 1 and failed["exitcode"] == -9
    assert max(losses(run)) <= 3  # rank 1 died at the end of step 3
    assert not any(pid_alive(r["pid"]) for r in run.read_ranks())  # nothing left running
    rows = json.loads(tunedeck("runs", "--json", "--runs-dir", str(workspace / "runs"), check=True).stdout)
    assert next(r for r in rows if r["id"] == run.id)["error"].startswith("rank 1 exited")


def test_stop_reaches_every_rank_and_resume_continues(workspace):
    before = set((workspace / "runs").glob("*"))
    proc = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui.cli.main", "train", "recipe.yaml", "--detach", *DDP,
         "--set", "train.max_steps=30", "--set", "train.logging_steps=1", "--set", "train.save_steps=100"],
        cwd=workspace, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = new_run(workspace, before)
    wait_for(lambda: max(losses(run), default=0) >= 3, what="first steps")
    tunedeck("stop", run.id, "--runs-dir", str(workspace / "runs"), check=True)
    assert run.state() == "stopped"
    stopped_at = run.read_status()["step"]
    assert {r["state"] for r in run.read_ranks()} == {"stopped"}
    assert {r["step"] for r in run.read_ranks()} == {stopped_at}  # the ranks agreed on the step
    assert run.complete_checkpoints()[-1].name == f"step-{stopped_at:06d}"

    proc = tunedeck("resume", run.id, "--runs-dir", str(workspace / "runs"), check=True)
    assert "finished at step 30" in proc.stdout and run.state() == "finished"
    assert sorted(losses(run)) == list(range(1, 31))  # no step lost or repeated across the two launches
    assert [e["kind"] for e in events(run)].count("launched") == 2
