"""Dataset formats: detection from the rows' shape, column mapping, and normalization to the forms TRL
expects (``messages``; ``prompt``/``completion``; ``text``; ``prompt``/``chosen``/``rejected``;
``prompt``/``completion``/``label``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from tunedeck.engine.data.errors import DataError

FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion", "text", "preference", "kto", "prompt")
FORMAT_HELP = {
    "alpaca": "instruction/input/output (optional system)",  # Dolly's instruction/context/response too
    "sharegpt": "conversations: [{from: human|gpt|system, value}]",
    "messages": "messages: [{role: system|user|assistant, content}]",
    "prompt_completion": "prompt/completion (strings or message lists)",
    "text": "text (plain text, continued pretraining)",
    "preference": "prompt/chosen/rejected, chosen/rejected conversations with an implicit prompt, or OpenAI's "
    "input/preferred_output/non_preferred_output",
    "kto": "prompt/completion or a conversation, plus a boolean label or kto_tag (unpaired preference)",
    "prompt": "prompt only, for online methods (GRPO, RLOO); other columns go to the reward functions",
}
# The columns each normalized (TRL) form has.
TRL_COLUMNS = {
    "alpaca": ("messages",),
    "sharegpt": ("messages",),
    "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
    "preference": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
    "prompt": ("prompt",),  # other columns are kept: reward functions receive them
}
CONVERSATION_COLUMNS = ("messages", "conversations")
# The columns each format reads (after data.columns mapping); any other column is named as ignored.
# None: every column is kept (prompt rows hand their other columns to the reward functions).
FORMAT_COLUMNS: dict[str, tuple[str, ...] | None] = {
    "alpaca": ("instruction", "input", "output", "system", "history"),  # or context/response (Dolly): alpaca_fields
    "sharegpt": ("conversations", "messages", "system", "tools"),
    "messages": ("conversations", "messages", "system", "tools"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
    "preference": ("prompt", "chosen", "rejected", "conversations", "messages", "system"),
    "kto": ("prompt", "completion", "label", "kto_tag", "conversations", "messages", "system"),
    "prompt": None,
}
ROLES = ("system", "user", "assistant", "tool")
# Message fields beyond role/content that chat templates read (tool use, reasoning); kept as strings
# (tool_calls as JSON) so every row has one Arrow schema, and decoded when the template renders.
MESSAGE_EXTRAS = ("reasoning_content", "tool_calls", "tool_call_id", "name")
# ShareGPT roles (LLaMA-Factory's: function_call is an assistant turn that calls tools, observation their result).
SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
    "function_call": "assistant", "observation": "tool", "tool": "tool", "function": "tool",
}  # fmt: skip
# OpenAI's preference fine-tuning rows: input {messages, tools}, and the two replies (message lists).
OPENAI_PREFERENCE = ("input", "preferred_output", "non_preferred_output")
OPENAI_INPUT = ("messages", "tools")  # the keys of ``input`` that are read
LABEL_COLUMNS = ("label", "kto_tag")  # KTO: desirable (true) or not; kto_tag is LLaMA-Factory's name
# Columns of images, audio or video (LLaMA-Factory, TRL's vision formats): text-only training refuses them.
MEDIA_COLUMNS = ("images", "image", "audios", "audio", "videos", "video")
# Content parts (OpenAI's {"type": "text", "text"}, LLaMA-Factory v1's {"type": "text", "value"}).
TEXT_PARTS = ("text", "input_text", "output_text")
REASONING_PARTS = ("reasoning", "thinking")
DETECT_ROWS = 100  # rows looked at to detect the format
# A format whose keys are a subset of another's is not a rival when the larger one matches.
_SUBSUMED = {"prompt_completion": "kto"}


# --------------------------------------------------------------------------- column mapping


def parse_columns(items: Iterable[str]) -> dict[str, str]:
    """``["instruction=question", ...]`` (CLI) -> ``{"instruction": "question"}``."""
    out = {}
    for item in items:
        if "=" not in item:
            raise DataError(f"--column {item!r}: expected FORMAT_FIELD=YOUR_COLUMN, e.g. instruction=question")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def map_row(row: dict, columns: Mapping[str, str] | None) -> dict:
    """Rename a row's keys from the user's column names to the format's (``columns`` maps format -> user)."""
    if not columns:
        return row
    out = dict(row)
    for canonical, theirs in columns.items():
        if theirs in row and theirs != canonical:
            out[canonical] = out.pop(theirs)
    return out


