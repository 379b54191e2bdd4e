"""Every alignment method trains the demo through the real worker and logs its own metrics."""

import pytest

from tests.helpers import train_demo, tunedeck

pytestmark = pytest.mark.slow

# method -> metric keys its TRL trainer logs (the Train screen charts them beside the loss)
METRICS = {
    "pretrain": {"loss"},
    "dpo": {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"},
    "orpo": {"rewards/chosen", "rewards/rejected", "rewards/margins"},
    "simpo": {"rewards/chosen", "rewards/rejected", "rewards/margins"},
    "kto": {"rewards/chosen", "rewards/rejected", "rewards/margins"},
    "reward": {"loss", "grad_norm"},
    "grpo": {"reward", "reward_std", "rewards/sum_reward/mean"},
    "rloo": {"reward", "rewards/sum_reward/mean"},
    "ppo": {"loss/policy", "loss/value", "policy/clipfrac", "objective/entropy"},  # reward and KL: per rollout
}


@pytest.mark.parametrize("method", list(METRICS))
def test_each_method_trains_through_the_worker_and_logs_its_metrics(tmp_path, demo_assets, method):
    steps = "2" if method in ("grpo", "rloo") else "4"
    run = train_demo(
        tmp_path,
        method,
        "adapter.kind=lora",
        f"train.max_steps={steps}",
        "train.logging_steps=1",
        "train.save_steps=100",
    )
    events = run.read_events()[0]
    step = [e for e in events if e["kind"] == "step"][-1]
    assert METRICS[method] <= set(step), sorted(step)
    model = next(e for e in events if e["kind"] == "model")
    assert 0 < model["trainable_params"] < model["total_params"]  # LoRA (the reward demo trains in full)
    assert (run.path / "adapter" / "adapter_config.json").is_file()


@pytest.mark.parametrize("kind", ["qlora", "full"])
@pytest.mark.parametrize("method", list(METRICS))
def test_each_method_trains_with_qlora_and_full_fine_tuning(tmp_path, demo_assets, method, kind):
    """The same recipe with adapter.kind swapped: 4-bit NF4 base + LoRA, or every weight trained."""
    run = train_demo(
        tmp_path,
        method,
        f"adapter.kind={kind}",
        "adapter.modules_to_save=null",
        "train.max_steps=1",
        "train.save_steps=100",
    )
    model = next(e for e in run.read_events()[0] if e["kind"] == "model")
    if kind == "full":
        assert model["trainable_params"] == model["total_params"] or method == "ppo", model  # ppo: + frozen ref
        assert (run.path / "model" / "config.json").is_file()
    else:
        assert 0 < model["trainable_params"] < model["total_params"], model
        assert (run.path / "adapter" / "adapter_config.json").is_file()


def test_wrong_dataset_format_is_refused_before_launch(tmp_path, demo_assets):
    tunedeck("demo", "--init", str(tmp_path), "--method", "dpo", check=True)
    proc = tunedeck("train", "recipe.yaml", "--set", f"data.train={demo_assets.sft}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "method dpo needs preference" in proc.stderr and "messages" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_online_method_needs_a_reward(tmp_path, demo_assets):
    tunedeck("demo", "--init", str(tmp_path), "--method", "grpo", check=True)
    proc = tunedeck("train", "recipe.yaml", "--set", "method.reward_funcs=[]", cwd=tmp_path)
    assert proc.returncode == 2 and "method.reward_funcs" in proc.stderr
