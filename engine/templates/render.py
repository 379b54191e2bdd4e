"""Rendering a conversation through the tokenizer's own sandboxed Jinja renderer (transformers'
``apply_chat_template``), and the ``{% generation %}`` markers that steer the loss mask."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

Render = Callable[[list[dict[str, Any]], bool], str]  # (messages, add_generation_prompt) -> the text

_GENERATION_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


class TemplateRefused(ValueError):
    """The chat template raised on this conversation: its own message (e.g. "System role not supported"), and
    what it needed that the row lacks when that is known (tunedeck.engine.templates.refusals). ``error``: what
    the template raised."""

    def __init__(self, message: str, error: BaseException | None = None) -> None:
        super().__init__(message)
        self.error = error


def strip_generation_markers(template: str) -> str:
    """Remove ``{% generation %}`` markers: they only steer the loss mask, never the rendered text.

    Inference engines (llama.cpp, Ollama) do not know the tag, so exported templates go without it.
    """
    return _GENERATION_TAG.sub("", template)


def has_generation_markers(template: str | None) -> bool:
    """True when the template marks assistant spans for assistant-only loss."""
    return bool(template) and _GENERATION_TAG.search(template) is not None


def refusal(e: BaseException, why: str = "") -> str:
    """The template's own words for raise_exception(), the error's kind too for anything else (SecurityError: ...);
    ``why``: what the template needed that the row lacks (tunedeck.engine.templates.refusals.explain)."""
    text = str(e).strip()
    if type(e).__name__ == "TemplateError" and text:
        return f'the template raises "{text}": {why}' if why else text
    return f"{type(e).__name__}: {text}" + (f": {why}" if why else "")


def safe_render(render: Render, messages: list, generation_prompt: bool) -> str:
    """``render``, with TemplateRefused (the template's own words) for whatever it raises."""
    try:
        return render(messages, generation_prompt)
    except Exception as e:  # jinja2 raise_exception(), TypeError on missing inputs, ...
        raise TemplateRefused(refusal(e), e) from None


def chat_render(tokenizer, template: str, tools: list | None = None, **template_kwargs: Any) -> Render:
    """The tokenizer's own (sandboxed Jinja) renderer for ``template``, with ``tools`` when the rows carry them
    (``template_kwargs``: more variables for the template, over the tokenizer's special tokens)."""

    def render(messages: list, generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=generation_prompt,
            **({"tools": tools} if tools else {}), **template_kwargs,
        )  # fmt: skip

    return render


def render_chat_ids(tokenizer, messages: list, template: str, *, generation_prompt: bool = False, mask: bool = False,
                    tools: list | None = None) -> tuple[list[int], list[bool]]:  # fmt: skip
    """(token ids, the template's {% generation %} mask) of ``messages``; the mask all False without markers."""
    out = tokenizer.apply_chat_template(
        messages,
        chat_template=template,
        tokenize=True,
        return_dict=True,
        add_generation_prompt=generation_prompt,
        return_assistant_tokens_mask=mask and has_generation_markers(template),
        **({"tools": tools} if tools else {}),
    )
    ids = list(out["input_ids"])
    masks = out.get("assistant_masks")
    return ids, [bool(m) for m in masks] if masks is not None else [False] * len(ids)


def chat_text(tokenizer, messages: list, template: str, *, generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=generation_prompt
    )


def template_inputs(row: dict) -> tuple[list[dict], list | None]:
    """(messages, tools) as a chat template reads them, from a normalized row: fields a row lacks (None in
    the dataset's one schema) are dropped, tool calls and tools decoded from their JSON text."""

    def decoded(value):
        return json.loads(value) if isinstance(value, str) else value

    messages = [
        {k: decoded(v) if k == "tool_calls" else v for k, v in m.items() if v is not None} for m in row["messages"]
    ]
    return messages, decoded(row.get("tools")) or None


def conversations(row: dict) -> list[tuple[list[dict], list | None]]:
    """The chat conversations a normalized row trains on, as (messages, tools): a ``messages`` row's one; a
    chat prompt joined with each chat completion, chosen and rejected answer. [] for other rows."""
    if "messages" in row:
        return [template_inputs(row)]
    prompt = row.get("prompt")
    if not isinstance(prompt, list):
        return []
    return [template_inputs({"messages": prompt + row[k], "tools": row.get("tools")})
            for k in ("completion", "chosen", "rejected") if isinstance(row.get(k), list)]  # fmt: skip
