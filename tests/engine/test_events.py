"""One formatter and one progress fold for run events: what attach, runs and the Train screen show."""

import typing

from engine.events import EventKind, RunProgress, format_event
from engine.units import fmt_bytes, fmt_duration


def test_progress_folds_steps_into_a_line_with_bar_rate_and_eta():
    p = RunProgress()
    events = [
        {"kind": "started", "ts": 0.0},
        {"kind": "train_begin", "ts": 1.0, "step": 0, "max_steps": 10},
        {"kind": "step", "ts": 10.0, "step": 2, "loss": 1.5, "lr": 1e-3, "tokens_per_s": 900.0},
        {"kind": "step", "ts": 20.0, "step": 4, "loss": 1.25, "lr": 5e-4},
    ]
    for e in events:
        p.fold(e)
    assert p.eta() == "0:00:30"  # 2 steps per 10 s, 6 to go
    line = format_event(events[-1], p)
    assert line == "step 4/10  [########............]  40.0%  loss 1.2500  lr 5.00e-04  900 tok/s  ETA 0:00:30"
    assert p.eta("stopped") == "-"


def test_every_kind_the_worker_writes_is_named_and_the_user_facing_ones_read_as_lines():
    kinds = set(typing.get_args(EventKind))
    assert {"step", "eval", "checkpoint", "failed", "finished", "export"} <= kinds
    assert format_event({"kind": "gpu", "devices": []}) is None  # charts only
    assert format_event({"kind": "failed", "error": "OOM", "hint": "lower the batch"}) == "FAILED: OOM\nhint: lower the batch"
    assert format_event({"kind": "step", "step": 3, "loss": 2.0, "lr": 0.1}) == "step 3/?  loss 2.0000  lr 1.00e-01"
    line = format_event({"kind": "checkpoint", "step": 5, "path": "c/step-5", "ts": 0.0}, clock=True)
    assert line.endswith(" checkpoint at step 5: c/step-5") and line[2] == ":"
    assert format_event({"kind": "eval", "step": 4, "eval_loss": 0.5}) == "eval at step 4: eval_loss=0.5"
    assert "F16 (2.0 MiB)" in format_event({"kind": "export", "files": [{"type": "F16", "size_bytes": 2 * 2**20}]})


def test_units():
    assert fmt_duration(3725) == "1:02:05" and fmt_duration(-3) == "0:00:00"
    assert fmt_bytes(3 * 2**20) == "3.0 MiB" and fmt_bytes(3 * 2**30) == "3.00 GiB"


def test_run_summary_is_what_runs_lists(tmp_path):
    from engine.events import run_summary
    from tests.helpers import make_run

    s = run_summary(make_run(tmp_path, steps=3, state="failed", error="OOM"))
    assert (s["state"], s["step_text"], s["loss_text"], s["error"]) == ("failed", "3/10", "1.5000", "OOM")