def user_field(field: str, columns: Mapping[str, str] | None) -> str:
    """The field path as the user knows it: ``instruction`` -> ``question`` when mapped."""
    if not columns or not field:
        return field
    head = field.split("[", 1)[0].split(".", 1)[0]
    theirs = columns.get(head)
    return theirs + field[len(head) :] if theirs else field


# --------------------------------------------------------------------------- detection


def _has(row: dict, key: str) -> bool:
    return row.get(key) is not None


def label_key(row: dict) -> str | None:
    """The column holding a KTO label (``label`` or ``kto_tag``), if the row has one."""
    return next((k for k in LABEL_COLUMNS if _has(row, k)), None)


def _kto_label(row: dict) -> bool:
    """A conversation is KTO data when it carries a boolean ``label`` (a class name or a 0/1 score is not one)
    or LLaMA-Factory's ``kto_tag``."""
    if _has(row, "kto_tag"):
        return True
    return isinstance(row.get("label"), bool)


def no_calls(value: Any) -> bool:
    """``tool_calls`` that say "none": absent, empty, or the empty text exports write."""
    return value is None or value == [] or (isinstance(value, str) and value.strip() in ("", "null", "[]"))


def alpaca_fields(row: dict) -> tuple[str, str]:
    """(input column, output column) of an alpaca row: ``input``/``output``, or Dolly's ``context``/``response``
    where the row has no ``input``/``output``."""
    given = "input" if _has(row, "input") or not _has(row, "context") else "context"
    output = "output" if _has(row, "output") or not _has(row, "response") else "response"
    return given, output


def is_openai_preference(row: dict) -> bool:
    """A row in OpenAI's preference fine-tuning format (``input``, ``preferred_output``, ``non_preferred_output``)."""
    return _has(row, "preferred_output") or _has(row, "non_preferred_output")


def unread_columns(row: dict, fmt: str) -> list[str]:
    """The columns of a (mapped) row with a value that format ``fmt`` does not read; keys of OpenAI's ``input``
    object other than messages and tools are named ``input.KEY``."""
    read = FORMAT_COLUMNS.get(fmt)
    if read is None:
        return []
    nested: dict = {}
    if fmt == "alpaca":
        read = ("instruction", *alpaca_fields(row), "system", "history")
    elif fmt == "preference" and is_openai_preference(row):
        read = OPENAI_PREFERENCE
        if isinstance(row.get("input"), dict):
            nested = {f"input.{k}": v for k, v in row["input"].items() if k not in OPENAI_INPUT}
    elif fmt in ("preference", "kto") and not conversation_key(row):  # a text prompt has no system turn
        read = tuple(k for k in read if k != "system")
    empty = (None, "", [], {})
    return [k for k, v in (*row.items(), *nested.items()) if k not in read and v not in empty]


def conversation_key(row: dict) -> str | None:
    """The column holding the conversation: ``messages`` or ``conversations``."""
    for key in CONVERSATION_COLUMNS:
        if _has(row, key):
            return key
    return None


