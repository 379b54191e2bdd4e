import os
import subprocess
import sys

from tests.helpers import make_run as _make_run
from tunedeck.engine.run.rundir import RunDir, find_run, list_runs


def make_run(tmp_path, name="20260101-000000-sft-abcd") -> RunDir:
    """A run folder with no events, in tmp_path/runs."""
    return _make_run(tmp_path, name, steps=0)


def test_partial_event_line_is_not_read_until_complete(tmp_path):
    run = make_run(tmp_path)
    run.append_event("step", step=1, loss=2.0)
    with run.events_path.open("a") as f:
        f.write('{"ts": 1, "kind": "step", "st')  # a writer caught mid-line
    events, offset = run.read_events()
    assert [e["step"] for e in events] == [1]
    with run.events_path.open("a") as f:
        f.write('ep": 2, "loss": 1.5}\n')
    more, _ = run.read_events(offset)
    assert [e["step"] for e in more] == [2]


def test_state_is_crashed_when_the_worker_died_silently(tmp_path):
    run = make_run(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run.write_status(state="running", pid=proc.pid)
    assert run.state() == "crashed"
    run.write_status(state="running", pid=os.getpid())
    assert run.state() == "running"
    run.write_status(state="finished")
    assert run.state() == "finished"


def test_status_write_is_atomic_and_merges(tmp_path):
    run = make_run(tmp_path)
    run.write_status(state="running", pid=1)
    run.write_status(step=5)
    assert run.read_status()["pid"] == 1 and run.read_status()["step"] == 5
    assert not list(run.path.glob(".status.json.*"))


def test_checkpoints_without_marker_are_ignored(tmp_path):
    run = make_run(tmp_path)
    for step, done in ((10, True), (20, True), (30, False)):
        ckpt = run.checkpoints / f"step-{step:06d}"
        ckpt.mkdir(parents=True)
        if done:
            (ckpt / "COMPLETE").write_text(str(step))
    assert [p.name for p in run.complete_checkpoints()] == ["step-000010", "step-000020"]


def test_find_run_by_prefix_and_latest(tmp_path):
    a = make_run(tmp_path, "20260101-000000-sft-aaaa")
    b = make_run(tmp_path, "20260102-000000-sft-bbbb")
    assert [r.id for r in list_runs(tmp_path / "runs")] == [a.id, b.id]
    assert find_run("20260101", tmp_path / "runs").id == a.id
    assert find_run("latest", tmp_path / "runs").id == b.id
    assert find_run(str(a.path), tmp_path / "runs").id == a.id


def test_delete_refuses_a_live_run_and_removes_a_finished_one(tmp_path):
    import pytest

    from tunedeck.engine.run.launch import RunStateError, delete_run

    run = make_run(tmp_path)
    run.write_status(state="running", pid=os.getpid())
    with pytest.raises(RunStateError, match="is running: stop it first"):
        delete_run(run)
    assert run.path.is_dir()
    run.write_status(state="finished")
    delete_run(run)
    assert not run.path.exists()


def test_ggufs_are_listed_newest_run_first(tmp_path):
    from tunedeck.engine.run.rundir import list_ggufs

    old, new = make_run(tmp_path, "20260101-000000-sft-aaaa"), make_run(tmp_path, "20260102-000000-sft-bbbb")
    for run, names in ((old, ["m-F16.gguf"]), (new, ["m-F16.gguf", "m-Q8_0.gguf"])):
        run.gguf.mkdir()
        for name in names:
            (run.gguf / name).write_bytes(b"GGUF")
    assert [(p.parent.parent.name[-4:], p.name) for p in list_ggufs(tmp_path / "runs")] == [
        ("bbbb", "m-Q8_0.gguf"), ("bbbb", "m-F16.gguf"), ("aaaa", "m-F16.gguf")
    ]  # fmt: skip


def test_export_job_state_reads_its_status_file_like_the_run_does(tmp_path):
    import time

    from tunedeck.engine.export.job import ExportJob

    run = make_run(tmp_path)
    job = ExportJob(run)
    assert job.state() is None and not job.live()  # never exported this way
    job.write_status(state="starting", pid=None, started=time.time())
    assert job.state() == "starting" and job.live()  # start_export wrote it; the process is not there yet
    job.write_status(started=time.time() - 60)
    assert job.state() == "crashed"
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    job.write_status(state="running", pid=proc.pid)
    assert job.state() == "crashed"
    job.write_status(pid=os.getpid())
    assert job.state() == "running"
    job.write_status(state="failed", pid=proc.pid)
    assert job.state() == "failed" and job.read_status()["pid"] == proc.pid
    assert not list(run.path.glob(".export-status.json.*"))
