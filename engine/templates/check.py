"""Checking the loss mask before training starts: some token is trained, and so is the end-of-turn token."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from tunedeck.engine.templates.render import TemplateRefused
from tunedeck.engine.templates.specs import KNOWN_END_OF_TURN, TEMPLATES
from tunedeck.engine.templates.views import is_chat, token_views

CHECK_ROWS = 64


def end_of_turn_ids(tokenizer, chat_template: str | None) -> dict[int, str]:
    """Token ids that end a turn: the EOS and any known end-of-turn token the template uses."""
    out: dict[int, str] = {}
    if tokenizer.eos_token_id is not None:
        out[tokenizer.eos_token_id] = tokenizer.eos_token
    for literal in KNOWN_END_OF_TURN:
        if chat_template and literal in chat_template:
            ids = tokenizer(literal, add_special_tokens=False)["input_ids"]
            if len(ids) == 1:
                out[ids[0]] = literal
    return out


def _split_end_of_turn(tokenizer, chat_template: str | None) -> list[str]:
    """End-of-turn literals in the template that this tokenizer does not know as one token."""
    out = []
    for literal in KNOWN_END_OF_TURN:
        if chat_template and literal in chat_template:
            n = len(tokenizer(literal, add_special_tokens=False)["input_ids"])
            if n > 1:
                out.append(f"{literal} (split into {n} tokens)")
    return out


def _trains(row: dict) -> bool:
    """False for prompt-only rows (nothing of theirs is trained)."""
    return any(k in row for k in ("messages", "completion", "chosen", "text"))


def _spans(mask: list[bool]) -> int:
    return sum(1 for i, m in enumerate(mask) if m and (i == 0 or not mask[i - 1]))


@dataclass
class _Tally:
    """What the rows' masks add up to."""

    total: int = 0
    eot_trained: bool = False
    empty_rows: list[int] = field(default_factory=list)
    partial_rows: list[int] = field(default_factory=list)


def _tally(tokenizer, rows: list[dict], template: str, eot: dict[int, str], max_length: int | None,
           assistant_only_loss: bool) -> _Tally:  # fmt: skip
    tally = _Tally()
    for i, row in enumerate(rows):
        row_total = 0
        try:
            views = token_views(tokenizer, row, template, assistant_only_loss=assistant_only_loss, with_text=False)
        except TemplateRefused as e:
            raise ValueError(f"row {i + 1}: the chat template refuses it: {e}") from None
        for view in views:
            trained = view.trained[:max_length] if max_length else view.trained
            row_total += sum(trained)
            tally.eot_trained = tally.eot_trained or any(
                t and tid in eot for tid, t in zip(view.ids, trained, strict=False)
            )
            if assistant_only_loss and "messages" in row and not max_length:
                turns = sum(m["role"] == "assistant" for m in row["messages"])
                if 0 < _spans(trained) < turns:
                    tally.partial_rows.append(i)
        tally.total += row_total
        if row_total == 0:
            tally.empty_rows.append(i)
    return tally


def check_trainable(
    tokenizer,
    rows,
    chat_template: str | None = None,
    *,
    max_length: int | None = None,
    assistant_only_loss: bool = True,
    n: int = CHECK_ROWS,
) -> list[str]:
    """Check the loss mask on the first ``n`` normalized rows before training starts.

    Raises ValueError when no token of those rows is trained (training would learn nothing).
    Returns warnings: the end-of-turn token is never trained (the model would not learn to
    stop), rows with nothing trained (e.g. cut off by ``max_length``), conversations where some
    assistant turns are untrained.
    """
    rows = [r for r in itertools.islice(iter(rows), n) if _trains(r)]
    if not rows:  # nothing to check: e.g. prompt-only rows (GRPO/RLOO generate their completions)
        return []
    template = chat_template or tokenizer.chat_template
    chat_rows = any("messages" in r or is_chat(r.get("prompt")) for r in rows)
    if chat_rows and not template:
        raise ValueError(
            "the tokenizer has no chat template and none was given; set template.name to a built-in "
            f"({', '.join(TEMPLATES)}) or a .jinja file"
        )
    eot = end_of_turn_ids(tokenizer, template)
    tally = _tally(tokenizer, rows, template, eot, max_length, assistant_only_loss)
    cut = f" within max_length {max_length}" if max_length else ""
    scope = "this row" if len(rows) == 1 else f"the first {len(rows)} rows"
    if tally.total == 0:
        raise ValueError(
            f"no token of {scope} is trained{cut}: the loss would be empty. "
            + (
                "The prompts fill max_length: raise train.max_length or shorten the prompts."
                if max_length
                else "`tunedeck template render` shows which tokens the template trains."
            )
        )
    warnings = []
    if tally.empty_rows:
        shown = ", ".join(map(str, tally.empty_rows[:10]))
        warnings.append(f"{len(tally.empty_rows)} of {scope} have no trained token{cut} (rows {shown})")
    if tally.partial_rows:
        shown = ", ".join(map(str, tally.partial_rows[:10]))
        warnings.append(
            f"in {len(tally.partial_rows)} multi-turn rows (rows {shown}) only some assistant turns are trained; "
            "the template marks fewer turns than there are (only the last?)"
        )
    if not tally.eot_trained:
        names = ", ".join(sorted(set(eot.values()))) or "(the tokenizer has no eos_token)"
        split = _split_end_of_turn(tokenizer, template)
        hint = f"; the template's {', '.join(split)} is not a token of this model" if split else ""
        warnings.append(
            f"the end-of-turn token ({names}) is never trained in {scope}{hint}: the model may "
            "never learn to stop. Put the end-of-turn token inside {% generation %}…{% endgeneration %}, "
            "or use a built-in template that matches the model"
        )
    return warnings
