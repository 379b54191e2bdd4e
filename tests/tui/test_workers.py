"""Background work in the TUI: an exception in any worker is seen, ML jobs queue and say so, chat folds chunks."""

from __future__ import annotations

import re
import threading
import time

from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Static

from tests.helpers import ROOT, drive, make_run, record_notifications, settle, write_workspace
from tunedeck.tui.widgets.chat_pane import ChatPane
from tunedeck.tui.workers import ML_QUEUE, MLQueue, background


class Broken(Static):
    @background("broken-job")
    def explode(self) -> None:
        raise ValueError("row 3 has no answer")


class OneWidget(App):
    def __init__(self, widget) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


def test_an_exception_in_a_worker_is_a_notification_and_a_log_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    app = OneWidget(Broken())
    seen = record_notifications(app, monkeypatch)

    async def steps(pilot: Pilot) -> None:
        app.widget.explode()
        await app.workers.wait_for_complete()
        await pilot.pause()
        texts = [message for _, message in seen]
        assert any("broken-job failed: ValueError: row 3 has no answer" in t for t in texts), texts

    drive(app, steps)
    log = (tmp_path / "tunedeck" / "tui.log").read_text()
    assert "broken-job failed:" in log and "Traceback" in log and "row 3 has no answer" in log


def test_every_tui_worker_goes_through_the_one_error_path() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "tui").rglob("*.py")
                 if p.name != "workers.py" and re.search(r"@work\b|run_worker\(", p.read_text())]  # fmt: skip
    assert not offenders


def test_an_ml_job_that_has_to_wait_says_what_it_waits_for() -> None:
    queue, said, order = MLQueue(), [], []
    release = threading.Event()

    def export() -> None:
        with queue.turn("the export"):
            order.append("export")
            release.wait(5)

    def estimate() -> None:
        with queue.turn("the memory estimate", said.append):
            order.append("estimate")

    first = threading.Thread(target=export)
    first.start()
    while queue.running != "the export":
        time.sleep(0.01)
    second = threading.Thread(target=estimate)
    second.start()
    while not said:
        time.sleep(0.01)
    assert said == ["the memory estimate: waiting for the export to finish"] and queue.waiting == ["the memory estimate"]
    release.set()
    first.join(5)
    second.join(5)
    assert order == ["export", "estimate"] and queue.running is None and queue.waiting == []
    with ML_QUEUE.turn("a screen's job"), ML_QUEUE.turn("the same thread again"):  # re-entrant: no deadlock
        assert ML_QUEUE.running == "the same thread again"


class FastStream:
    """A session that emits 500 chunks as fast as it can (the pane's folding is under test, not llama.cpp)."""

    def stream(self, convo, **settings):
        for i in range(500):
            yield f" t{i}"

    def close(self) -> None:
        pass


def test_a_500_chunk_reply_is_folded_into_far_fewer_renders() -> None:
    pane = ChatPane()
    app = OneWidget(pane)

    async def steps(pilot: Pilot) -> None:
        pane.session = FastStream()
        pane.ask("count", "", {})
        for _ in range(200):
            await pilot.pause(0.02)
            if not pane.busy:
                break
        assert pane.messages[-1]["content"] == "".join(f" t{i}" for i in range(500))
        assert pane.updates < 100, pane.updates  # one per fold, not one per chunk
        assert len(pane.query(".chat-message")) == 2  # appended: user and model, one widget each

    drive(app, steps)


def test_no_worker_queries_or_updates_a_widget(tmp_path, demo_assets, monkeypatch) -> None:
    """Every screen's workers (runs, data, token lengths, template, estimate, tail, GPU, ranks, export) report through
    a message: query_one and Static.update run on the UI thread only."""
    from textual.dom import DOMNode

    from tunedeck.tui.app import TunedeckApp
    from tunedeck.tui.screens import SCREEN_ORDER

    write_workspace(tmp_path / "ws", demo_assets.base)
    make_run(tmp_path / "ws")
    off_thread: list[str] = []
    real_query_one, real_update = DOMNode.query_one, Static.update

    def query_one(self, *args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            off_thread.append(f"query_one{args} on {type(self).__name__}")
        return real_query_one(self, *args, **kwargs)

    def update(self, *args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            off_thread.append(f"update of {type(self).__name__}#{self.id}")
        return real_update(self, *args, **kwargs)

    monkeypatch.setattr(DOMNode, "query_one", query_one)
    monkeypatch.setattr(Static, "update", update)
    app = TunedeckApp(workspace=tmp_path / "ws")

    async def steps(pilot: Pilot) -> None:
        for number in range(1, len(SCREEN_ORDER) + 1):
            await pilot.press(str(number))
            await settle(pilot, rounds=4)
        assert "tokens per row" in str(app.get_screen_stack("data")[0].query_one("#data-stats", Static).content)

    drive(app, steps)
    assert not off_thread, off_thread


def test_a_screen_job_that_waits_for_the_ml_queue_says_so_through_the_app(tmp_path, monkeypatch) -> None:
    from tunedeck.tui.app import TunedeckApp
    from tunedeck.tui.workers import ml_turn

    app = TunedeckApp(workspace=tmp_path)
    seen = record_notifications(app, monkeypatch)
    held, release = threading.Event(), threading.Event()

    def export() -> None:
        with ML_QUEUE.turn("the export"):
            held.set()
            release.wait(5)

    async def steps(pilot: Pilot) -> None:
        first = threading.Thread(target=export)
        first.start()
        held.wait(5)
        def preview() -> None:
            with ml_turn(app.screen, "the template preview"):
                pass

        second = threading.Thread(target=preview)
        second.start()
        deadline = time.time() + 10
        while "waiting" not in str(seen) and time.time() < deadline:  # the notice comes as a message, then notify
            await pilot.pause(0.05)
        release.set()
        first.join(5)
        second.join(5)
        assert ("information", "the template preview: waiting for the export to finish") in seen

    drive(app, steps)
