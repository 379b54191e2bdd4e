"""Row-level validation: every problem of every row, as (field, kind, reason).

Kinds are stable strings for counting: missing, empty, wrong_type, unknown_role,
not_assistant_last, no_prompt, identical, mixed_forms, bad_tool_call, multimodal (plus invalid_json,
not_utf8 and wrong_type from the loader).
"""

from __future__ import annotations

from typing import Any

from tunedeck.engine.data.errors import json_type_name
from tunedeck.engine.data.formats import (
    MEDIA_COLUMNS,
    REASONING_PARTS,
    ROLES,
    SHAREGPT_ROLES,
    TEXT_PARTS,
    alpaca_fields,
    as_tool_calls,
    as_tools,
    conversation_key,
    is_openai_preference,
    label_key,
    no_calls,
    parse_label,
    split_implicit_prompt,
)

Problem = tuple[str, str, str]  # (field, kind, reason)


def _string(row: dict, key: str, out: list[Problem], required: bool = True, allow_empty: bool = False) -> None:
    value = row.get(key)
    if value is None:
        if required:
            out.append((key, "missing", "missing; add it, or map your column to it with data.columns"))
    elif not isinstance(value, str):
        out.append((key, "wrong_type", f"expected a string, got {json_type_name(value)}"))
    elif not allow_empty and not value.strip():
        out.append((key, "empty", "empty"))


def check_messages(
    value: Any,
    field: str,
    out: list[Problem],
    *,
    sharegpt: bool = False,
    must_end_with_assistant: bool = True,
) -> str | None:
    """Check a message list; returns the last turn's (normalized) role."""
    role_key, content_key = ("from", "value") if sharegpt else ("role", "content")
    allowed = SHAREGPT_ROLES if sharegpt else dict.fromkeys(ROLES)
    if not isinstance(value, list):
        out.append((field, "wrong_type", f"expected a list of messages, got {json_type_name(value)}"))
        return None
    if not value:
        out.append((field, "empty", "empty conversation"))
        return None
    last = None
    for i, message in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            out.append(
                (
                    where,
                    "wrong_type",
                    f"expected a message object {{{role_key}, {content_key}}}, got {json_type_name(message)}",
                )
            )
            last = None
            continue
        role, content = message.get(role_key), message.get(content_key)
        if role is None:
            out.append((f"{where}.{role_key}", "missing", "missing"))
            last = None
        elif not isinstance(role, str):
            out.append((f"{where}.{role_key}", "wrong_type", f"expected a string, got {json_type_name(role)}"))
            last = None
        elif role not in allowed:
            out.append(
                (f"{where}.{role_key}", "unknown_role", f"unknown role {role!r}; expected one of {', '.join(allowed)}")
            )
            last = None
        else:
            last = SHAREGPT_ROLES[role] if sharegpt else role
        calls = content if sharegpt and role == "function_call" else message.get("tool_calls")
        if no_calls(calls) and not (sharegpt and role == "function_call"):
            calls = None
        if calls is not None:
            try:
                if any(not c["function"]["name"] for c in as_tool_calls(calls)):
                    raise KeyError("name")
            except (ValueError, TypeError, KeyError, AttributeError):
                field_name = f"{where}.{content_key}" if sharegpt else f"{where}.tool_calls"
                out.append((field_name, "bad_tool_call", 'expected tool calls: {"name", "arguments"} objects (or '
                            'OpenAI\'s {"type": "function", "function": {...}}), one or a list, or their JSON'))  # fmt: skip
                continue
        if calls and (not content or role == "function_call"):  # a turn that only calls tools has no text of its own
            continue
        if isinstance(content, list):
            _check_parts(content, f"{where}.{content_key}", out)
            continue
        if content is None:
            out.append((f"{where}.{content_key}", "missing", "missing"))
        elif not isinstance(content, str):
            out.append((f"{where}.{content_key}", "wrong_type", f"expected a string, got {json_type_name(content)}"))
        elif not content.strip():
            out.append((f"{where}.{content_key}", "empty", "empty"))
    if must_end_with_assistant and last is not None and last != "assistant":
        raw = value[-1].get(role_key)
        out.append((
            f"{field}[{len(value) - 1}].{role_key}",
            "not_assistant_last",
            f"the conversation ends with a {raw!r} turn; it must end with an assistant turn (the part that is trained)",
        ))  # fmt: skip
    return last


