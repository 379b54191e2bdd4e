"""The token-level view of a training row: the sequences TRL trains on, with the trained-token mask."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunedeck.engine.templates.mask import assistant_spans, common_prefix, spans_to_tokens
from tunedeck.engine.templates.refusals import explained, inputs_of
from tunedeck.engine.templates.render import (
    TemplateRefused,
    chat_render,
    chat_text,
    has_generation_markers,
    render_chat_ids,
    template_inputs,
)


@dataclass
class TokenView:
    """One tokenized training sequence: ids, which of them are trained (carry loss), and their text pieces."""

    name: str  # "text" for SFT rows; "chosen"/"rejected" for preference pairs
    ids: list[int]
    trained: list[bool]
    pieces: list[str] = field(default_factory=list)
    how: str = ""  # for chat rows: how the mask was found ("markers", "prefixes", "rewritten"; see ChatSpans)
    notes: list[str] = field(default_factory=list)  # what the derivation had to say (rewritten turns)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def tokens(self) -> list[dict]:
        """[{id, text, trained}] per token (the ``template render --json`` shape)."""
        pieces = self.pieces or [""] * len(self.ids)
        return [{"id": i, "text": p, "trained": t} for i, p, t in zip(self.ids, pieces, self.trained, strict=True)]


def is_chat(value: Any) -> bool:
    return isinstance(value, list)


def _pieces(tokenizer, text: str, ids: list[int], add_special_tokens: bool) -> list[str]:
    """Each token's slice of ``text`` (gaps go to the next token, so the pieces join back to the text)."""
    try:
        enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    except (NotImplementedError, ValueError, TypeError):  # slow tokenizers have no offsets
        enc = None
    if enc is None or list(enc["input_ids"]) != list(ids):
        return [tokenizer.decode([i]) for i in ids]
    pieces, prev = [], 0
    for tid, (start, end) in zip(ids, enc["offset_mapping"], strict=True):
        if start == end:  # a token the tokenizer added (e.g. a BOS): no span in the text
            pieces.append(tokenizer.convert_ids_to_tokens(tid))
            continue
        pieces.append(text[prev:end])
        prev = max(prev, end)
    if prev < len(text) and pieces:
        pieces[-1] += text[prev:]
    return pieces


def _completion_view(
    tokenizer, name: str, prompt: Any, completion: Any, template: str | None, with_text: bool, assistant_mask: bool
) -> TokenView:
    """A prompt + completion sequence with the completion trained, as TRL builds it."""
    if is_chat(prompt):
        prompt_ids, _ = render_chat_ids(tokenizer, prompt, template, generation_prompt=True)
        ids, amask = render_chat_ids(tokenizer, prompt + completion, template, mask=assistant_mask)
        start = common_prefix(prompt_ids, ids)
        trained = [i >= start and (amask[i] or not assistant_mask) for i in range(len(ids))]
        pieces = (
            _pieces(tokenizer, chat_text(tokenizer, prompt + completion, template), ids, False) if with_text else []
        )
        return TokenView(name, ids, trained, pieces)
    eos = tokenizer.eos_token or ""
    full = prompt + completion if completion.endswith(eos) else prompt + completion + eos
    prompt_ids = list(tokenizer(prompt)["input_ids"])
    ids = list(tokenizer(full)["input_ids"])
    start = common_prefix(prompt_ids, ids)
    trained = [i >= start for i in range(len(ids))]
    return TokenView(name, ids, trained, _pieces(tokenizer, full, ids, True) if with_text else [])


