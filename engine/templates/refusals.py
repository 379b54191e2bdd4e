"""Why a chat template refused a row: what the template needed, what the row lacked.

A template's raise_exception() has words of its own; every other Jinja error a real template raises on a
valid row ("'NoneType' object is not iterable", "'functions' is undefined", "'str object' has no attribute
'text'") names the template's machinery, not the row. ``explain`` maps each to the template's need and the
row's part, with what to do; "" when it cannot say more than the error does.
"""

from __future__ import annotations

import re
from typing import Any

from tunedeck.engine.templates.render import (
    TemplateRefused,
    conversations,
    refusal,
    strip_generation_markers,
    template_inputs,
)

# The variables transformers' apply_chat_template passes to every template (tools and documents as None when
# the row has none); anything else a template reads must come from its caller.
PASSED = ("messages", "tools", "documents", "add_generation_prompt", "bos_token", "eos_token", "strftime_now",
          "raise_exception")  # fmt: skip
_CHOOSE = "choose the model's default template (template.name: model) or a built-in"


def _iterated(template: str) -> list[str]:
    """The variables (dotted) the template's for-loops iterate over, in order, from its parsed syntax tree."""
    from jinja2 import nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        tree = ImmutableSandboxedEnvironment(extensions=["jinja2.ext.loopcontrols"]).parse(
            strip_generation_markers(template)
        )
    except Exception:  # a template transformers accepts may use tags plain Jinja lacks: no names then
        return []

    def dotted(node) -> str:
        if isinstance(node, nodes.Name):
            return node.name
        if isinstance(node, nodes.Getattr):
            return f"{dotted(node.node)}.{node.attr}"
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            return f"{dotted(node.node)}.{node.arg.value}"
        if isinstance(node, nodes.Filter) and node.node is not None:
            return dotted(node.node)
        return ""

    return list(dict.fromkeys(name for f in tree.find_all(nodes.For) if (name := dotted(f.iter))))


def _roles(messages: list[dict]) -> str:
    return " → ".join(str(m.get("role")) for m in messages)


def _none_iterated(template: str, messages: list[dict], tools: list | None) -> str:
    lacking = {"tools": tools, "documents": None}
    names = [n for n in _iterated(template) if n in lacking and lacking[n] is None]
    if names:
        name = names[0]
        return f"this template iterates over `{name}`; the row has none: add a {name} column or {_CHOOSE}"
    return ""


def _undefined(text: str, template: str, messages: list[dict], tools: list | None) -> str:
    if m := re.search(r"'(\w+)' is undefined", text):
        name = m.group(1)
        if name.endswith("_token"):
            return f"the template reads `{name}`, which this model's tokenizer does not define: {_CHOOSE}"
        return (f"the template reads `{name}`, which no row field provides (a template gets {', '.join(PASSED[:4])} "
                f"and the tokenizer's special tokens): the model's serving code passes it; {_CHOOSE}")  # fmt: skip
    if re.search(r"'?str object'? has no (attribute|element)", text):
        return ("the template expects each message's content as a list of parts ([{\"type\": \"text\", \"text\": "
                f"…}}], a vision-language format); this row's content is plain text: {_CHOOSE}")  # fmt: skip
    if m := re.search(r"'?(dict|list) object'? has no (?:attribute|element) '?([\w ]+?)'?$", text):
        key = m.group(2)
        reads = re.search(r"(\w+)\s*(?:\.\s*" + re.escape(key) + r"\b|\[\s*['\"]" + re.escape(key) + r"['\"]\s*\])",
                          template)  # fmt: skip
        what = f"`{reads.group(1)}.{key}`" if reads else f"`{key}`"
        lack = [f"message {i} ({msg.get('role')})" for i, msg in enumerate(messages) if key not in msg]
        owner = reads.group(1) if reads else ""
        if "tool" in owner and tools and "call" not in owner:
            where = "the row's tools do not have it (they are in another shape than the template expects)"
        elif lack and ("message" in owner or not owner) and len(lack) < len(messages):
            where = f"{', '.join(lack[:3])} {'has' if len(lack) == 1 else 'have'} none"
        else:
            where = "the row does not have it"
        return f"the template reads {what}; {where}"
    return ""


def explain(error: BaseException, template: str | None, messages: list[dict] | None = None,
            tools: list | None = None) -> str:  # fmt: skip
    """What ``template`` needed that the row (``messages``, ``tools``) lacks, for the error it raised; "" if unknown."""
    if not template:
        return ""
    messages = messages or []
    kind, text = type(error).__name__, str(error).strip()
    if kind == "TemplateError":  # raise_exception(): the template's own words, a rule the row breaks
        return f"its own rule, which this row breaks (roles: {_roles(messages)})"
    if kind == "UndefinedError":
        return _undefined(text, template, messages, tools)
    if kind == "TypeError" and "NoneType" in text and "iterable" in text:
        return _none_iterated(template, messages, tools)
    if kind == "TypeError" and 'concatenate str (not "dict")' in text:
        if any(
            isinstance(c.get("function", {}).get("arguments"), dict)
            for m in messages
            for c in m.get("tool_calls") or []
        ):
            return ("the template joins tool-call `arguments` to text: it expects them as a JSON string; this row's "
                    "are an object")  # fmt: skip
        return "the template joins an object to text: it expects a string where this row has an object"
    if kind == "SecurityError":
        return ("the template changes a value in place, which the sandbox that renders templates forbids: it cannot "
                f"be rendered for training as written; {_CHOOSE}")  # fmt: skip
    return ""


def inputs_of(row: dict[str, Any]) -> tuple[list[dict], list | None]:
    """(messages, tools) of any normalized row, for ``explain``: its first conversation (render.conversations)."""
    found = conversations(row)
    return found[0] if found else template_inputs({"messages": [], "tools": row.get("tools")})


def explained(e: BaseException, template: str | None, messages: list | None, tools: list | None) -> TemplateRefused:
    """TemplateRefused for what the template raised (a TemplateRefused: what it wraps), saying what the template
    needed that the row (``messages``, ``tools``) lacks."""
    error = e.error if isinstance(e, TemplateRefused) else e
    if error is None:
        return e
    return TemplateRefused(refusal(error, explain(error, template, messages, tools)), error)