def _check_parts(parts: list, field: str, out: list[Problem]) -> None:
    """Content given as parts: text and reasoning parts are read; images, audio and video are refused."""
    text = ""
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS or kind in REASONING_PARTS:
            value = part.get("text", part.get("value"))
            if not isinstance(value, str):
                out.append((f"{field}[{j}]", "wrong_type", f"a {kind} part needs a string text (or value)"))
            elif kind in TEXT_PARTS:
                text += value
        elif isinstance(kind, str):
            out.append((f"{field}[{j}]", "multimodal", f"a {kind} part: tunedeck trains text-only models; "
                        "remove the part (multimodal training is not supported yet)"))  # fmt: skip
        else:
            out.append((f"{field}[{j}]", "wrong_type", f"expected a content part {{type, text}}, got {json_type_name(part)}"))
    if not out and not text.strip() and not any(isinstance(p, dict) and p.get("type") in REASONING_PARTS for p in parts):
        out.append((field, "empty", "empty"))


def _prompt_or_messages(row: dict, key: str, out: list[Problem], *, is_prompt: bool) -> str | None:
    """A prompt/completion-like field: a non-empty string or a message list. Returns 'text'/'chat'/None."""
    value = row.get(key)
    if value is None:
        out.append((key, "missing", "missing; add it, or map your column to it with data.columns"))
        return None
    if isinstance(value, str):
        if not value.strip():
            out.append((key, "empty", "empty"))
        return "text"
    if isinstance(value, list):
        n = len(out)
        last = check_messages(value, key, out, must_end_with_assistant=not is_prompt)
        if is_prompt and last == "assistant":
            out.append((f"{key}[{len(value) - 1}].role", "wrong_type", "a prompt must not end with an assistant turn"))
        return "chat" if len(out) == n else None
    out.append((key, "wrong_type", f"expected a string or a list of messages, got {json_type_name(value)}"))
    return None


def _check_conversation_columns(row: dict, out: list[Problem]) -> None:
    """The ``system`` and ``tools`` columns beside a conversation (LLaMA-Factory's sharegpt, OpenAI's tools)."""
    _string(row, "system", out, required=False, allow_empty=True)
    _check_tools(row.get("tools"), "tools", out)


def _check_tools(value: Any, field: str, out: list[Problem]) -> None:
    """A ``tools`` list (absent is fine): function definitions, OpenAI's or LLaMA-Factory's, or their JSON."""
    if value is None:
        return
    try:
        tools = as_tools(value)
        if any(not isinstance(t.get("function"), dict) or not t["function"].get("name") for t in tools):
            raise KeyError("name")
    except (ValueError, TypeError, KeyError, AttributeError):
        out.append((field, "wrong_type", "expected a list of function definitions {name, description, "
                    'parameters} (or OpenAI\'s {"type": "function", "function": {...}}), or their JSON'))  # fmt: skip


