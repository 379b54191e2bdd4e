"""Runs survive the terminal: detach, SIGHUP, kill -9 of readers, stop/resume, crash injection."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import (
    ROOT,
    SHORT,
    last_step,
    losses,
    make_lora_run,
    start,
    tunedeck,
    tunedeck_on_a_terminal,
    wait_for,
)
from tunedeck.engine.run.rundir import RunDir, pid_alive

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(demo_assets, tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("survive")
    tunedeck("demo", "--init", str(ws), check=True)
    return ws


@pytest.fixture(scope="module")
def reference(workspace) -> dict[int, float]:
    """The same 30-step run, uninterrupted."""
    run = start(workspace, "--set", "train.max_steps=30")
    wait_for(lambda: run.state() == "finished", what="reference run")
    return losses(run)


def _fresh_terminal_signals() -> None:
    """A login shell's signals: SIGHUP neither ignored nor blocked, whatever this test process inherited
    (an ignored or blocked signal survives exec; after a long session the shell below hung on SIGHUP)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def test_sighup_to_the_terminal_and_kill_9_of_readers_never_touch_the_worker(workspace):
    # `tunedeck train` in the foreground, in a shell with its own session: the "terminal".
    before = set((workspace / "runs").glob("*"))
    shell = subprocess.Popen(
        ["bash", "-c", f"{sys.executable} -m tunedeck.tui.cli.main train recipe.yaml --set train.max_steps=400 {' '.join(SHORT)}; sleep 600"],
        cwd=workspace, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=_fresh_terminal_signals,
    )  # fmt: skip
    wait_for(lambda: set((workspace / "runs").glob("*")) - before, what="the run folder")
    [path] = set((workspace / "runs").glob("*")) - before
    run = RunDir(path)
    wait_for(lambda: last_step(run) >= 3, what="first steps")
    os.killpg(shell.pid, signal.SIGHUP)  # the SSH connection drops
    shell.wait(timeout=10)
    attach = subprocess.Popen([sys.executable, "-m", "tunedeck.tui.cli.main", "attach", run.id, "--runs-dir", str(workspace / "runs")],
                              stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    time.sleep(1)
    attach.kill()  # kill -9 of a reader
    attach.wait()
    step = last_step(run)
    wait_for(lambda: last_step(run) >= step + 5, what="progress after SIGHUP")
    assert run.state() == "running" and pid_alive(run.read_status()["pid"])
    proc = tunedeck("stop", run.id, "--now", "--runs-dir", str(workspace / "runs"), check=True)
    assert "stopped" in proc.stdout
    assert not pid_alive(run.read_status()["pid"])


def test_stop_checkpoints_then_resume_continues_the_same_loss_curve(workspace, reference):
    run = start(workspace, "--set", "train.max_steps=30")
    wait_for(lambda: last_step(run) >= 4, what="first steps")
    proc = tunedeck("stop", run.id, "--runs-dir", str(workspace / "runs"), check=True)
    assert run.state() == "stopped"
    stopped_at = run.read_status()["step"]
    assert 4 <= stopped_at < 30
    assert "after " in proc.stdout and f"at step {stopped_at}" in proc.stdout
    ckpts = run.complete_checkpoints()
    assert ckpts[-1].name == f"step-{stopped_at:06d}"  # checkpoint at the step boundary of the stop

    proc = tunedeck("resume", run.id, "--runs-dir", str(workspace / "runs"), check=True)
    assert f"from step-{stopped_at:06d}" in proc.stdout and "finished at step 30" in proc.stdout
    assert run.state() == "finished"
    got = losses(run)
    assert sorted(got) == sorted(reference) == list(range(1, 31))  # no step lost or repeated
    for step, loss in reference.items():
        assert got[step] == pytest.approx(loss, rel=1e-3, abs=1e-4), step
    kinds = [e["kind"] for e in run.read_events()[0]]
    assert kinds.count("started") == 2 and "resumed" in kinds  # one events.jsonl across both workers


def test_a_stopped_run_exports_from_its_newest_complete_checkpoint(workspace):
    run = start(workspace, "--set", "train.max_steps=30")
    wait_for(lambda: last_step(run) >= 3, what="first steps")
    tunedeck("stop", run.id, "--runs-dir", str(workspace / "runs"), check=True)
    assert run.state() == "stopped"
    newest = run.complete_checkpoints()[-1].name
    code, stdout, terminal = tunedeck_on_a_terminal("export", run.id, "--quant", "Q8_0", "--no-adapter", "--json",
                                                    cwd=workspace)  # fmt: skip
    assert code == 0, terminal
    assert f"exporting checkpoint {newest} of the stopped run" in terminal  # the default, said in one line
    for label in ("merge", "convert to GGUF", "quantize Q8_0", "check Q8_0 against HF"):  # a bar per stage
        assert label in terminal and "done" in terminal, terminal[-2000:]
    report = json.loads(stdout)
    assert report["ok"] and report["checkpoint"] == newest and report["weights"].endswith(f"checkpoints/{newest}")
    [q8] = report["files"]
    assert Path(q8["path"]).name == f"{run.id}-{newest}.Q8_0.gguf" and q8["verify"]["loaded"]
    proc = tunedeck("export", run.id, "--checkpoint", "step-999999", cwd=workspace)
    assert proc.returncode == 1 and "has no complete checkpoint 'step-999999' (complete: " in proc.stderr
    assert "Traceback" not in proc.stderr


def test_kill_9_during_a_save_leaves_the_previous_checkpoint_usable(workspace, reference):
    run = start(workspace, "--set", "train.max_steps=30", env={"TUNEDECK_FAULT": "save@20"})
    wait_for(lambda: run.state() == "crashed", what="the injected crash")
    assert [p.name for p in run.complete_checkpoints()] == ["step-000010"]
    assert (run.checkpoints / "checkpoint-20").is_dir()  # the partial save is there, unmarked
    rows = json.loads(tunedeck("runs", "--json", "--runs-dir", str(workspace / "runs"), check=True).stdout)
    assert {r["id"]: r["state"] for r in rows}[run.id] == "crashed"

    proc = tunedeck("resume", run.id, "--runs-dir", str(workspace / "runs"), check=True)
    assert "from step-000010" in proc.stdout
    assert run.state() == "finished" and not (run.checkpoints / "checkpoint-20").exists()
    got = losses(run)
    for step in range(11, 31):
        assert got[step] == pytest.approx(reference[step], rel=1e-3, abs=1e-4), step


def test_nonfinite_loss_stops_the_run_with_a_message(workspace):
    run = start(workspace, "--set", "train.max_steps=50", "--set", "train.learning_rate=1e30", "--set", "train.max_grad_norm=0")
    wait_for(lambda: run.state() in ("failed", "finished"), what="divergence")
    assert run.state() == "failed"
    status = run.read_status()
    assert "became nan" in status["error"].lower() and "learning_rate" in status["hint"]
    assert last_step(run) < 50
    proc = tunedeck("attach", run.id, "--runs-dir", str(workspace / "runs"))
    assert proc.returncode == 1 and "FAILED: FloatingPointError" in proc.stdout and "hint:" in proc.stdout


def test_concurrent_runs_in_one_runs_folder(workspace):
    a = start(workspace, "--set", "train.max_steps=12")
    b = start(workspace, "--set", "train.max_steps=12", "--set", "train.seed=7")
    assert a.id != b.id
    wait_for(lambda: a.state() == "finished" and b.state() == "finished", what="both runs")
    for run in (a, b):
        events, _ = run.read_events()
        assert {e["pid"] for e in events if e["kind"] == "started"} == {run.read_status()["pid"]}
        assert sorted(losses(run)) == list(range(1, 13))
    assert losses(a) != losses(b)


def test_sighup_mid_export_leaves_the_export_to_finish_and_a_second_one_is_refused(workspace, demo_assets):
    """`tunedeck export` in a terminal that drops mid-export: the job (its own session) writes every file and the
    complete report anyway; a second export of the run while it runs is refused with a line naming the first."""
    from tunedeck.engine.export.job import ExportJob

    run = RunDir(make_lora_run(demo_assets, workspace, run_id="20260101-000000-sft-export"))
    job = ExportJob(run)
    shell = subprocess.Popen(
        ["bash", "-c", f"{sys.executable} -m tunedeck.tui.cli.main export {run.path} --quant Q8_0,Q4_K_M; sleep 600"],
        cwd=workspace, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=_fresh_terminal_signals,
    )  # fmt: skip
    wait_for(lambda: any(e["kind"] == "export_stage" for e in run.read_events()[0]), what="the export's first stage")
    os.killpg(shell.pid, signal.SIGHUP)  # the SSH connection drops mid-export
    shell.wait(timeout=10)
    assert job.live(), job.read_status()

    second = tunedeck("export", str(run.path), "--quant", "Q8_0")
    assert second.returncode == 2 and f"error: {job.describe()} is still running" in second.stderr, second.stderr

    wait_for(lambda: not job.live(), timeout=600, what="the export job")
    assert job.state() == "finished", (job.read_status(), job.log_path.read_text()[-2000:])
    report = json.loads(run.export_report.read_text())
    assert report["ok"] and [f["type"] for f in report["files"]] == ["Q8_0", "Q4_K_M"]
    for f in report["files"]:
        assert Path(f["path"]).stat().st_size == f["size_bytes"] and f["fidelity"]["top1_agreement"] > 0
    events = run.read_events(job.read_status()["events_offset"])[0]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "export_started" and kinds[-1] == "export" and kinds.count("export_file") == 2, kinds
