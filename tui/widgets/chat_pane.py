"""One GGUF's conversation: loads a llama.cpp session and streams replies in a thread (elia's shape)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.containers import VerticalScroll
from textual.widgets import Static


class ChatPane(VerticalScroll):
    """Transcript of one model; ``ask`` streams the reply chunk by chunk; ``stop`` ends it between chunks."""

    COMPONENT_CLASSES = {"chat--user", "chat--model", "chat--note"}
    DEFAULT_CSS = """
    ChatPane { border: round $primary; }
    ChatPane .chat--user { color: $text-accent; text-style: bold; }
    ChatPane .chat--model { color: $foreground; }
    ChatPane .chat--note { color: $text-muted; }
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

    def compose(self):
        yield Static(id="transcript")

    def on_mount(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        """Render the transcript (messages, the reply in progress, a status note)."""
        styles = {k: self.get_component_rich_style(f"chat--{k}") for k in ("user", "model", "note")}
        text = Text()
        for m in self.messages:
            if m["role"] == "system":
                continue
            who = "you" if m["role"] == "user" else "model"
            text.append(f"{who}: ", style=styles["user" if who == "you" else "model"])
            text.append(m["content"] + "\n", style=styles["model"])
        if self.busy:
            text.append("model: ", style=styles["model"])
            text.append(self.reply + "▌\n", style=styles["model"])
        if self.note:
            text.append(self.note, style=styles["note"])
        self.query_one("#transcript", Static).update(text)
        self.scroll_end(animate=False)

    def choose(self, path: Path) -> None:
        """Load ``path`` (closing the previous session) in a thread."""
        if self.busy:
            self.notify("wait for the reply to end (escape stops it)", severity="warning")
            return
        self.border_title = path.name
        self.note = f"loading {path.name}..."
        self.redraw()
        self._load(path)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-load")
    def _load(self, path: Path) -> None:
        from engine.chat import ChatSession
        from tui.screens.base import ML_LOCK

        self.close()
        try:
            with ML_LOCK:
                session = ChatSession(path)
        except Exception as e:  # a bad file is reported in the pane
            self.app.call_from_thread(self._loaded, None, path, f"cannot load {path.name}: {e}")
            return
        self.app.call_from_thread(self._loaded, session, path, "")

    def _loaded(self, session: Any, path: Path, problem: str) -> None:
        self.session, self.path = session, path if session else None
        self.note = problem or f"{path.name} ready"
        self.redraw()

    def ask(self, prompt: str, system: str, settings: dict[str, Any]) -> None:
        """Append the user's message and stream the reply."""
        if self.session is None:
            self.note = "no GGUF loaded: press g to pick one"
            self.redraw()
            return
        if self.busy:
            return
        self.messages.append({"role": "user", "content": prompt})
        convo = ([{"role": "system", "content": system}] if system else []) + self.messages
        self.busy, self.stopping, self.reply, self.note = True, False, "", ""
        self.redraw()
        self._stream(convo, settings)

    @work(thread=True, exit_on_error=False, group="chat-stream")
    def _stream(self, convo: list[dict[str, str]], settings: dict[str, Any]) -> None:
        note = ""
        try:
            for chunk in self.session.stream(convo, **settings):
                self.app.call_from_thread(self._append, chunk)
                if self.stopping:
                    note = "stopped"
                    break
        except Exception as e:  # shown in the pane; the session stays usable
            note = f"generation failed: {e}"
        self.app.call_from_thread(self._finish, note)

    def _append(self, chunk: str) -> None:
        self.reply += chunk
        self.redraw()

    def _finish(self, note: str) -> None:
        self.messages.append({"role": "assistant", "content": self.reply})
        self.busy, self.reply, self.note = False, "", note
        self.redraw()

    def stop(self) -> None:
        """Ask the stream to end after the current chunk."""
        self.stopping = True

    def clear(self) -> None:
        """Forget the conversation (the model stays loaded)."""
        if not self.busy:
            self.messages, self.note = [], "cleared"
            self.redraw()

    def close(self) -> None:
        """Free the llama.cpp session."""
        if self.session is not None:
            self.session.close()
            self.session = None

    def on_unmount(self) -> None:
        self.stopping = True
        if not self.busy:
            self.close()
