"""A modal with one dataset row: where it is, the raw line, the normalized row and its errors."""

from __future__ import annotations

import json
from itertools import islice
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def raw_line(file: str | None, line: int | None) -> str | None:
    """Line ``line`` (1-based) of ``file`` as written, or None when not line-oriented."""
    if not file or line is None:
        return None
    try:
        with open(file, encoding="utf-8", errors="replace") as f:
            return next(islice(f, line - 1, line), "").rstrip("\n")
    except OSError:
        return None


def _decoded(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def message_lines(message: dict) -> list[str]:
    """One message as the template will see it: its reasoning, its text, each tool call and what it answers."""
    role = message.get("role", "?")
    head = f"{role}" + (f" (answers {message['tool_call_id']})" if message.get("tool_call_id") else "")
    lines = []
    if message.get("reasoning_content"):
        lines.append(f"{head} [reasoning]: {message['reasoning_content']}")
    if message.get("content") or not message.get("tool_calls"):
        lines.append(f"{head}: {message.get('content') or ''}")
    for call in _decoded(message.get("tool_calls")) or []:
        fn = call.get("function", call) if isinstance(call, dict) else {}
        args = json.dumps(fn.get("arguments"), ensure_ascii=False) if not isinstance(fn.get("arguments"), str) else fn["arguments"]
        lines.append(f"{head} [tool call{' ' + call['id'] if call.get('id') else ''}]: {fn.get('name')}({args})")
    return lines


def turn_lines(row: Any) -> list[str]:
    """The conversation parts of a normalized row (messages, prompt/completion/chosen/rejected), tools first."""
    if not isinstance(row, dict):
        return []
    out = [f"tools: {', '.join(str(t.get('function', t).get('name')) for t in _decoded(row['tools']))}"] if row.get("tools") else []
    for key in ("messages", "prompt", "completion", "chosen", "rejected"):
        value = row.get(key)
        if isinstance(value, list):
            out += [f"{key}:" if key != "messages" else "", *(f"  {line}" for m in value if isinstance(m, dict) for line in message_lines(m))]
    return [line for line in out if line]


class RowViewScreen(ModalScreen[None]):
    """Escape closes; the text scrolls with the arrows."""

    BINDINGS = [Binding("escape,enter", "dismiss", "Close", id="close-row", tooltip="Back to the table")]

    def __init__(self, title: str, raw: str | None, normalized: Any, errors: list[str]) -> None:
        super().__init__()
        self.title_text, self.raw, self.normalized, self.errors = title, raw, normalized, errors

    def compose(self) -> ComposeResult:
        parts = [self.title_text]
        if self.errors:
            parts += ["", "errors:", *(f"  {e}" for e in self.errors)]
        if self.raw is not None:
            parts += ["", "raw:", self.raw]
        turns = turn_lines(self.normalized)
        if turns:
            parts += ["", "turns (reasoning and tool calls as the chat template gets them):", *turns]
        if self.normalized is not None:
            parts += ["", "normalized:", json.dumps(self.normalized, indent=2, ensure_ascii=False, default=str)]
        with VerticalScroll(id="dialog"):
            yield Static("\n".join(parts), markup=False, id="row-text")
