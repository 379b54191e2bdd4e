"""One GGUF's conversation: loads a llama.cpp session and streams replies in a thread (elia's shape).

The transcript is one Static per message, so a finished message never renders again. The stream
thread only buffers chunks and posts ReplyGrew; a queued ReplyGrew is replaced by the next one
(``can_replace``), so however fast tokens come the UI folds what has arrived in one update.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from tunedeck.tui.workers import background, ml_turn


@dataclass
class ReplyGrew(Message):
    """Chunks of the reply in progress are waiting in the pane's buffer (one queued at a time)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ReplyGrew)


@dataclass
class GgufLoaded(Message):
    """The pane's worker loaded ``path`` into ``session``, or ``problem`` says why not."""

    session: Any
    path: Path
    problem: str = ""


@dataclass
class ReplyEnded(Message):
    """The reply's stream ended; ``note`` says how when it did not simply finish ("stopped", "generation failed")."""

    note: str


class ChatPane(VerticalScroll):
    """Transcript of one model; ``ask`` streams the reply chunk by chunk; ``stop`` ends it between chunks."""

    COMPONENT_CLASSES = {"chat--user", "chat--model", "chat--note"}
    DEFAULT_CSS = """
    ChatPane { border: round $primary; }
    ChatPane .chat--user { color: $text-accent; text-style: bold; }
    ChatPane .chat--model { color: $foreground; }
    ChatPane .chat--note { color: $text-muted; }
    ChatPane Static { height: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path: Path | None = None
        self.session: Any = None
        self.messages: list[dict[str, str]] = []
        self.reply = ""
        self.note = "no GGUF chosen: press g"
        self.stopping = False
        self.busy = False
        self.updates = 0  # reply renders of the current stream (chunks are folded into fewer)
        self._chunks: list[str] = []
        self._chunks_lock = threading.Lock()
        self._loading: Path | None = None  # the GGUF the last choose() asked for

    def compose(self):
        yield Static(id="chat-reply", markup=False)
        yield Static(id="chat-note", markup=False)

    def on_mount(self) -> None:
        self._show_reply()
        self._show_note()

    def _line(self, role: str, content: str, cursor: str = "") -> Text:
        who = "you" if role == "user" else "model"
        text = Text()
        text.append(f"{who}: ", style=self.get_component_rich_style("chat--user" if who == "you" else "chat--model"))
        text.append(content + cursor, style=self.get_component_rich_style("chat--model"))
        return text

    def _add_message(self, role: str, content: str) -> None:
        self.messages.append({"role": role, "content": content})
        self.mount(Static(self._line(role, content), classes="chat-message", markup=False), before="#chat-reply")

    def _show_reply(self) -> None:
        reply = self.query_one("#chat-reply", Static)
        reply.display = self.busy
        if self.busy:
            reply.update(self._line("assistant", self.reply, "▌"))
            self.updates += 1
        self.scroll_end(animate=False)

    def _show_note(self) -> None:
        note = self.query_one("#chat-note", Static)
        note.update(Text(self.note, style=self.get_component_rich_style("chat--note")))
        note.display = bool(self.note)
        self.scroll_end(animate=False)

    def choose(self, path: Path) -> None:
        """Load ``path`` (closing the previous session) in a thread."""
        if self.busy:
            self.notify("wait for the reply to end (escape stops it)", severity="warning")
            return
        self.border_title = path.name
        self.note = f"loading {path.name}..."
        self._show_note()
        previous, self.session, self._loading = self.session, None, path
        self._load(path, previous)

    @background("chat-load", exclusive=True)
    def _load(self, path: Path, previous: Any) -> None:
        from tunedeck.engine.chat import ChatSession

        if previous is not None:
            previous.close()  # free the llama.cpp session before the next one loads
        try:
            with ml_turn(self, "loading the GGUF"):
                session = ChatSession(path)
        except (OSError, ValueError) as e:  # no such file, or llama.cpp refuses it: said in the pane
            self.post_message(GgufLoaded(None, path, f"cannot load {path.name}: {e}"))
            return
        self.post_message(GgufLoaded(session, path))

    def on_gguf_loaded(self, message: GgufLoaded) -> None:
        message.stop()
        if message.path != self._loading:  # another GGUF was chosen while this one loaded
            if message.session is not None:
                message.session.close()
            return
        self.session, self.path = message.session, message.path if message.session else None
        self.note = message.problem or f"{message.path.name} ready"
        self._show_note()

    def ask(self, prompt: str, system: str, settings: dict[str, Any]) -> None:
        """Append the user's message and stream the reply."""
        if self.session is None:
            self.note = "no GGUF loaded: press g to pick one"
            self._show_note()
            return
        if self.busy:
            return
        self._add_message("user", prompt)
        convo = ([{"role": "system", "content": system}] if system else []) + self.messages
        self.busy, self.stopping, self.reply, self.note, self.updates = True, False, "", "", 0
        self._show_note()
        self._show_reply()
        self._stream(convo, settings)

    @background("chat-stream")
    def _stream(self, convo: list[dict[str, str]], settings: dict[str, Any]) -> None:
        note, stopped = "generation failed", False  # an unexpected error keeps this note and goes on to report_error
        try:
            for chunk in self.session.stream(convo, **settings):
                with self._chunks_lock:
                    self._chunks.append(chunk)
                self.post_message(ReplyGrew())
                if self.stopping:
                    stopped = True
                    break
            note = "stopped" if stopped else ""
        except (OSError, RuntimeError, ValueError) as e:  # llama.cpp's (context full, decode failed): the session stays
            note = f"generation failed: {e}"
        finally:
            self.post_message(ReplyEnded(note))

    def _take_chunks(self) -> None:
        with self._chunks_lock:
            chunks, self._chunks = self._chunks, []
        self.reply += "".join(chunks)

    def on_reply_grew(self, message: ReplyGrew) -> None:
        message.stop()
        if self.busy:
            self._take_chunks()
            self._show_reply()

    def on_reply_ended(self, message: ReplyEnded) -> None:
        message.stop()
        self._take_chunks()
        self.busy, self.note = False, message.note
        self._add_message("assistant", self.reply)
        self.reply = ""
        self._show_reply()
        self._show_note()

    def stop(self) -> None:
        """Ask the stream to end after the current chunk."""
        self.stopping = True

    def clear(self) -> None:
        """Forget the conversation (the model stays loaded)."""
        if not self.busy:
            self.messages, self.note = [], "cleared"
            self.query(".chat-message").remove()
            self._show_note()

    def close(self) -> None:
        """Free the llama.cpp session."""
        if self.session is not None:
            self.session.close()
            self.session = None

    def on_unmount(self) -> None:
        self.stopping = True
        if not self.busy:
            self.close()
