"""Dataset formats: detection from the rows' shape, column mapping, and normalization to the forms TRL
expects (``messages``; ``prompt``/``completion``; ``text``; ``prompt``/``chosen``/``rejected``;
``prompt``/``completion``/``label``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from engine.data.errors import DataError

FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion", "text", "preference", "kto", "prompt")
FORMAT_HELP = {
    "alpaca": "instruction/input/output (optional system)",
    "sharegpt": "conversations: [{from: human|gpt|system, value}]",
    "messages": "messages: [{role: system|user|assistant, content}]",
    "prompt_completion": "prompt/completion (strings or message lists)",
    "text": "text (plain text, continued pretraining)",
    "preference": "prompt/chosen/rejected, or chosen/rejected conversations with an implicit prompt",
    "kto": "prompt/completion/label (unpaired preference)",
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
ROLES = ("system", "user", "assistant", "tool")
# Message fields beyond role/content that chat templates read (tool use, reasoning); kept as strings
# (tool_calls as JSON) so every row has one Arrow schema, and decoded when the template renders.
MESSAGE_EXTRAS = ("reasoning_content", "tool_calls", "tool_call_id", "name")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
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
    if key is not None:
        value = row[key]
        first = value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else None
        if first is not None and ("from" in first or "value" in first):
            found.add("sharegpt")
        elif first is not None and ("role" in first or "content" in first):
            found.add("messages")
        else:
            found.add("messages" if key == "messages" else "sharegpt")
    if _has(row, "instruction") and _has(row, "output"):
        found.add("alpaca")
    if _has(row, "prompt") and _has(row, "completion"):
        found.add("kto" if _has(row, "label") else "prompt_completion")
    elif _has(row, "prompt") and not (_has(row, "chosen") or _has(row, "rejected")):
        found.add("prompt")
    if _has(row, "chosen") and _has(row, "rejected"):
        found.add("preference")
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


def _message(role: str, content: str | None, source: dict | None = None) -> dict[str, str]:
    out = {"role": role, "content": content or ""}
    for key in MESSAGE_EXTRAS:
        if source and source.get(key) is not None:
            value = source[key]
            out[key] = value if isinstance(value, str) else json.dumps(value)
    return out


def _messages(value: list) -> list[dict[str, str]]:
    return [_message(m["role"], m.get("content"), m) for m in value]


def _maybe_messages(value: Any) -> Any:
    return _messages(value) if isinstance(value, list) else value


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
        user = row["instruction"]
        if row.get("input"):
            user = f"{user}\n\n{row['input']}"
        messages = [_message("system", row["system"])] if row.get("system") else []
        return {"messages": [*messages, _message("user", user), _message("assistant", row["output"])]}
    if fmt in ("messages", "sharegpt"):
        value = row[conversation_key(row) or "messages"]
        if value and "from" in value[0]:
            return {"messages": [_message(SHAREGPT_ROLES[m["from"]], m["value"]) for m in value]}
        out = {"messages": _messages(value)}
        if row.get("tools") is not None:  # the functions the assistant may call, for the chat template
            out["tools"] = row["tools"] if isinstance(row["tools"], str) else json.dumps(row["tools"])
        return out
    if fmt == "prompt_completion":
        return {"prompt": _maybe_messages(row["prompt"]), "completion": _maybe_messages(row["completion"])}
    if fmt == "text":
        return {"text": row["text"]}
    if fmt == "preference":
        if row.get("prompt") is None:
            prompt, chosen, rejected = split_implicit_prompt(_messages(row["chosen"]), _messages(row["rejected"]))
            return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        return {k: _maybe_messages(row[k]) for k in ("prompt", "chosen", "rejected")}
    if fmt == "prompt":
        return {"prompt": _maybe_messages(row["prompt"])}
    if fmt == "kto":
        return {
            "prompt": _maybe_messages(row["prompt"]),
            "completion": _maybe_messages(row["completion"]),
            "label": parse_label(row["label"]),
        }
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


def normalize_dataset(ds, fmt: str = "auto", columns_map: Mapping[str, str] | None = None):
    """A ``datasets.Dataset`` in TRL form (see ``TRL_COLUMNS``); extra columns are dropped.

    Rows are assumed valid (``engine.data.validate`` first); ``fmt`` may be ``auto``.
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
    pad = _padder(sample)
    features = trl_features(pad(sample[0]))
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


def _padder(sample: list[dict]):
    """A function that gives a normalized row the fields any row of ``sample`` has (tools, message extras),
    None where it lacks them: one schema for every row. Renderers drop the None fields again
    (engine.templates). The sample is looked at once, not once per row."""
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


def check_method_format(method: str, fmt: str, field_path: str = "data.train") -> None:
    """DataError when ``method`` cannot train on rows of format ``fmt``."""
    from engine.methods import METHODS

    allowed = METHODS[method].formats if method in METHODS else ()
    if allowed and fmt not in allowed:
        raise DataError(
            f"{field_path}: the rows are {fmt} ({FORMAT_HELP[fmt]}) but method {method} needs "
            + " or ".join(f"{f} ({FORMAT_HELP[f]})" for f in allowed)
            + "; choose another dataset or method, or set data.format if the detection is wrong"
        )
