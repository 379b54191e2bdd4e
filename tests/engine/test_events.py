"""One formatter and one progress fold for run events: what attach, runs and the Train screen show."""

import ast
import json
import typing
from pathlib import Path

from tunedeck.engine.run.events import EventKind, RunProgress, format_event
from tunedeck.engine.units import fmt_bytes, fmt_duration


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
    from tests.helpers import make_run
    from tunedeck.engine.run.events import run_summary

    s = run_summary(make_run(tmp_path, steps=3, state="failed", error="OOM"))
    assert (s["state"], s["step_text"], s["loss_text"], s["error"]) == ("failed", "3/10", "1.5000", "OOM")


def test_every_kind_has_its_fields_and_an_unknown_kind_is_refused_before_the_file(tmp_path):
    import pytest

    from tests.helpers import make_run
    from tunedeck.engine.run.events import EVENT_FIELDS

    assert set(EVENT_FIELDS) == set(typing.get_args(EventKind))
    run = make_run(tmp_path, steps=1)
    before = run.events_path.read_bytes()
    with pytest.raises(ValueError, match="unknown event kind 'stepp'"):
        run.append_event("stepp", step=1)  # type: ignore[call-overload]
    assert run.events_path.read_bytes() == before
    event = run.append_event("checkpoint", step=3, path="c/step-3")
    line = run.events_path.read_bytes()[len(before) :]
    assert json.loads(line) == event and list(event) == ["ts", "kind", "step", "path"]  # the format older runs have


def _writes(path):
    """(kind, keyword names, whether it spreads **fields, file:line) of every append_event call with a literal kind."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "append_event" and node.args
                and isinstance(node.args[0], ast.Constant)):  # fmt: skip
            names = {k.arg for k in node.keywords if k.arg}
            yield node.args[0].value, names, any(k.arg is None for k in node.keywords), f"{path}:{node.lineno}"


def test_every_writer_writes_the_fields_its_kind_declares():
    """What a type checker says of append_event's overloads, checked here on every call in engine/, tui/, bench/:
    a known kind, no field its TypedDict lacks, and every required one (unless the call spreads a dict in)."""
    from tunedeck.engine.run.events import EVENT_FIELDS

    root = Path(__file__).parents[2]
    calls = [w for d in ("engine", "tui", "bench") for p in sorted((root / d).rglob("*.py")) for w in _writes(p)]
    assert {kind for kind, *_ in calls} >= {"step", "checkpoint", "failed", "export_stage", "warning"}
    for kind, names, spreads, where in calls:
        fields = EVENT_FIELDS.get(kind)
        assert fields is not None, f"{where}: unknown kind {kind!r}"
        if getattr(fields, "__extra_items__", None) is None:
            assert names <= set(fields.__annotations__), f"{where}: {kind} has no {names - set(fields.__annotations__)}"
        if not spreads:
            assert fields.__required_keys__ <= names, f"{where}: {kind} lacks {fields.__required_keys__ - names}"


def test_follow_yields_from_the_offset_then_live_events_and_ends_after_the_last_one(tmp_path):
    import os
    import threading

    from tests.helpers import make_run
    from tunedeck.engine.run.events import follow

    run = make_run(tmp_path, steps=2, state="running", pid=os.getpid())  # a live worker
    _, since = run.read_events()
    run.append_event("warning", message="after the offset")

    def finish():
        run.append_event("checkpoint", step=3, path="c")
        run.append_event("finished", step=3, output="adapter")
        run.write_status(state="finished")

    writer = threading.Timer(0.3, finish)
    writer.start()
    kinds = [e["kind"] for e in follow(run, since, poll=0.05)]  # the default end: finished, no export running
    writer.join()
    assert kinds == ["warning", "checkpoint", "finished"]
    assert [e["kind"] for e in follow(run, 0, poll=0.05)][-1] == "finished"  # an ended run: its history, then done
    calls = []
    assert list(follow(run, since, until=lambda: calls.append(1) or True)) and calls == [1]  # one last read after it
