"""LLaMA-Factory's ``dataset_info.json`` as a data source: ``data.train: path/to/dataset_info.json#name``.

An entry names its file (``file_name``, relative to the dataset_info.json), its ``formatting``
(alpaca or sharegpt), ``ranking`` (preference pairs), a ``columns`` map from LLaMA-Factory's field
names to the file's, and, for sharegpt, ``tags`` naming the message keys and role values. Rows are
rewritten into the field names tunedeck's formats read (engine/data/formats.py) as they stream, so
validation still names each row by the data file's FILE:LINE.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.engine.data.errors import DataError

MARK = "dataset_info.json#"
# LLaMA-Factory's alpaca column names -> tunedeck's alpaca fields.
_ALPACA = {"prompt": "instruction", "query": "input", "response": "output", "history": "history", "system": "system"}
_SHARED = ("images", "videos", "audios", "tools", "system", "chosen", "rejected", "kto_tag")
# Default sharegpt tags, and the role names tunedeck's sharegpt format reads for each.
_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
         "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}  # fmt: skip
_ROLE_OF = {"user_tag": "human", "assistant_tag": "gpt", "observation_tag": "observation",
            "function_tag": "function_call", "system_tag": "system"}  # fmt: skip


def is_dataset_info(source: str) -> bool:
    return MARK in str(source)


@dataclass
class Entry:
    """One dataset_info.json entry, resolved."""

    name: str
    file: Path
    formatting: str  # alpaca | sharegpt
    ranking: bool
    columns: dict[str, str] = field(default_factory=dict)  # LLaMA-Factory field -> the file's column
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def format(self) -> str:
        """The tunedeck format the rewritten rows are in."""
        if self.ranking:
            return "preference"
        if self.columns.get("kto_tag"):
            return "kto"
        return self.formatting

    def rewrite(self, row: dict) -> dict:
        """A row of the file, in the field names of ``self.format``."""
        c = self.columns
        if self.formatting == "alpaca":
            out = {ours: row.get(c.get(lf, ours)) for lf, ours in _ALPACA.items()}  # default: the file uses our names
            if self.ranking or c.get("kto_tag"):
                out = self._alpaca_pair(out, row)
        else:
            out = {"conversations": self._messages(row.get(c.get("messages", "conversations")))}
            for key in ("chosen", "rejected") if self.ranking else ():
                value = row.get(c.get(key, key))
                out[key] = self._message(value) if isinstance(value, dict) else self._messages(value)
        for key in _SHARED:
            if key not in out and row.get(c.get(key, key)) is not None:
                out[key] = row[c.get(key, key)]
        read = {c.get(lf, ours) for lf, ours in {**_ALPACA, **{k: k for k in _SHARED}, "messages": "conversations"}.items()}
        out.update({k: v for k, v in row.items() if k not in read and k not in out})  # reported as ignored, not dropped
        return {k: v for k, v in out.items() if v is not None}

    def _alpaca_pair(self, out: dict, row: dict) -> dict:
        """An alpaca ranking or KTO row: the prompt as text, or as a conversation when it has a system prompt
        or history (LLaMA-Factory renders both into the prompt)."""
        c = self.columns
        user = "\n\n".join(str(x) for x in (out["instruction"], out["input"]) if x)
        history = out.get("history") if isinstance(out.get("history"), list) else []
        if out.get("system") or history:
            prompt: Any = [{"role": "system", "content": out["system"]}] if out.get("system") else []
            for turn in history:
                if isinstance(turn, list) and len(turn) == 2:
                    prompt += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
            prompt.append({"role": "user", "content": user})

            def reply(value):
                return [{"role": "assistant", "content": value}] if isinstance(value, str) else value
        else:
            prompt = user

            def reply(value):
                return value

        if self.ranking:
            return {"prompt": prompt, "chosen": reply(row.get(c.get("chosen", "chosen"))),
                    "rejected": reply(row.get(c.get("rejected", "rejected")))}  # fmt: skip
        return {"prompt": prompt, "completion": reply(out["output"])}

    def _message(self, message: Any) -> Any:
        if not isinstance(message, dict):
            return message
        t = {**_TAGS, **self.tags}
        role = message.get(t["role_tag"])
        names = {t[tag]: ours for tag, ours in _ROLE_OF.items()}
        return {"from": names.get(role, role) if isinstance(role, str) else role, "value": message.get(t["content_tag"])}

    def _messages(self, value: Any) -> Any:
        return [self._message(m) for m in value] if isinstance(value, list) else value


def read_entry(source: str) -> Entry:
    """The entry ``path/to/dataset_info.json#name`` names; DataError says what is wrong with it."""
    path_text, _, name = str(source).rpartition("#")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such file (data source {source})")
    try:
        info = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM is read past
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(info, dict) or name not in info:
        names = ", ".join(sorted(info)) if isinstance(info, dict) else "(none)"
        raise DataError(f"{path}: no entry {name!r}; it has: {names}")
    entry = info[name]
    if not isinstance(entry, dict):
        raise DataError(f"{path}#{name}: the entry must be an object with file_name, formatting, columns, ...")
    for key in ("columns", "tags"):
        if entry.get(key) is not None and not isinstance(entry[key], dict):
            raise DataError(f"{path}#{name}: {key} must be an object mapping names to names")
    if not entry.get("file_name"):
        remote = next((f"{k} {entry[k]}" for k in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name") if entry.get(k)), None)
        raise DataError(
            f"{path}#{name}: the entry has no file_name"
            + (f"; it loads from {remote}, which tunedeck reads only as a local file: download it and set file_name" if remote else "")
        )
    formatting = entry.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt"):
        raise DataError(f"{path}#{name}: formatting {formatting!r} is not supported; use alpaca or sharegpt")
    file = (path.parent / entry["file_name"]).resolve()
    if not file.exists():
        raise DataError(f"{path}#{name}: file_name {entry['file_name']!r} does not exist ({file})")
    unknown_tags = set(entry.get("tags") or {}) - set(_TAGS)
    if unknown_tags:
        raise DataError(f"{path}#{name}: unknown tags {', '.join(sorted(unknown_tags))}; known: {', '.join(_TAGS)}")
    return Entry(name, file, formatting, bool(entry.get("ranking")), dict(entry.get("columns") or {}), dict(entry.get("tags") or {}))