def row_formats(row: dict) -> set[str]:
    """Every format this one row fits by its keys and shape."""
    found = set()
    key = conversation_key(row)
    if key is not None and _has(row, "chosen") and _has(row, "rejected"):
        found.add("preference")  # the conversation is the prompt (LLaMA-Factory's sharegpt ranking)
    elif key is not None and _kto_label(row):
        found.add("kto")  # a conversation and a boolean label: unpaired preference
    elif key is not None:
        value = row[key]
        first = value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else None
        if first is not None and ("from" in first or "value" in first):
            found.add("sharegpt")
        elif first is not None and ("role" in first or "content" in first):
            found.add("messages")
        else:
            found.add("messages" if key == "messages" else "sharegpt")
    if _has(row, "instruction") and (_has(row, "output") or _has(row, "response")):
        found.add("alpaca")  # response: Dolly's name for the output (and context for the input)
    if _has(row, "prompt") and _has(row, "completion"):
        found.add("kto" if label_key(row) else "prompt_completion")
    elif _has(row, "prompt") and not (_has(row, "chosen") or _has(row, "rejected")):
        found.add("prompt")
    if _has(row, "chosen") and _has(row, "rejected"):
        found.add("preference")
    if _has(row, "preferred_output") and _has(row, "non_preferred_output"):
        found.add("preference")  # OpenAI's preference fine-tuning rows
    if _has(row, "text"):
        found.add("text")
    return found


def detect_format(rows: Iterable[dict]) -> tuple[str | None, float, list[tuple[str, float]]]:
    """(format, confidence, candidates) from a sample of rows.

    Confidence is the share of rows that fit the format. Candidates are every format that fits at
    least one row, best first. The format is None when nothing fits, or when two formats each fit
    at least half the rows (ambiguous: the caller must ask for ``--format``/``data.format``).
    """
    counts: dict[str, int] = {}
    n = 0
    for row in rows:
        n += 1
        for fmt in row_formats(row):
            counts[fmt] = counts.get(fmt, 0) + 1
    if not n:
        return None, 0.0, []
    scores = {fmt: c / n for fmt, c in counts.items()}
    for small, big in _SUBSUMED.items():
        if small in scores and big in scores and scores[big] >= scores[small]:
            del scores[small]
    candidates = sorted(scores.items(), key=lambda kv: (-kv[1], FORMATS.index(kv[0])))
    if not candidates:
        return None, 0.0, []
    strong = [c for c in candidates if c[1] >= 0.5]
    if len(strong) > 1:
        return None, 0.0, candidates
    fmt, confidence = candidates[0]
    return fmt, confidence, candidates


def choose_format(rows: list[dict], requested: str = "auto", source: str = "data") -> tuple[str, float, list]:
    """The format to use: the requested one, or the detected one; a DataError says how to choose."""
    if requested and requested != "auto":
        if requested not in FORMATS:
            raise DataError(f"{source}: unknown format {requested!r}; use auto or one of: {', '.join(FORMATS)}")
        return requested, 1.0, [(requested, 1.0)]
    fmt, confidence, candidates = detect_format(rows)
    if fmt is not None:
        return fmt, confidence, candidates
    listed = ", ".join(f"{f} ({c:.0%} of rows)" for f, c in candidates)
    if candidates:
        raise DataError(
            f"{source}: ambiguous format; the rows fit {listed}. Choose one with data.format "
            f"(or --format), e.g. --format {candidates[0][0]}"
        )
    seen = sorted({k for row in rows for k in row})
    raise DataError(
        f"{source}: cannot tell the format from the columns {', '.join(seen) or '(none)'}. Expected one of: "
        + "; ".join(f"{f}: {h}" for f, h in FORMAT_HELP.items())
        + ". Map your columns with data.columns (or --column FIELD=COLUMN), e.g. --column instruction=question"
    )


# --------------------------------------------------------------------------- normalization (rows assumed valid)


def content_text(content: Any) -> tuple[str, str]:
    """(text, reasoning) of a message's content: a string, or a list of parts (OpenAI's ``{"type": "text",
    "text"}``, LLaMA-Factory's ``{"type": "text", "value"}``, ``reasoning``/``thinking`` parts). Rows are
    validated first: other parts (images) never get here."""
    if not isinstance(content, list):
        return content or "", ""
    text, reasoning = [], []
    for part in content:
        value = part.get("text", part.get("value", "")) if isinstance(part, dict) else part
        (reasoning if isinstance(part, dict) and part.get("type") in REASONING_PARTS else text).append(value or "")
    return "".join(text), "".join(reasoning)