def _check_openai_preference(row: dict, out: list[Problem]) -> str:
    """OpenAI's preference fine-tuning rows: ``input`` {messages, tools}, ``preferred_output`` and
    ``non_preferred_output`` (message lists). The input is the prompt: it may hold several turns, not ending
    with an assistant one."""
    given = row.get("input")
    if given is None:
        out.append(("input", "missing", "missing; it holds the prompt: {messages, tools}"))
    elif not isinstance(given, dict):
        out.append(("input", "wrong_type", f"expected an object {{messages, tools}}, got {json_type_name(given)}"))
    elif given.get("messages") is None:
        out.append(("input.messages", "missing", "missing; the prompt's turns"))
    else:
        messages = given["messages"]
        last = check_messages(messages, "input.messages", out, must_end_with_assistant=False)
        if last == "assistant":
            out.append((f"input.messages[{len(messages) - 1}].role", "wrong_type", "the prompt ends with an "
                        "assistant turn; preferred_output and non_preferred_output are the reply"))  # fmt: skip
        _check_tools(given.get("tools"), "input.tools", out)
    for name in ("preferred_output", "non_preferred_output"):
        value = row.get(name)
        if value is None:
            out.append((name, "missing", "missing; a list of assistant messages"))
        else:
            check_messages([value] if isinstance(value, dict) else value, name, out)
    if not out and row["preferred_output"] == row["non_preferred_output"]:
        out.append(("non_preferred_output", "identical", "preferred_output and non_preferred_output are identical"))
    return "chat"


