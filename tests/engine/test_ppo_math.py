"""PPO arithmetic against numbers worked out by hand (the comments show the working)."""

import math

import pytest
import torch

from tunedeck.engine.methods import ppo_math as pm


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def close(actual: torch.Tensor, expected: list) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64))


def test_masked_mean_and_whitening_ignore_padding():
    x, mask = t([1.0, 3.0, 99.0], [5.0, -7.0, 42.0]), t([1, 1, 0], [1, 0, 0])
    assert pm.masked_mean(x, mask).item() == pytest.approx(3.0)  # (1 + 3 + 5) / 3
    # values 1, 3, 5: mean 3, unbiased variance (4 + 0 + 4) / 2 = 4, std 2
    assert pm.masked_var(x, mask).item() == pytest.approx(4.0)
    close(pm.whiten(x, mask), [[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    # shift_mean=False (rewards): scaled by 1/std, the mean added back: 1/2 + 3, ...
    close(pm.whiten(x, mask, shift_mean=False), [[2.0, 3.0, 0.0], [4.0, 0.0, 0.0]])


def test_kl_estimators():
    logp, ref = t([math.log(0.5)]), t([math.log(0.25)])
    # k1 = log p - log p_ref = log 2
    assert pm.kl_penalty(logp, ref, "k1").item() == pytest.approx(0.693147, abs=1e-6)
    # k3 = r - 1 - log r with r = p_ref / p = 0.5: -0.5 + log 2
    assert pm.kl_penalty(logp, ref, "k3").item() == pytest.approx(0.193147, abs=1e-6)
    # k3 is never negative, k1 is when the policy puts less mass on the token than the reference
    assert pm.kl_penalty(ref, logp, "k1").item() == pytest.approx(-0.693147, abs=1e-6)
    assert pm.kl_penalty(ref, logp, "k3").item() == pytest.approx(0.306853, abs=1e-6)  # r = 2: 2 - 1 - log 2
    with pytest.raises(ValueError, match="k1 or k3"):
        pm.kl_penalty(logp, ref, "k2")


def test_token_rewards_put_the_score_on_the_last_response_token():
    scores = t(1.0, 2.0)
    kl = t([0.1, 0.2, 0.3], [0.4, 0.5, 7.0])
    mask = t([1, 1, 1], [1, 1, 0])
    # -0.5 * kl on every token; row 0 ends at token 2 (+1), row 1 at token 1 (+2); padding gets 0
    expected = [[-0.05, -0.1, -0.15 + 1.0], [-0.2, -0.25 + 2.0, 0.0]]
    close(pm.token_rewards(scores, kl, mask, kl_coef=0.5), expected)


def test_gae_backwards_over_the_response():
    rewards, values, mask = t([0.0, 0.0, 1.0]), t([0.5, 0.6, 0.7]), t([1, 1, 1])
    advantages, returns = pm.gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # t=2: delta = 1 + 0.9*0 - 0.7 = 0.3; A = 0.3
    # t=1: delta = 0 + 0.9*0.7 - 0.6 = 0.03; A = 0.03 + 0.72*0.3 = 0.246
    # t=0: delta = 0 + 0.9*0.6 - 0.5 = 0.04; A = 0.04 + 0.72*0.246 = 0.21712
    close(advantages, [[0.21712, 0.246, 0.3]])
    close(returns, [[0.71712, 0.846, 1.0]])  # A + V


def test_gae_stops_at_the_end_of_a_shorter_response():
    rewards, values, mask = t([0.0, 2.0, 5.0]), t([0.5, 1.0, 9.0]), t([1, 1, 0])
    advantages, returns = pm.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    # the padded token (reward 5, value 9) is ignored: t=1: 2 + 0 - 1 = 1; t=0: 0 + 1 - 0.5 + 1 = 1.5
    close(advantages, [[1.5, 1.0, 0.0]])
    close(returns, [[2.0, 2.0, 0.0]])  # gamma = lam = 1: the sum of future rewards


def test_clipped_policy_loss():
    old = t([0.0, 0.0, 0.0, 0.0])
    new = t([math.log(1.5), math.log(0.5), math.log(1.1), 5.0])  # ratios 1.5, 0.5, 1.1 (and padding)
    advantages, mask = t([1.0, 1.0, -2.0, 100.0]), t([1, 1, 1, 0])
    loss, clipfrac, approx_kl = pm.policy_loss(new, old, advantages, mask, cliprange=0.2)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(-0.5, -0.8) = -0.5; token 2: max(2.2, 2.2) = 2.2
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 2.2) / 3)
    assert clipfrac.item() == pytest.approx(1 / 3)
    # 0.5 * mean(log(r)^2) = 0.5 * (0.164402 + 0.480453 + 0.009084) / 3
    assert approx_kl.item() == pytest.approx(0.108990, abs=1e-6)


def test_clipped_value_loss():
    values, old, returns, mask = t([1.0, 0.0, 3.0]), t([0.5, 0.1, 0.0]), t([2.0, 0.0, 0.0]), t([1, 1, 0])
    loss, clipfrac = pm.value_loss(values, old, returns, mask, cliprange_value=0.2)
    # token 0: clipped value 0.5 + 0.2 = 0.7: max((1 - 2)^2, (0.7 - 2)^2) = 1.69 (clipped)
    # token 1: clipped value 0.1 - 0.1 = 0.0: both 0
    assert loss.item() == pytest.approx(0.5 * (1.69 + 0.0) / 2)
    assert clipfrac.item() == pytest.approx(0.5)


def test_entropy_and_token_logprobs():
    assert pm.entropy_from_logits(t([0.0, 0.0])).item() == pytest.approx(math.log(2))
    logits = t([[0.0, math.log(3.0)]])  # probabilities 0.25, 0.75
    assert pm.token_logprobs(logits, torch.tensor([[1]])).item() == pytest.approx(math.log(0.75))