def as_tool_calls(value: Any) -> list[dict]:
    """Tool calls in the form chat templates read: ``[{"type": "function", "function": {"name", "arguments"}}]``,
    arguments as an object. Accepts that form, bare ``{"name", "arguments"}`` objects, one or a list, or their JSON."""
    if isinstance(value, str):
        value = json.loads(value)
    calls = []
    for call in value if isinstance(value, list) else [value]:
        function = dict(call.get("function") or call)
        args = function.get("arguments", function.pop("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                pass  # kept as the text it is
        function = {"name": function.get("name"), "arguments": args}
        calls.append({**{k: v for k, v in call.items() if k in ("id", "type")}, "type": "function", "function": function})
    return calls


def as_tools(value: Any) -> list[dict]:
    """A ``tools`` column in the form chat templates read (``[{"type": "function", "function": {...}}]``), from
    that form, bare function definitions (LLaMA-Factory), or their JSON."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    return [t if "function" in t else {"type": "function", "function": t} for t in value or []]


def _message(role: str, content: Any, source: dict | None = None) -> dict[str, str]:
    text, reasoning = content_text(content)
    out = {"role": role, "content": text}
    extras = dict(source or {})
    if reasoning and not extras.get("reasoning_content"):
        extras["reasoning_content"] = reasoning
    if no_calls(extras.get("tool_calls")):
        extras.pop("tool_calls", None)
    else:
        extras["tool_calls"] = as_tool_calls(extras["tool_calls"])
    for key in MESSAGE_EXTRAS:
        if extras.get(key) is not None:
            value = extras[key]
            out[key] = value if isinstance(value, str) else json.dumps(value)
    return out


def _sharegpt_message(m: dict) -> dict[str, str]:
    role = m["from"]
    if role == "function_call":  # the value is the call(s) as JSON
        return _message("assistant", "", {"tool_calls": m["value"]})
    return _message(SHAREGPT_ROLES[role], m["value"], m)


def _messages(value: list) -> list[dict[str, str]]:
    if value and "from" in value[0]:
        return [_sharegpt_message(m) for m in value]
    return [_message(m["role"], m.get("content"), m) for m in value]


def _maybe_messages(value: Any) -> Any:
    if isinstance(value, dict):  # one message (LLaMA-Factory ranking: chosen/rejected are single turns)
        value = [value]
    return _messages(value) if isinstance(value, list) else value


def _conversation(row: dict) -> list[dict[str, str]]:
    """The row's conversation, with its ``system`` column in front when it has no system turn of its own."""
    messages = _messages(row[conversation_key(row) or "messages"])
    if row.get("system") and not (messages and messages[0]["role"] == "system"):
        messages.insert(0, _message("system", row["system"]))
    return messages


def _openai_preference(row: dict) -> dict:
    """OpenAI's preference row in TRL's conversational preference form: the prompt is ``input.messages``, chosen
    and rejected are ``preferred_output`` and ``non_preferred_output``; ``input.tools`` (if any) become the row's
    ``tools``, as JSON text (TRL's DPO, KTO and reward trainers pass a ``tools`` column to the chat template)."""
    out = {"prompt": _messages(row["input"]["messages"]), "chosen": _maybe_messages(row["preferred_output"]),
           "rejected": _maybe_messages(row["non_preferred_output"])}  # fmt: skip
    tools = as_tools(row["input"].get("tools"))
    if tools:
        out["tools"] = json.dumps(tools)
    return out


def parse_label(value: Any) -> bool | None:
    """A KTO label: true/false, 1/0, or those words as text (CSV); None when it is none of them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return {"true": True, "1": True, "false": False, "0": False}.get(value.strip().lower())
    return None


def split_implicit_prompt(chosen: list, rejected: list) -> tuple[list, list, list]:
    """(prompt, chosen, rejected) from two full conversations that share their opening turns."""
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    return chosen[:n], chosen[n:], rejected[n:]


def normalize_row(row: dict, fmt: str) -> dict:
    """One valid row in its TRL form (see ``TRL_COLUMNS``)."""
    if fmt == "alpaca":
        given, output = alpaca_fields(row)  # the prompt: the non-empty parts of instruction and input, joined
        user = "\n\n".join(p for p in (row.get("instruction"), row.get(given)) if p and p.strip())
        messages = [_message("system", row["system"])] if row.get("system") else []
        for turn in row.get("history") or []:  # earlier [instruction, response] pairs
            messages += [_message("user", turn[0]), _message("assistant", turn[1])]
        return {"messages": [*messages, _message("user", user), _message("assistant", row[output])]}
    if fmt in ("messages", "sharegpt"):
        out = {"messages": _conversation(row)}
        if as_tools(row.get("tools")):  # the functions the assistant may call, for the chat template
            out["tools"] = json.dumps(as_tools(row["tools"]))
        return out
    if fmt == "prompt_completion":
        return {"prompt": _maybe_messages(row["prompt"]), "completion": _maybe_messages(row["completion"])}
    if fmt == "text":
        return {"text": row["text"]}
    if fmt == "preference":
        if is_openai_preference(row):
            return _openai_preference(row)
        if row.get("prompt") is None and conversation_key(row):  # the conversation is the prompt
            return {"prompt": _conversation(row), "chosen": _maybe_messages(row["chosen"]),
                    "rejected": _maybe_messages(row["rejected"])}  # fmt: skip
        if row.get("prompt") is None:
            prompt, chosen, rejected = split_implicit_prompt(_messages(row["chosen"]), _messages(row["rejected"]))
            return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        return {k: _maybe_messages(row[k]) for k in ("prompt", "chosen", "rejected")}
    if fmt == "prompt":
        return {"prompt": _maybe_messages(row["prompt"])}
    if fmt == "kto":
        label = parse_label(row[label_key(row) or "label"])
        if row.get("prompt") is None and conversation_key(row):  # the last (assistant) turn is the completion
            messages = _conversation(row)
            return {"prompt": messages[:-1], "completion": messages[-1:], "label": label}
        return {"prompt": _maybe_messages(row["prompt"]), "completion": _maybe_messages(row["completion"]), "label": label}
    raise DataError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")


def trl_features(normalized: dict):
    """Arrow features for a normalized row, so every source of one form concatenates."""
    import datasets

    string = datasets.Value("string")
    message = {"role": string, "content": string}
    if any(k in m for v in normalized.values() if isinstance(v, list) for m in v for k in MESSAGE_EXTRAS):
        message.update(dict.fromkeys(MESSAGE_EXTRAS, string))
    message_list = datasets.List(message)
    feats = {}
    for key, value in normalized.items():
        if key == "label":
            feats[key] = datasets.Value("bool")
        else:
            feats[key] = message_list if isinstance(value, list) else string
    return datasets.Features(feats)


def normalize_dataset(ds, fmt: str = "auto", columns_map: Mapping[str, str] | None = None,
                      needs: tuple[bool, bool] | None = None):  # fmt: skip
    """A ``datasets.Dataset`` in TRL form (see ``TRL_COLUMNS``); extra columns are dropped.

    Rows are assumed valid (``tunedeck.engine.data.validate`` first); ``fmt`` may be ``auto``. ``needs``: whether any
    row has message extras / tools (``DataReport.needs``); without it the first rows decide.
    """
    if columns_map:
        renames = {theirs: ours for ours, theirs in columns_map.items() if theirs in ds.column_names and theirs != ours}
        clashes = [ours for ours in renames.values() if ours in ds.column_names]
        if clashes:
            ds = ds.remove_columns(clashes)
        ds = ds.rename_columns(renames)
    if len(ds) == 0:
        raise DataError("the dataset has no rows; there is nothing to train on")
    head = [ds[i] for i in range(min(len(ds), DETECT_ROWS))]
    fmt, _, _ = choose_format(head, fmt)
    sample = [normalize_row(row, fmt) for row in head]
    pad = _padder(sample, needs)
    first = pad(sample[0])
    if needs and needs[0]:  # the schema has the extras even when the first row has none
        first = {k: [{**dict.fromkeys(MESSAGE_EXTRAS), **m} for m in v] if isinstance(v, list) else v for k, v in first.items()}
    features = trl_features(first)
    if fmt == "prompt":  # keep the other columns: reward functions receive them
        kept = ds.features.copy()
        kept["prompt"] = features["prompt"]
        return ds.map(lambda row: normalize_row(row, fmt), features=kept, desc="normalizing prompt rows")
    return ds.map(
        lambda row: pad(normalize_row(row, fmt)),
        remove_columns=ds.column_names,
        features=features,
        desc=f"normalizing {fmt} rows",
    )


def needs_fields(row: dict) -> tuple[bool, bool]:
    """(message extras, tools): whether a raw row's normalized form has tool calls, reasoning, tool ids or names
    on some message, and a ``tools`` list. Cheap; ``inspect_data`` asks it of every row so that the one Arrow
    schema of ``normalize_dataset`` fits all of them, not just the first."""
    extras = False
    tools_value = row.get("tools")
    values = list(row.values())
    if is_openai_preference(row) and isinstance(row.get("input"), dict):  # the prompt and tools are in input
        values.append(row["input"].get("messages"))
        tools_value = row["input"].get("tools")
    for value in values:
        for m in value if isinstance(value, list) else [value] if isinstance(value, dict) else []:
            if isinstance(m, dict) and (
                any(m.get(k) is not None and not (k == "tool_calls" and no_calls(m[k])) for k in MESSAGE_EXTRAS)
                or m.get("from") == "function_call" or isinstance(m.get("content"), list)
            ):  # fmt: skip
                extras = True
                break
        if extras:
            break
    tools = tools_value is not None and not (isinstance(tools_value, str) and not tools_value.strip())
    return extras, tools


def _padder(sample: list[dict], needs: tuple[bool, bool] | None = None):
    """A function that gives a normalized row the fields any row has (tools, message extras), None where it
    lacks them: one schema for every row. ``needs`` (from ``inspect_data``, over every row) says which;
    without it, the ``sample`` of normalized rows decides. Renderers drop the None fields again
    (tunedeck.engine.templates)."""
    if needs is not None:
        extras, tools = needs
    else:
        extras = any(k in m for r in sample for v in r.values() if isinstance(v, list) for m in v for k in MESSAGE_EXTRAS)
        tools = any("tools" in r for r in sample)

    def pad(normalized: dict) -> dict:
        out = dict(normalized)
        if tools:
            out.setdefault("tools", None)
        if extras:
            for key, value in out.items():
                if isinstance(value, list):
                    out[key] = [{**dict.fromkeys(MESSAGE_EXTRAS), **m} for m in value]
        return out

    return pad


def check_method_format(method: str, fmt: str, field_path: str = "data.train", detail: str = "") -> None:
    """DataError when ``method`` cannot train on rows of format ``fmt`` (``detail``: more about the rows)."""
    from tunedeck.engine.methods import METHODS

    allowed = METHODS[method].formats if method in METHODS else ()
    if allowed and fmt not in allowed:
        raise DataError(
            f"{field_path}: the rows are {fmt} ({FORMAT_HELP[fmt]}) but method {method} needs "
            + " or ".join(f"{f} ({FORMAT_HELP[f]})" for f in allowed)
            + (f". {detail}" if detail else "")
            + "; choose another dataset or method, or set data.format if the detection is wrong"
        )