def _is_sharegpt(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and "from" in value[0]


class RowValidator:
    """Validates rows of one format; remembers the first row's form (strings vs messages) so mixed files are caught."""

    def __init__(self, fmt: str):
        self.fmt = fmt
        self.form: str | None = None
        self.form_at: str | None = None
        self._check = getattr(self, f"_{fmt}")

    def __call__(self, row: dict, where: str = "") -> list[Problem]:
        """Problems of one row (empty when valid). ``where`` names the row for mixed-form messages."""
        out: list[Problem] = [
            (key, "multimodal", f"tunedeck trains text-only models; drop the {key} column, or these rows "
             "(multimodal training is not supported yet)")
            for key in MEDIA_COLUMNS if row.get(key) not in (None, [], "")
        ]  # fmt: skip
        form = self._check(row, out)
        if form and not out:
            if self.form is None:
                self.form, self.form_at = form, where or "the first row"
            elif form != self.form:
                what = {"text": "strings", "chat": "message lists"}
                out.append((
                    "", "mixed_forms",
                    f"uses {what[form]} but earlier rows (first at {self.form_at}) use {what[self.form]}; "
                    "use one form for the whole file",
                ))  # fmt: skip
        return out

    # one method per format; each returns the row's form ("text" or "chat") when it has one

    def _alpaca(self, row: dict, out: list[Problem]) -> str | None:
        given, output = alpaca_fields(row)  # input/output, or Dolly's context/response
        instruction, extra = row.get("instruction"), row.get(given)
        if isinstance(extra, str) and extra.strip():  # the input alone may be the prompt (LLaMA-Factory joins both)
            _string(row, "instruction", out, required=False, allow_empty=True)
        elif isinstance(instruction, str) and not instruction.strip():
            also = f", and so is {given}" if given in row else ""
            out.append(("instruction", "empty", f"empty{also}: the row has no prompt"))
        else:
            _string(row, "instruction", out)
        _string(row, given, out, required=False, allow_empty=True)
        _string(row, output, out)
        _string(row, "system", out, required=False, allow_empty=True)
        history = row.get("history")
        if history is not None and not (
            isinstance(history, list) and all(isinstance(t, list) and len(t) == 2 and all(isinstance(x, str) for x in t) for t in history)
        ):
            out.append(("history", "wrong_type", "expected a list of [instruction, response] string pairs"))
        return None

    def _messages(self, row: dict, out: list[Problem]) -> str | None:
        key = conversation_key(row)
        if key is None:
            out.append(("messages", "missing", "missing; add it, or map your column to it with data.columns"))
        else:
            check_messages(row[key], key, out)
        _check_conversation_columns(row, out)
        return None

    def _sharegpt(self, row: dict, out: list[Problem]) -> str | None:
        key = conversation_key(row)
        if key is None:
            out.append(("conversations", "missing", "missing; add it, or map your column to it with data.columns"))
        else:
            check_messages(row[key], key, out, sharegpt=True)
        _check_conversation_columns(row, out)
        return None

    def _text(self, row: dict, out: list[Problem]) -> str | None:
        _string(row, "text", out)
        return None

    def _prompt_completion(self, row: dict, out: list[Problem]) -> str | None:
        a = _prompt_or_messages(row, "prompt", out, is_prompt=True)
        b = _prompt_or_messages(row, "completion", out, is_prompt=False)
        if a and b and a != b:
            out.append(
                ("completion", "wrong_type", "prompt and completion must both be strings or both be message lists")
            )
        return a if a == b else None

    def _prompt(self, row: dict, out: list[Problem]) -> str | None:
        return _prompt_or_messages(row, "prompt", out, is_prompt=True)

    def _kto(self, row: dict, out: list[Problem]) -> str | None:
        key = conversation_key(row)
        if row.get("prompt") is None and key:  # a conversation whose last (assistant) turn is labelled
            n = len(out)
            check_messages(row[key], key, out, sharegpt=_is_sharegpt(row[key]))
            if len(out) == n and len(row[key]) < 2:
                out.append((key, "no_prompt", "the conversation has only the labelled reply; it needs the turns before it"))
            _check_conversation_columns(row, out)
            form = "chat"
        else:
            form = self._prompt_completion(row, out)
        name = label_key(row) or "label"
        label = row.get(name)
        if label is None:
            out.append(("label", "missing", "missing; true for a desirable completion, false for an undesirable one"))
        elif parse_label(label) is None:
            out.append((name, "wrong_type", f"expected true or false, got {label!r}"))
        return form

    def _preference(self, row: dict, out: list[Problem]) -> str | None:
        if is_openai_preference(row):
            return _check_openai_preference(row, out)
        key = conversation_key(row)
        if row.get("prompt") is None and key:  # the conversation is the prompt; chosen/rejected one turn or a list
            sharegpt = _is_sharegpt(row[key])
            last = check_messages(row[key], key, out, sharegpt=sharegpt, must_end_with_assistant=False)
            if last == "assistant":
                out.append((f"{key}[{len(row[key]) - 1}]", "wrong_type",
                            "the prompt conversation ends with an assistant turn; chosen and rejected are the reply"))  # fmt: skip
            _check_conversation_columns(row, out)
            for name in ("chosen", "rejected"):
                value = row.get(name)
                check_messages([value] if isinstance(value, dict) else value, name, out, sharegpt=sharegpt)
            if not out and row["chosen"] == row["rejected"]:
                out.append(("rejected", "identical", "chosen and rejected are identical"))
            return "chat"
        if row.get("prompt") is None:  # implicit prompt: two full conversations sharing their opening turns
            chosen, rejected = row.get("chosen"), row.get("rejected")
            n = len(out)
            for key in ("chosen", "rejected"):
                if isinstance(row.get(key), str):
                    out.append(
                        ("prompt", "missing", f"missing; needed when {key} is a string (or give full conversations)")
                    )
                    return None
                check_messages(row.get(key), key, out)
            if len(out) > n:
                return None
            prompt, c, r = split_implicit_prompt(chosen, rejected)
            if not prompt:
                out.append(("prompt", "no_prompt", "chosen and rejected share no opening turns, so there is no prompt"))
            elif c == r:
                out.append(("rejected", "identical", "chosen and rejected are identical"))
            return "chat"
        a = _prompt_or_messages(row, "prompt", out, is_prompt=True)
        b = _prompt_or_messages(row, "chosen", out, is_prompt=False)
        c = _prompt_or_messages(row, "rejected", out, is_prompt=False)
        if a and b and c and len({a, b, c}) > 1:
            out.append(("", "wrong_type", "prompt, chosen and rejected must all be strings or all be message lists"))
            return None
        if b and b == c and row["chosen"] == row["rejected"]:
            out.append(("rejected", "identical", "chosen and rejected are identical"))
        return a if a and a == b == c else None
