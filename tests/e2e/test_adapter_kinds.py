"""Every adapter kind trains the demo through the real CLI and the loss falls; what trained is what the kind says."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.helpers import tunedeck

pytestmark = pytest.mark.slow

STEPS = 12
COMMON = [
    f"train.max_steps={STEPS}", "train.logging_steps=1", "train.save_steps=1000", "train.warmup_steps=2",
    "train.per_device_train_batch_size=16", "train.learning_rate=2e-3", "train.max_length=96",
]  # fmt: skip
KINDS = {
    "lora": ["adapter.kind=lora"],
    "qlora": ["adapter.kind=qlora"],
    "qlora-fp4": ["adapter.kind=qlora", "adapter.bnb_4bit_quant_type=fp4", "adapter.bnb_4bit_use_double_quant=false"],
    "8bit": ["adapter.kind=lora", "adapter.load_in_8bit=true"],
    "dora": ["adapter.kind=dora"],
    "rslora": ["adapter.use_rslora=true", "adapter.r=8"],
    "pissa": ["adapter.init_lora_weights=pissa", "adapter.r=8"],
    "modules_to_save": ["adapter.target_modules=attention", "adapter.modules_to_save=[embed_tokens,lm_head]"],
    "full": ["adapter.kind=full", "train.learning_rate=5e-4"],
    "freeze": ["adapter.kind=full", "adapter.freeze_all_but_last_n_layers=1", "train.learning_rate=5e-4"],
}
PARALLEL = 2  # the CI machines have two cores


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def _wait_any(running: dict[str, Path], timeout: float = 600) -> str:
    """The name of a run that has ended."""
    from tunedeck.engine.run.rundir import TERMINAL_STATES, RunDir

    t = time.time()
    while True:
        for name, path in running.items():
            if RunDir(path).state() in TERMINAL_STATES:
                return name
        if time.time() - t > timeout:
            raise TimeoutError({k: RunDir(p).state() for k, p in running.items()})
        time.sleep(0.5)


@pytest.fixture(scope="module")
def trained(demo_assets, tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """Train every kind (PARALLEL at a time, detached workers) in one demo workspace."""
    workspace = tmp_path_factory.mktemp("kinds")
    tunedeck("demo", "--init", str(workspace), check=True)
    runs: dict[str, Path] = {}
    pending = list(KINDS.items()) + [("loftq", ["adapter.init_lora_weights=loftq"])]
    running: dict[str, Path] = {}
    while pending or running:
        while pending and len(running) < PARALLEL:
            name, overrides = pending.pop(0)
            sets = [x for o in COMMON + overrides for x in ("--set", o)]
            proc = tunedeck(
                "train",
                "recipe.yaml",
                *sets,
                "--set",
                f"train.runs_dir=runs-{name}",
                "--detach",
                cwd=workspace,
                check=True,
            )
            running[name] = workspace / f"runs-{name}" / proc.stdout.split()[-1]
        done = _wait_any(running)
        runs[done] = running.pop(done)
    return workspace, runs


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_trains_and_the_loss_falls(trained, kind):
    _, runs = trained
    events = _events(runs[kind])
    assert events[-1]["kind"] == "finished", events[-1]
    losses = [e["loss"] for e in events if e["kind"] == "step"]
    assert len(losses) == STEPS
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first, losses


def _adapter(run: Path) -> tuple[dict, set[str]]:
    from safetensors import safe_open

    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    with safe_open(run / "adapter" / "adapter_model.safetensors", "pt") as f:
        return config, set(f.keys())


def test_lora_kinds_save_what_they_trained(trained):
    _, runs = trained
    config, _ = _adapter(runs["dora"])
    assert config["use_dora"] is True
    config, _ = _adapter(runs["rslora"])
    assert config["use_rslora"] is True and config["r"] == 8
    config, keys = _adapter(runs["modules_to_save"])
    assert set(config["modules_to_save"]) == {"embed_tokens", "lm_head"}
    assert any("lm_head" in k for k in keys) and any("embed_tokens" in k for k in keys)
    assert not any("mlp" in k for k in keys)  # target_modules: attention
    config, _ = _adapter(runs["qlora"])
    assert config["r"] == 16 and config["target_modules"]


def _changed(run: Path, base: Path) -> dict[str, bool]:
    import torch
    from safetensors.torch import load_file

    before, after = load_file(base / "model.safetensors"), load_file(run / "model" / "model.safetensors")
    return {name: not torch.equal(before[name], after[name].to(before[name].dtype)) for name in before}


def test_full_trains_every_weight_and_freeze_only_the_last_layer(trained, demo_assets):
    _, runs = trained
    full = _changed(runs["full"], demo_assets.base)
    assert all(full.values()), [n for n, c in full.items() if not c]
    frozen = _changed(runs["freeze"], demo_assets.base)
    trained_names = {n for n, c in frozen.items() if c}
    assert trained_names and all(
        n.startswith("model.layers.1.") or n in ("model.norm.weight", "lm_head.weight") for n in trained_names
    )
    assert not frozen["model.embed_tokens.weight"] and not any(
        c for n, c in frozen.items() if n.startswith("model.layers.0.")
    )


def test_loftq_on_cpu_fails_with_what_to_do(trained):
    import torch

    if torch.cuda.is_available():
        pytest.skip("LoftQ runs on CUDA")
    _, runs = trained
    failed = _events(runs["loftq"])[-1]
    assert failed["kind"] == "failed"
    assert "adapter.init_lora_weights" in failed["error"] and "CUDA" in failed["error"] and "pissa" in failed["error"]