def chat_view(tokenizer, row: dict, template: str, *, assistant_only_loss: bool = True, with_text: bool = True,
              train_on_reasoning: bool = True) -> TokenView:  # fmt: skip
    """A ``messages`` row (with its ``tools``, if any) as trained: the template's {% generation %} spans when it
    has them, else spans derived by rendering growing prefixes (assistant_spans). TemplateRefused when the
    template raises on the row."""
    messages, tools = template_inputs(row)
    render = chat_render(tokenizer, template, tools)
    if has_generation_markers(template) or not assistant_only_loss:
        try:
            ids, mask = render_chat_ids(tokenizer, messages, template, mask=assistant_only_loss, tools=tools)
            text = render(messages, False)
        except Exception as e:
            raise explained(e, template, messages, tools) from None
        trained = mask if assistant_only_loss else [True] * len(ids)
        how, notes = ("markers" if assistant_only_loss else "all"), []
    else:
        try:
            spans = assistant_spans(render, messages, train_on_reasoning=train_on_reasoning)
        except TemplateRefused as e:
            raise explained(e, template, messages, tools) from None
        ids, trained = spans_to_tokens(tokenizer, spans)
        text, how, notes = spans.text, spans.how, spans.notes
    pieces = _pieces(tokenizer, text, ids, False) if with_text else []
    return TokenView("text", ids, trained, pieces, how, notes)


def _token_views(
    tokenizer, row: dict, chat_template: str | None = None, *, assistant_only_loss: bool = True, with_text: bool = True,
    train_on_reasoning: bool = True,
) -> list[TokenView]:  # fmt: skip
    """The sequences TRL trains on for one normalized row, with the trained-token mask.

    ``messages`` rows: the template's ``{% generation %}`` spans (everything when
    ``assistant_only_loss`` is off); prompt/completion, preference and KTO rows: the completion;
    ``text`` rows: every token. Rendering goes through ``tokenizer.apply_chat_template``
    (transformers' sandboxed Jinja).
    """
    template = chat_template or tokenizer.chat_template
    if "messages" in row:
        return [chat_view(tokenizer, row, template, assistant_only_loss=assistant_only_loss, with_text=with_text,
                          train_on_reasoning=train_on_reasoning)]  # fmt: skip
    if "chosen" in row:
        return [
            _completion_view(tokenizer, key, row["prompt"], row[key], template, with_text, False)
            for key in ("chosen", "rejected")
        ]
    if "completion" not in row and "text" not in row:  # prompt only: completions are generated online
        prompt = row["prompt"]
        if is_chat(prompt):
            ids, _ = render_chat_ids(tokenizer, prompt, template, generation_prompt=True)
            text = chat_text(tokenizer, prompt, template, generation_prompt=True)
            return [
                TokenView("text", ids, [False] * len(ids), _pieces(tokenizer, text, ids, False) if with_text else [])
            ]
        ids = list(tokenizer(prompt)["input_ids"])
        return [TokenView("text", ids, [False] * len(ids), _pieces(tokenizer, prompt, ids, True) if with_text else [])]
    if "completion" in row:
        # TRL trains the completion of prompt/completion rows (completion_only_loss)
        return [_completion_view(tokenizer, "text", row["prompt"], row["completion"], template, with_text, False)]
    text = row["text"]
    eos = tokenizer.eos_token or ""
    text = text if text.endswith(eos) else text + eos
    ids = list(tokenizer(text)["input_ids"])
    return [TokenView("text", ids, [True] * len(ids), _pieces(tokenizer, text, ids, True) if with_text else [])]


def token_views(
    tokenizer, row: dict, chat_template: str | None = None, *, assistant_only_loss: bool = True, with_text: bool = True,
    train_on_reasoning: bool = True,
) -> list[TokenView]:  # fmt: skip
    """The sequences TRL trains on for one normalized row, with the trained-token mask (see _token_views);
    TemplateRefused, with the template's own message, when the chat template raises on the row."""
    try:
        return _token_views(tokenizer, row, chat_template, assistant_only_loss=assistant_only_loss,
                            with_text=with_text, train_on_reasoning=train_on_reasoning)  # fmt: skip
    except TemplateRefused:
        raise
    except Exception as e:  # jinja2's raise_exception(), a TypeError on a missing input, ...
        template = chat_template or tokenizer.chat_template
        raise explained(e, template, *inputs_of(row)) from None


def token_lengths(tokenizer, rows: list[dict], chat_template: str | None = None) -> list[int]:
    """Tokens per row (the longest sequence for preference pairs)."""
    return [max(len(v.ids) for v in token_views(tokenizer, row, chat_template, with_text=False)) for row in rows]
