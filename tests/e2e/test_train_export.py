"""`tunedeck demo --init`, `tunedeck train` with overrides, `tunedeck export`, and clear failures."""

import json
import os

import pytest

from tests.helpers import tunedeck

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def short_run(demo_assets, tmp_path_factory):
    workspace = tmp_path_factory.mktemp("ws")
    tunedeck("demo", "--init", str(workspace), check=True)
    proc = tunedeck(
        "train", "recipe.yaml", "--set", "train.max_steps=20", "--set", "train.save_steps=5",
        "--set", "train.logging_steps=5", "--set", "train.report_to=tensorboard",
        cwd=workspace, check=True,
    )  # fmt: skip
    runs = sorted((workspace / "runs").iterdir())
    assert len(runs) == 1
    return workspace, runs[0], proc.stdout


def test_workspace_recipe_trains_into_workspace_runs(short_run):
    workspace, run, stdout = short_run
    assert "step 20/20" in stdout and "finished at step 20" in stdout
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    resolved = (run / "recipe.yaml").read_text()
    assert "max_steps: 20" in resolved  # the override is what ran
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))  # report_to passes through
    # keep-last-N (save_total_limit=2) and the completion markers
    assert [p.name for p in sorted((run / "checkpoints").glob("step-*"))] == ["step-000015", "step-000020"]
    assert all((p / "COMPLETE").exists() for p in (run / "checkpoints").glob("step-*"))
    assert not list((run / "checkpoints").glob("checkpoint-*"))

    # the worker yields to the UI with a lower priority; the tests have no UI, so it takes every core (conftest)
    cores = len(os.sched_getaffinity(0))
    log = (run / "worker.log").read_text()
    assert f"nice {os.nice(0) + 10} (train.nice), torch threads {cores} of {cores} cores (TUNEDECK_TORCH_THREADS)" in log


def test_the_worker_leaves_a_core_for_the_ui_unless_told_otherwise(monkeypatch):
    import torch

    from tunedeck.engine.recipe import TrainArgs
    from tunedeck.engine.run.worker import yield_to_the_ui

    cores, before = len(os.sched_getaffinity(0)), torch.get_num_threads()
    try:
        monkeypatch.delenv("TUNEDECK_TORCH_THREADS", raising=False)
        assert yield_to_the_ui(TrainArgs(nice=0), world=1)["threads"] == max(1, cores - 1)
        assert yield_to_the_ui(TrainArgs(nice=0, torch_threads=3), world=1)["threads"] == 3
        monkeypatch.setenv("TUNEDECK_TORCH_THREADS", "5")
        assert yield_to_the_ui(TrainArgs(nice=0), world=1)["threads"] == 5
    finally:
        torch.set_num_threads(before)


def test_runs_lists_the_run(short_run):
    workspace, run, _ = short_run
    rows = json.loads(tunedeck("runs", "--json", cwd=workspace, check=True).stdout)
    assert rows[0]["id"] == run.name and rows[0]["state"] == "finished" and rows[0]["step"] == 20


def test_export_cli_writes_verified_ggufs_and_report(short_run):
    workspace, run, _ = short_run
    proc = tunedeck("export", run.name, "--quant", "f16,Q8_0,Q4_K_M", cwd=workspace, check=True)
    assert "pre-tokenizer" in proc.stderr  # the explicit choice is a warning, never silent
    report = json.loads((run / "export-report.json").read_text())
    assert [f["type"] for f in report["files"]] == ["F16", "Q8_0", "Q4_K_M"]
    sizes = [f["size_bytes"] for f in report["files"]]
    assert sizes[0] > sizes[1] > sizes[2]
    assert all(f["verify"]["loaded"] for f in report["files"])
    assert (run / "merged" / "model.safetensors").is_file()
    assert not list((run / "gguf").glob("*.F32.gguf"))  # the intermediate is not kept unless asked


def test_bad_override_names_the_field(short_run):
    workspace, _, _ = short_run
    proc = tunedeck("train", "recipe.yaml", "--set", "adapter.r=abc", cwd=workspace)
    assert proc.returncode == 2
    assert "adapter.r" in proc.stderr and "Traceback" not in proc.stderr


def test_a_bad_dataset_fails_the_run_with_a_clear_event(short_run, tmp_path):
    workspace, _, _ = short_run
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{not json\n')
    proc = tunedeck("train", "recipe.yaml", "--set", f"data.train={bad}", "--set", f"train.runs_dir={tmp_path}/runs", cwd=workspace)
    assert proc.returncode == 1
    assert "FAILED" in proc.stdout and str(bad) in proc.stdout
    run = next((tmp_path / "runs").iterdir())
    assert json.loads((run / "status.json").read_text())["state"] == "failed"
    failed = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()][-1]
    assert failed["kind"] == "failed" and failed["hint"] and failed["traceback"]


def test_missing_model_is_a_clear_offline_error(tmp_path):
    recipe = tmp_path / "r.yaml"
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    recipe.write_text(f"model: {{name_or_path: some-org/not-here}}\ndata: {{train: {data}}}\n")
    proc = tunedeck("train", str(recipe), cwd=tmp_path)
    # refused before any run starts, in one line, with how to fetch it
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "model.name_or_path: 'some-org/not-here' is not a local folder nor in the Hugging Face cache" in proc.stderr
    assert "hf download some-org/not-here" in proc.stderr and not (tmp_path / "runs").exists()


def test_unknown_run_is_a_usage_error(tmp_path):
    proc = tunedeck("export", "nope", cwd=tmp_path)
    assert proc.returncode == 2 and "no run 'nope'" in proc.stderr
