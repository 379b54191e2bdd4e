"""PPO on the demo through the real CLI and worker: reward rises with KL bounded, stop/resume, reward models, QLoRA."""

import json
import statistics

import pytest

from tests.helpers import losses, start, tunedeck, wait_for
from tunedeck.engine.run.rundir import RunDir

pytestmark = pytest.mark.slow

LOGGED = {
    "reward", "objective/kl", "objective/entropy", "objective/rlhf_reward", "loss/policy", "loss/value",
    "policy/clipfrac", "policy/approxkl", "value/clipfrac", "completions/mean_length",
}  # fmt: skip


@pytest.fixture(scope="module")
def workspace(demo_assets, tmp_path_factory):
    ws = tmp_path_factory.mktemp("ppo")
    tunedeck("demo", "--init", str(ws), "--method", "ppo", check=True)
    return ws


def only_run(runs_dir, before=frozenset()) -> RunDir:
    [path] = set(runs_dir.glob("*")) - set(before)
    return RunDir(path)


def test_demo_reward_rises_while_kl_stays_bounded(workspace):
    proc = tunedeck("train", "recipe.yaml", cwd=workspace)  # the demo recipe as written
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = only_run(workspace / "runs")
    assert run.state() == "finished"
    rollouts = [e for e in run.read_events()[0] if e["kind"] == "step" and "reward" in e]
    assert LOGGED <= set(rollouts[-1]), sorted(rollouts[-1])
    rewards = [e["reward"] for e in rollouts]
    kls = [e["objective/kl"] for e in rollouts]
    # 8 samples a rollout: one rollout's reward moves in steps of 1/32, so compare the first and last quarters.
    # Sampled at temperature 1.5 the SFT model starts near 0.75: the shortfall from a perfect reward must fall
    # by a fifth at least (to 0.57 of its start on an Intel Xeon).
    k = max(len(rewards) // 4, 1)
    first, last = statistics.mean(rewards[:k]), statistics.mean(rewards[-k:])
    print(json.dumps({"rewards": rewards, "kl": kls}))
    assert last > first and 1 - last <= 0.8 * (1 - first), rewards
    assert max(kls) < 10.0, kls  # nats summed over a response of at most 16 tokens
    # the run's adapter is the policy alone (what `tunedeck export` merges); checkpoints keep the critic
    assert (run.path / "adapter" / "adapter_config.json").is_file() and not (run.path / "adapter" / "critic").exists()
    checkpoint = run.complete_checkpoints()[-1]
    assert (checkpoint / "critic" / "adapter_model.safetensors").is_file()


def test_stop_mid_rollout_then_resume_continues_the_same_curve(workspace):
    # 2 epochs x 2 minibatches: a rollout every 4 steps, so a stop at step 2 or 3 is mid-rollout
    short = ("--set", "train.max_steps=6", "--set", "train.warmup_steps=0")
    reference = start(workspace, *short)
    wait_for(lambda: reference.state() == "finished", what="reference run")
    run = start(workspace, *short)
    wait_for(lambda: max(losses(run), default=0) >= 1, what="first steps")
    tunedeck("stop", run.id, "--runs-dir", str(workspace / "runs"), check=True)
    assert run.state() == "stopped"
    stopped_at = run.read_status()["step"]
    assert 1 <= stopped_at < 6
    proc = tunedeck("resume", run.id, "--runs-dir", str(workspace / "runs"), check=True)
    assert f"from step-{stopped_at:06d}" in proc.stdout
    assert run.state() == "finished"
    got, want = losses(run), losses(reference)
    assert sorted(got) == sorted(want) == list(range(1, 7))
    for step, loss in want.items():
        assert got[step] == pytest.approx(loss, rel=1e-3, abs=1e-4), (step, got, want)


def test_reward_model_on_qlora(workspace, tmp_path):
    """A sequence-classification model as the reward (an untrained head: plumbing), policy and critic on 4-bit."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunedeck.engine.demo.base import ensure_instruct_model

    instruct = ensure_instruct_model()
    rm = tmp_path / "rm"
    AutoModelForSequenceClassification.from_pretrained(instruct, num_labels=1).save_pretrained(rm)
    AutoTokenizer.from_pretrained(instruct).save_pretrained(rm)
    before = set((workspace / "runs").glob("*"))
    proc = tunedeck(
        "train", "recipe.yaml", "--set", f"method.reward_funcs=[{rm}]", "--set", "adapter.kind=qlora",
        "--set", "train.max_steps=4", "--set", "train.logging_steps=1", cwd=workspace,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = only_run(workspace / "runs", before)
    events = run.read_events()[0]
    assert next(e for e in events if e["kind"] == "model")["adapter"] == "qlora"
    rollout = next(e for e in events if e["kind"] == "step" and "reward" in e)
    assert "rewards/rm/mean" in rollout and rollout["reward"] == pytest.approx(rollout["rewards/rm/mean"])
    assert run.state() == "finished"


def test_full_fine_tuning_puts_the_critic_on_a_frozen_copy(workspace):
    before = set((workspace / "runs").glob("*"))
    proc = tunedeck(
        "train", "recipe.yaml", "--set", "adapter.kind=full", "--set", "adapter.modules_to_save=null",
        "--set", "train.max_steps=4",
        "--set", "train.logging_steps=1", "--set", "train.learning_rate=1e-5", cwd=workspace,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = only_run(workspace / "runs", before)
    assert run.state() == "finished"
    assert (run.path / "model" / "model.safetensors").is_file()  # the policy, whole
    checkpoint = run.complete_checkpoints()[-1]
    assert (checkpoint / "model.safetensors").is_file()
    assert (checkpoint / "critic" / "adapter_model.safetensors").is_file()
