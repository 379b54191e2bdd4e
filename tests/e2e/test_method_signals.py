"""Each method moves its own signal the right way on the demo data, through the real CLI and worker (CPU).

Preference methods and the reward model are judged on held-out pairs (the eval split, never trained
on), from the evaluation before the first step (eval_on_start) to the last; online methods on the
mean reward of their own rollouts; SFT on held-out token accuracy.
"""

import pytest

from tests.helpers import train_demo as train
from tunedeck.engine.run.rundir import RunDir

pytestmark = pytest.mark.slow


def series(run: RunDir, kind: str, key: str) -> list[float]:
    return [e[key] for e in run.read_events()[0] if e["kind"] == kind and key in e]


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def test_sft_held_out_token_accuracy_rises(tmp_path, demo_assets):
    run = train(tmp_path, "sft", f"data.eval={tmp_path / 'eval.jsonl'}", "train.max_steps=60", "train.save_steps=20")
    acc, loss = series(run, "eval", "eval_mean_token_accuracy"), series(run, "eval", "eval_loss")
    assert len(acc) == 4, acc  # before training, then every 20 steps
    assert acc[-1] > acc[0] + 0.05 and loss[-1] < loss[0], (acc, loss)


@pytest.mark.parametrize("method", ["dpo", "simpo"])
def test_preference_margins_are_positive_and_rise_on_held_out_pairs(tmp_path, demo_assets, method):
    run = train(tmp_path, method)
    margins = series(run, "eval", "eval_rewards/margins")  # margins[0]: before the first step
    assert len(margins) >= 4, margins
    assert all(m > 0 for m in margins[1:]), margins
    assert margins[-1] > margins[0], margins
    assert series(run, "eval", "eval_rewards/accuracies")[-1] > 0.6


def test_orpo_from_the_base_turns_its_margins_positive(tmp_path, demo_assets):
    """ORPO does SFT and preference in one stage, so its demo starts from the base, whose plain-text
    habit ("3 plus 4 is 7.") is the rejected answer: held-out margins start negative (-2.1), cross zero
    by the first eval (0.13-0.19 over two seeds) and settle near 3 while the SFT half of the loss
    teaches the chat answer."""
    run = train(tmp_path, "orpo")
    margins = series(run, "eval", "eval_rewards/margins")  # margins[0]: the base, before the first step
    assert len(margins) >= 4 and margins[0] < 0, margins
    assert all(m > 0 for m in margins[2:]) and margins[-1] > margins[0] + 2, margins
    assert series(run, "eval", "eval_rewards/accuracies")[-1] >= 0.9
    nll = series(run, "eval", "eval_nll_loss")
    assert nll[-1] < nll[0], nll


def test_kto_desirable_and_undesirable_rewards_separate(tmp_path, demo_assets):
    run = train(tmp_path, "kto")
    chosen, rejected = series(run, "eval", "eval_rewards/chosen"), series(run, "eval", "eval_rewards/rejected")
    gaps = [c - r for c, r in zip(chosen, rejected, strict=True)]
    assert len(gaps) >= 4 and all(g > 0 for g in gaps[1:]) and gaps[-1] > gaps[0], gaps


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory, demo_assets) -> RunDir:
    return train(tmp_path_factory.mktemp("reward"), "reward")


def test_reward_model_ranks_held_out_pairs(reward_run):
    accuracy = series(reward_run, "eval", "eval_accuracy")
    assert accuracy[-1] >= 0.8 and accuracy[-1] > accuracy[0], accuracy  # [0]: the untrained score head


@pytest.mark.parametrize("method", ["grpo", "rloo"])
def test_online_mean_reward_rises_against_its_reward(tmp_path, demo_assets, method):
    """Sampled at the demo's temperature 1.5 the SFT model earns ~0.8 of the reward, so a fixed rise is capped
    by the ceiling: what is asserted is that the shortfall from a perfect reward falls by at least 30% (it fell
    to 0.41-0.43 of its start, GRPO and RLOO, on an Intel Xeon)."""
    run = train(tmp_path, method)
    reward = series(run, "step", "reward")
    k = max(len(reward) // 4, 1)
    first, last = mean(reward[:k]), mean(reward[-k:])
    assert last > first and 1 - last <= 0.7 * (1 - first), reward


def test_rlhf_path_reward_run_then_policy_with_kl_to_the_sft_weights(tmp_path, reward_run):
    """The classic RLHF pipeline: a reward model, then GRPO against it with a KL penalty (beta > 0) to the SFT weights."""
    policy = train(tmp_path, "grpo", f"method.reward_funcs=[{reward_run.path}]", "method.beta=0.04")
    steps = [e for e in policy.read_events()[0] if e["kind"] == "step"]
    assert all("kl" in e for e in steps) and max(e["kl"] for e in steps) > 0
    reward = [e["reward"] for e in steps]
    k = max(len(reward) // 4, 1)
    assert mean(reward[-k:]) > mean(reward[:k]), reward
