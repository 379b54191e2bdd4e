"""What a chat template leaves out of a conversation: parts of a row that never reach the rendered text.

Some templates silently drop parts: a system message they never render (ChatGLM2; Mistral v0.3 and
Mistral-Nemo write it into the last user turn only when the conversation ends with the user), tool calls
they never write (Zephyr, DeepSeek-V2, Baichuan2, TRL's Llama 3 training template), tool-call arguments.
A model trained on such rows never sees those parts. Found by rendering: every message's text, every tool
call's function name and its arguments (as JSON in a common serialization, or each argument value) must
stand in the render; a tool call must add its name and arguments to the render of the same conversation
without tool calls (a tools list in the system prompt names the functions too). Past reasoning a template
leaves out on purpose (Qwen3 keeps only the last turn's) is the mask's business (train_on_reasoning), not
counted here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tunedeck.engine.templates.render import Render, TemplateRefused, chat_render, conversations, safe_render

KINDS = {"system": "system message", "user": "user message", "assistant": "assistant text", "tool": "tool result"}
CALLS, ARGUMENTS = "tool calls", "tool-call arguments"


@dataclass(frozen=True)
class Dropped:
    """One part of a row the template left out: its kind ("system message", "tool calls", ...) and message."""

    kind: str
    message: int
    name: str = ""  # the tool call's function name, for CALLS and ARGUMENTS

    def __str__(self) -> str:
        return f"{self.kind} (message {self.message}{', ' + self.name if self.name else ''})"


def _texts(content: Any) -> list[str]:
    """A message's text: the content string, or the text parts of a content list; stripped, empty ones left out."""
    if isinstance(content, str):
        parts = [content]
    elif isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    else:
        parts = []
    return [p.strip() for p in parts if p.strip()]


def _serialized(args: Any) -> list[str]:
    """``args`` as the common serializers write it: JSON (spaced, compact, sorted, indented, unicode), Python."""
    forms = [json.dumps(args, **kw) for kw in ({}, {"ensure_ascii": False}, {"separators": (",", ":")},
                                              {"ensure_ascii": False, "separators": (",", ":")}, {"sort_keys": True},
                                              {"indent": 2}, {"indent": 4}, {"ensure_ascii": False, "indent": 2})]  # fmt: skip
    return list(dict.fromkeys([*forms, str(args)]))


def _leaves(value: Any) -> list[list[str]]:
    """Each scalar of an arguments object, as the forms a template may write it."""
    if isinstance(value, dict):
        return [f for v in value.values() for f in _leaves(v)]
    if isinstance(value, list):
        return [f for v in value for f in _leaves(v)]
    if isinstance(value, str):
        return [list(dict.fromkeys([value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]]))] \
            if value.strip() else []  # fmt: skip
    return [list(dict.fromkeys([json.dumps(value), str(value)]))]


def _arguments(call: dict) -> Any:
    args = (call.get("function") or call).get("arguments")
    if isinstance(args, str):
        try:
            return json.loads(args)
        except ValueError:
            return args
    return args


def _added(full: str, base: str, forms: list[str]) -> bool:
    """Whether some form stands in ``full`` more often than in ``base`` (the render without tool calls)."""
    return any(f and full.count(f) > base.count(f) for f in forms)


def _calls(messages: list[dict], full: str, base: str) -> list[Dropped]:
    out = []
    for k, m in enumerate(messages):
        for call in m.get("tool_calls") or []:
            name = str((call.get("function") or call).get("name") or "")
            if name and not _added(full, base, [name]):
                out.append(Dropped(CALLS, k, name))
                continue
            args = _arguments(call)
            if not args:
                continue
            raw = [args] if isinstance(args, str) else _serialized(args)
            leaves = _leaves(args) if not isinstance(args, str) else []
            if not _added(full, base, raw) and not (leaves and all(_added(full, base, forms) for forms in leaves)):
                out.append(Dropped(ARGUMENTS, k, name))
    return out


def dropped_in(render: Render, messages: list[dict]) -> list[Dropped]:
    """The parts of ``messages`` that ``render`` (no generation prompt) leaves out; TemplateRefused if it raises."""
    full = safe_render(render, messages, False)
    pool = [t for m in messages for t in _texts(m.get("content"))]
    out = []
    for k, m in enumerate(messages):
        for text in _texts(m.get("content")):  # a text inside another message's text must stand there too
            if full.count(text) < sum(p.count(text) for p in pool):
                role = str(m.get("role"))
                out.append(Dropped(KINDS.get(role, f"{role} message"), k))
                break
    if any(m.get("tool_calls") for m in messages):
        try:
            base = render([{k: v for k, v in m.items() if k != "tool_calls"} for m in messages], False)
        except Exception:  # the template needs the calls it is given: whatever the full render holds counts
            base = ""
        out += _calls(messages, full, base)
    return out


def dropped_parts(tokenizer, row: dict, template: str) -> list[Dropped]:
    """What ``template`` leaves out of a normalized row (TemplateRefused when it raises on the row)."""
    out: list[Dropped] = []
    for messages, tools in conversations(row):
        out += [d for d in dropped_in(chat_render(tokenizer, template, tools), messages) if d not in out]
    return out


def count_dropped(tokenizer, rows: Iterable[tuple[Any, dict]], template: str) -> dict[str, dict[str, Any]]:
    """{kind: {"rows": how many of ``rows`` ((where, row) pairs) lose it, "example": the first one's where}}.
    Rows the template refuses are not counted (they are reported as refused)."""
    out: dict[str, dict[str, Any]] = {}
    for where, row in rows:
        try:
            kinds = dict.fromkeys(d.kind for d in dropped_parts(tokenizer, row, template))
        except TemplateRefused:
            continue
        for kind in kinds:
            out.setdefault(kind, {"rows": 0, "example": str(where)})["rows"] += 1
    return out


def drops_line(counts: dict[str, dict[str, Any]]) -> str:
    """``template drops: system message in 12 rows (e.g. data.jsonl:3); …: a model trained on them never sees
    these``; "" when nothing is dropped."""
    if not counts:
        return ""
    parts = [
        f"{kind} in {c['rows']:,} row{'s' if c['rows'] != 1 else ''} (e.g. {c['example']})"
        for kind, c in counts.items()
    ]
    return "template drops: " + "; ".join(parts) + ": a model trained on them never sees these"


def row_drops_line(drops: list[Dropped]) -> str:
    """The same for one row: ``template drops: system message (message 0); …: a model trained on this row …``."""
    if not drops:
        return ""
    return "template drops: " + "; ".join(map(str, drops)) + ": a model trained on this row never sees them"
