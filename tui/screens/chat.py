"""Chat: talk to an exported GGUF (streaming), or to two side by side on the same prompt."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Label

from tunedeck.engine.run.rundir import list_ggufs
from tunedeck.tui.screens.base import StudioScreen
from tunedeck.tui.widgets.chat_pane import ChatPane
from tunedeck.tui.widgets.field_form import parse_value


class ChatScreen(StudioScreen):
    """i types a prompt (enter sends); g/G pick the GGUF of the left/right pane; b shows both."""

    AUTO_FOCUS = "#pane-a"
    BINDINGS = [
        Binding("i", "focus_prompt", "Prompt", id="chat-prompt", tooltip="Type a message (enter sends)"),
        Binding("g", "pick(0)", "GGUF", id="chat-pick", tooltip="Use the next exported GGUF in the left pane"),
        Binding("G", "pick(1)", "GGUF B", id="chat-pick-b", tooltip="Use the next GGUF in the right pane"),
        Binding("b", "side_by_side", "Side by side", id="chat-both", tooltip="Show a second model on the same prompts"),
        Binding("escape", "stop", "Stop", id="chat-stop", tooltip="Stop the replies (or leave the prompt)"),
        Binding("ctrl+l", "clear", "Clear", id="chat-clear", tooltip="Clear both conversations"),
    ]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="chat-settings"):
            yield Label("system")
            yield Input(placeholder="system prompt", id="chat-system", compact=True)
            yield Label("temp")
            yield Input("0.0", id="chat-temperature", compact=True)
            yield Label("top-p")
            yield Input("1.0", id="chat-top-p", compact=True)
            yield Label("max")
            yield Input("256", id="chat-max-tokens", compact=True)
        with Horizontal(id="chat-panes"):
            yield ChatPane(id="pane-a")
            yield ChatPane(id="pane-b", classes="-hidden")
        yield Input(placeholder="i to type, enter sends", id="chat-input", compact=True)

    def ggufs(self) -> list[Path]:
        """Every exported GGUF of the workspace's runs, newest run first."""
        return list_ggufs(self.runs_dir)

    def panes(self) -> list[ChatPane]:
        """The visible panes."""
        return [p for p in self.query(ChatPane) if not p.has_class("-hidden")]

    def on_mount(self) -> None:
        files = self.ggufs()
        if files:
            self.query_one("#pane-a", ChatPane).choose(files[0])

    def action_pick(self, index: int) -> None:
        """Cycle the pane's GGUF through the exported files."""
        files = self.ggufs()
        if not files:
            self.notify("no GGUF yet: export a run (7)", severity="warning")
            return
        pane = self.query_one("#pane-b" if index else "#pane-a", ChatPane)
        if index:
            pane.remove_class("-hidden")
        nxt = files[(files.index(pane.path) + 1) % len(files)] if pane.path in files else files[min(index, len(files) - 1)]
        pane.choose(nxt)

    def action_side_by_side(self) -> None:
        """Toggle the second pane (it loads the next GGUF)."""
        pane = self.query_one("#pane-b", ChatPane)
        if pane.has_class("-hidden"):
            self.action_pick(1)
        else:
            pane.add_class("-hidden")

    def action_focus_prompt(self) -> None:
        """Focus the prompt."""
        self.query_one("#chat-input", Input).focus()

    def action_stop(self) -> None:
        """Stop streaming; when nothing streams, leave the input so the keys work again."""
        busy = [p for p in self.panes() if p.busy]
        for pane in busy:
            pane.stop()
        if not busy:
            self.query_one("#pane-a", ChatPane).focus()

    def action_clear(self) -> None:
        """Clear the conversations."""
        for pane in self.query(ChatPane):
            pane.clear()

    def settings(self) -> dict:
        """temperature, top_p and max_tokens from the inputs (defaults where unreadable)."""
        out = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 256}
        for key, wid, kind in (("temperature", "chat-temperature", float), ("top_p", "chat-top-p", float),
                               ("max_tokens", "chat-max-tokens", int)):  # fmt: skip
            value = parse_value(self.query_one(f"#{wid}", Input).value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = kind(value)
        return out

    @on(Input.Submitted, "#chat-input")
    def _send(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        if not prompt:
            return
        event.input.value = ""
        system = self.query_one("#chat-system", Input).value.strip()
        for pane in self.panes():
            pane.ask(prompt, system, self.settings())
