"""Background work in the TUI: one decorator for thread workers, one error path, one queue for ML work.

- ``@background(group=...)``: Textual's thread worker whose uncaught exception becomes a
  notification and a line (with the traceback) in ``tui.log`` in the user state dir, never silence.
- ``ml_turn(node, "the memory estimate")``: ML work from the screens (tokenizers, meta models,
  export, llama.cpp loads) runs one job at a time: transformers' lazy modules are not safe to
  import from two threads at once. A job that has to wait says what it waits for.
"""

from __future__ import annotations

import functools
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from textual import work

from tunedeck.tui.messages import QueueWaiting


def error_log_path() -> Path:
    from platformdirs import user_state_dir

    return Path(user_state_dir("tunedeck")) / "tui.log"


def report_error(app: Any, where: str, exc: BaseException) -> None:
    """Log ``exc`` with its traceback and notify the user (from any thread): the one error path, in any App."""
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    path = error_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {where} failed:\n{detail}\n")
        logged = f" (details in {path})"
    except OSError:
        logged = ""
    text = f"{where} failed: {type(exc).__name__}: {exc}{logged}"
    try:
        app.call_from_thread(app.notify, text, severity="error", markup=False, timeout=10)
    except RuntimeError:  # on the app's own thread (or the app is gone: the log line is what is left)
        if app.is_running:
            app.notify(text, severity="error", markup=False, timeout=10)


def background(group: str, *, exclusive: bool = False) -> Callable:
    """A thread worker (``exit_on_error=False``) whose escaping exception goes through report_error."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def guarded(self, *args, **kwargs):
            try:
                return fn(self, *args, **kwargs)
            except Exception as exc:
                report_error(self.app, group, exc)
                return None

        return work(thread=True, exclusive=exclusive, exit_on_error=False, group=group)(guarded)

    return decorate


class MLQueue:
    """One ML job at a time; re-entrant for the thread that holds it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._guard = threading.Lock()
        self.running: str | None = None
        self.waiting: list[str] = []

    @contextmanager
    def turn(self, what: str, on_wait: Callable[[str], None] = lambda m: None) -> Iterator[None]:
        if not self._lock.acquire(blocking=False):
            with self._guard:
                self.waiting.append(what)
                ahead = self.running
            if ahead != what:  # a newer request for the same view needs no word
                on_wait(f"{what}: waiting for {ahead or 'another ML job'} to finish")
            self._lock.acquire()
            with self._guard:
                self.waiting.remove(what)
        outer, self.running = self.running, what
        try:
            yield
        finally:
            self.running = outer
            self._lock.release()


ML_QUEUE = MLQueue()


def ml_turn(node: Any, what: str) -> Any:
    """``with ml_turn(self, "the template preview"):`` in a worker: wait for the ML queue, saying so."""
    app = node.app
    return ML_QUEUE.turn(what, lambda text: app.post_message(QueueWaiting(text)))
