"""The Train screen charts each method's own metrics, read from a real run's events.jsonl."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.helpers import drive, screen_lines, settle, tunedeck
from tunedeck.engine.run.rundir import list_runs
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.widgets.metric_chart import MetricChart, metric_points

DPO_METRICS = {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"}


@pytest.fixture(scope="module")
def dpo_workspace(tmp_path_factory, demo_assets) -> Path:
    """A real 3-step DPO run of the demo (through the CLI, as a user would start it)."""
    ws = tmp_path_factory.mktemp("dpo")
    tunedeck("demo", "--init", str(ws), "--method", "dpo", check=True)
    tunedeck("train", "recipe.yaml", "--set", "train.max_steps=3", "--set", "train.logging_steps=1",
             "--set", "train.save_steps=100", cwd=ws, check=True)  # fmt: skip
    return ws


def test_dpo_rewards_are_charted_beside_the_loss_and_m_cycles(dpo_workspace: Path) -> None:
    [run] = list_runs(dpo_workspace / "runs")
    events = run.read_events()[0]
    steps = [e for e in events if e["kind"] == "step"]
    assert len(steps) == 3 and DPO_METRICS <= set(steps[-1])
    app = TunedeckApp(workspace=dpo_workspace)

    async def drive_steps(pilot: Pilot) -> None:
        await pilot.press("6")
        for _ in range(20):  # the history is read by a worker
            await settle(pilot)
            if app.screen.query_one(MetricChart).series:
                break
        chart = app.screen.query_one(MetricChart)
        assert DPO_METRICS <= set(chart.names)
        assert not {"loss", "lr", "grad_norm", "epoch", "tokens_per_s", "step"} & set(chart.names)
        assert chart.current == "rewards/margins"  # the figure that says whether DPO is working
        train_steps, values = chart.series["rewards/margins"][False]
        assert train_steps == [e["step"] for e in steps] and values == [e["rewards/margins"] for e in steps]
        evals = [e for e in events if e["kind"] == "eval"]
        if evals:  # eval_rewards/margins lands on the same chart as eval points
            assert chart.series["rewards/margins"][True][1] == [e["eval_rewards/margins"] for e in evals]
        assert any("rewards/margins (" in line for line in screen_lines(app))
        seen = [chart.current]
        for _ in range(len(chart.names)):
            await pilot.press("m")
            await pilot.pause()
            seen.append(chart.current)
        assert seen[-1] == seen[0] and set(seen) == set(chart.names)  # m visits every metric, then wraps
        await pilot.press("m")
        await pilot.pause()
        assert any(f"{chart.current} (" in line for line in screen_lines(app))

    drive(app, drive_steps)


def test_any_method_metric_is_picked_up_generically() -> None:
    """PPO-style keys (not known to the chart) are metrics too; what the screen already shows is not."""
    event = {"ts": 1.0, "kind": "step", "step": 4, "loss": 0.1, "lr": 1e-4, "grad_norm": 0.5, "epoch": 0.1,
             "tokens_per_s": 9.0, "objective/kl": 0.02, "policy_loss": -0.1, "value_loss": 0.3, "clipfrac": 0.0,
             "flag": True, "note": "x", "nan": float("nan")}  # fmt: skip
    assert [m for m, _, _ in metric_points(event)] == ["objective/kl", "policy_loss", "value_loss", "clipfrac"]
    evaluation = {"kind": "eval", "step": 4, "eval_loss": 0.2, "eval_runtime": 3.0, "eval_reward": 0.7, "eval_samples_per_second": 2.0}
    assert list(metric_points(evaluation)) == [("reward", 0.7, True)]

