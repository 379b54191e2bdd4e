"""Built-in chat templates and helpers around the tokenizer's own (sandboxed) renderer.

Two built-ins are formats, written here: ``chatml`` and ``alpaca`` wrap the assistant content *and its
end-of-turn token* in ``{% generation %}…{% endgeneration %}``. The others are model families' own
templates, byte for byte (engine/chat_templates/). Templates without markers, a model's own included,
get their assistant-only mask from ``assistant_spans``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ChatML (<|im_start|>role\n…<|im_end|>), as used by Qwen and many fine-tunes.
CHATML = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- generation -%}{{ message['content'] + '<|im_end|>' }}{%- endgeneration -%}"
    "{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

# Alpaca (### Instruction / ### Response); the model's EOS ends each response.
ALPACA = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{ messages[0]['content'] + '\\n\\n' }}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{{ 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\\n\\n' }}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ '### Response:\\n' }}{%- generation -%}{{ message['content'] + eos_token }}{%- endgeneration -%}{{ '\\n\\n' }}"
    "{%- else -%}{{ raise_exception('alpaca template: unsupported role ' + message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '### Response:\\n' }}{%- endif -%}"
)

# Model families' own templates, byte for byte (engine/chat_templates/README.md says where each is from).
_FAMILY_DIR = Path(__file__).with_name("chat_templates")
# built-in name -> the file in llama.cpp's models/templates/ it is a copy of (tests/engine/test_template_corpus.py)
FAMILY_TEMPLATES = {
    "qwen2.5": "Qwen-Qwen2.5-7B-Instruct",
    "qwen3": "Qwen-Qwen3-0.6B",
    "llama3.1": "meta-llama-Llama-3.1-8B-Instruct",
    "mistral-nemo": "mistralai-Mistral-Nemo-Instruct-2407",
    "gemma2": "google-gemma-2-2b-it",
    "phi3.5": "microsoft-Phi-3.5-mini-instruct",
}
# Built-ins llama.cpp vendors no copy of: the model's own template from another vendor, checked against the owner's
# prompt-format documentation (tests/engine/test_templates.py renders its examples byte for byte).
DOCUMENTED_TEMPLATES = {
    "gemma3": "google/gemma-3-*'s own template (TRL's trl/chat_templates/gemma3.jinja), checked against Google's "
    "Gemma formatting page",
}
BUILTIN_TEMPLATES: dict[str, str] = {
    "chatml": CHATML,
    "alpaca": ALPACA,
    **{name: (_FAMILY_DIR / f"{name}.jinja").read_text(encoding="utf-8") for name in (*FAMILY_TEMPLATES, *DOCUMENTED_TEMPLATES)},
}
# The token that ends an assistant turn in each built-in (None: the tokenizer's eos_token).
BUILTIN_END_OF_TURN: dict[str, str | None] = {
    "chatml": "<|im_end|>",
    "alpaca": None,
    "qwen2.5": "<|im_end|>",
    "qwen3": "<|im_end|>",
    "llama3.1": "<|eot_id|>",
    "mistral-nemo": None,
    "gemma2": "<end_of_turn>",
    "gemma3": "<end_of_turn>",
    "phi3.5": "<|end|>",
}
# Built-ins of earlier versions, which were hand-written and matched no current model's template exactly.
_RENAMED = {
    "llama3": "llama3.1 (Llama 3.1/3.3's own template; for Llama 3.0 or 3.2 use template.name: model)",
    "mistral": "mistral-nemo (Mistral-Nemo's own template; for other Mistral models use template.name: model)",
    "gemma": "gemma2 or gemma3 (Gemma 2's own template, or Gemma 3's, which folds a system prompt into the first user "
    "turn; for Gemma 4 use template.name: model)",
    "phi3": "phi3.5 (Phi-3.5-mini's own template)",
}
# End-of-turn tokens used across model families, for spotting a template's terminator.
KNOWN_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<turn|>", "<|end|>", "</s>", "<|endoftext|>", "<|eom_id|>")

_GENERATION_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


def strip_generation_markers(template: str) -> str:
    """Remove ``{% generation %}`` markers: they only steer the loss mask, never the rendered text.

    Inference engines (llama.cpp, Ollama) do not know the tag, so exported templates go without it.
    """
    return _GENERATION_TAG.sub("", template)


def has_generation_markers(template: str | None) -> bool:
    """True when the template marks assistant spans for assistant-only loss."""
    return bool(template) and _GENERATION_TAG.search(template) is not None


def resolve_template(name: str, model_template: str | None) -> str:
    """The template text for a recipe's ``template.name``: a built-in, ``model`` or a .jinja path."""
    if name == "model":
        if not model_template:
            raise ValueError(
                "template.name: 'model' but the model's tokenizer has no chat_template; "
                f"choose a built-in ({', '.join(BUILTIN_TEMPLATES)}) or a .jinja file"
            )
        return model_template
    if name in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[name]
    if name in _RENAMED:
        raise ValueError(f"template.name: the built-in {name!r} is now {_RENAMED[name]}")
    if name.endswith((".jinja", ".j2")):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ValueError(f"template.name: file {path} does not exist")
        return path.read_text(encoding="utf-8")
    raise ValueError(
        f"template.name: unknown template {name!r}; use 'model', a .jinja file or one of: "
        + ", ".join(BUILTIN_TEMPLATES)
    )


# --------------------------------------------------------------------------- assistant spans of any template

Render = Callable[[list[dict[str, Any]], bool], str]  # (messages, add_generation_prompt) -> the text


_TAG = re.compile(r"<\|?[^<>\s|]{1,40}\|?>|</?s>|\[/?[A-Z_]{1,20}\]")


class TemplateRefused(ValueError):
    """The chat template raised on this conversation (its own message, e.g. "System role not supported")."""


@dataclass
class ChatSpans:
    """A conversation rendered by its template, with the character spans assistant-only loss trains.

    The rule for every template: a turn is trained from the end of the generation prompt through the
    turn's end-of-turn text (so the model learns to stop), which ends where the conversation continued
    by another turn parts from it (``_turn_end``); whitespace after that (a newline between turns) and
    text written only at the very end of a conversation are not trained: llama.cpp stops at the
    end-of-turn token and never generates them.
    """

    text: str
    spans: list[tuple[int, int]]
    how: str  # "markers" ({% generation %}), "prefixes" (rendering growing prefixes), "rewritten" (see notes)
    notes: list[str] = field(default_factory=list)


def _safe_render(render: Render, messages: list, generation_prompt: bool) -> str:
    try:
        return render(messages, generation_prompt)
    except Exception as e:  # jinja2 raise_exception(), TypeError on missing inputs, ...
        raise TemplateRefused(_refusal(e)) from None


def _refusal(e: Exception) -> str:
    """The template's own words for raise_exception(); the error's kind too for anything else (SecurityError: ...)."""
    text = str(e).strip()
    return text if type(e).__name__ == "TemplateError" and text else f"{type(e).__name__}: {text}"


def _reasoning_cut(turn: str, message: dict) -> tuple[int, int] | None:
    """Where the turn's reasoning sits: the ``<think>…</think>``-style block around it, else the text alone."""
    reasoning = (message.get("reasoning_content") or message.get("thinking") or "").strip()
    if not reasoning:
        return None
    block = re.search(r"<(think|thinking|reasoning)>\s*" + re.escape(reasoning) + r"\s*</\1>\s*", turn)
    if block:
        return block.span()
    at = turn.find(reasoning)
    return (at, at + len(reasoning)) if at >= 0 else None


_CONTINUE = {"role": "user", "content": "\u2063NEXT\u2063"}


def _turn_end(render: Render, messages: list, upto: str, start: int, content: str) -> int:
    """Where the last turn of ``upto`` (the render of ``messages``) ends: where it stops agreeing with the
    same conversation continued by a user message. That leaves out text a template writes only at the
    very end (Phi-3.5's ``</s>``) and keeps an end-of-turn tag the continuation writes differently
    (gpt-oss: ``<|return|>`` last, ``<|end|>`` before more turns). ``len(upto)`` when the continuation
    renders this turn differently (past reasoning dropped, a system prompt moved) or raises."""
    try:
        cont = render([*messages, _CONTINUE], False)
    except Exception:
        return len(upto)
    cut = _common_prefix(upto, cont)
    at = upto.find(content, start) if content else start
    if at < 0 or at + len(content) > cut:
        return len(upto)
    if not content and _TAG.sub("", upto[start:cut]).strip() != _TAG.sub("", upto[start:]).strip():
        return len(upto)  # no content to go by (a tool call): the continuation must keep all of the turn's text
    tags = list(_TAG.finditer(upto, start))
    cut = next((m.start() for m in tags if m.start() < cut < m.end()), cut)  # never inside a tag
    head = upto[:cut].rstrip()
    if not any(m.end() == len(head) for m in tags):  # the end-of-turn tag itself differs: keep it
        nxt = next((m for m in tags if m.start() >= len(head)), None)
        if nxt and not upto[len(head) : nxt.start()].strip():
            return nxt.end()
    return max(cut, start)


def _locate(full: str, turn: str, content: str, start: int, cursor: int, others: list[str],
            later: Sequence[str] = ()) -> tuple[int, int, str]:  # fmt: skip
    """Where the rendered ``turn`` stands in the full render: (start, end, how it was found); end 0 when not found.

    In order: exactly at ``start`` (prefix-stable; ``start`` is -1 when the render before it differs);
    at ``start`` without an opening the template drops (a past turn's thinking block); its first
    occurrence after ``cursor``; its content there with the end-of-turn text that follows it (a past
    turn ends differently); from ``start`` through its closing tag. The searches are skipped when the
    content also stands in another message (``others``): a match could be that message's text; and the
    last resort never spans the text of a message that comes later (``later``).
    """
    if start >= cursor and full.startswith(turn, start):
        return start, start + len(turn), ""
    cuts = [i for i in range(1, len(turn)) if turn[i - 1] in "\n>"]
    for i in cuts:
        rest = turn[i:]
        if start >= cursor and full.startswith(rest, start) and (not content or content in rest):
            return start, start + len(rest), f"the template drops {turn[:i]!r} from it once later turns follow"
    if content and any(content in o for o in others if o):
        return 0, 0, "its text also stands in another message, so a search could find that one"
    for i in [0, *cuts]:
        rest = turn[i:]
        if content and content not in rest:
            break
        at = full.find(rest, cursor)
        if at >= 0 and (content or (i == 0 and _TAG.sub("", rest).strip())):  # never a bare end-of-turn tag
            return at, at + len(rest), "the template renders it differently once later turns follow"
    # The turn ends differently when it is not the last one (gpt-oss: <|return|> vs <|end|>; Phi-3.5 adds
    # </s> at the very end): its opening and content, then the end-of-turn text that follows there.
    at = full.find(content, max(start, cursor)) if content else -1
    if at >= 0:
        head, tail = turn[: turn.find(content)], turn[turn.find(content) + len(content):]
        begin = at - len(head) if head and full[:at].endswith(head) else at
        after = full[at + len(content):]
        ends = [e for e in (*_TAG.findall(tail), *KNOWN_END_OF_TURN, "<|end|>") if after.lstrip().startswith(e)]
        end = at + len(content) + (len(after) - len(after.lstrip()) + len(ends[0]) if ends else 0)
        return begin, end, "the template ends it differently once later turns follow"
    # Rendered differently inside (a tool call gains its id, a newline moves): from where it starts
    # through the first occurrence of its closing tag, if no other message's text falls in between.
    tags = _TAG.findall(turn)
    if start >= cursor and tags:
        end = full.find(tags[-1], start)
        if end >= 0 and not any(o and o in full[start:end] for o in (*others, *later)):
            return start, end + len(tags[-1]), "the template renders it differently once later turns follow"
    return 0, 0, "its text is not in the full conversation"


@dataclass
class TurnRender:
    """What a template writes for message k, from renders of growing prefixes: the mechanism behind both the
    assistant-only loss mask (``assistant_spans``) and the Ollama template (engine/export/modelfile.py)."""

    plain: str  # render(messages[:k])
    before: str  # render(messages[:k]), with the generation prompt when message k is the assistant's
    after: str  # render(messages[:k + 1])
    start: int  # where ``after`` parts from ``before``: message k's text is after[start:]

    @property
    def stable(self) -> bool:
        """The messages before k render the same once k follows (``plain`` is a prefix of ``after``)."""
        return self.after.startswith(self.plain)

    @property
    def generation(self) -> str:
        """The generation prompt appended to ``plain`` ("" when it is not simply appended)."""
        return self.before[len(self.plain) :] if self.before.startswith(self.plain) else ""


def render_turn(render: Render, messages: list, k: int) -> TurnRender:
    """Render ``messages[:k]`` and ``messages[:k + 1]`` (TemplateRefused with the template's words if it raises)."""
    assistant = messages[k].get("role") == "assistant"
    plain = _safe_render(render, messages[:k], False)
    before = _safe_render(render, messages[:k], True) if assistant else plain
    after = _safe_render(render, messages[: k + 1], False)
    return TurnRender(plain, before, after, _common_prefix(before, after))


def assistant_spans(render: Render, messages: list, *, train_on_reasoning: bool = True) -> ChatSpans:
    """Derive what assistant-only loss trains from the template alone, by rendering growing prefixes.

    For assistant turn k: P = render(messages[:k], generation prompt), F = render(messages[:k+1]);
    the turn is F from where it leaves P, through its end-of-turn text (trailing whitespace cut). When
    every such turn stands at the same place in the full render the template is prefix-stable and the
    spans are exact (``how`` "prefixes"). Templates that rewrite earlier turns once later ones follow
    (drop past reasoning, move the system prompt into the last user turn, render the last tool result
    differently) are handled turn by turn as the notes say (``how`` "rewritten"); a turn that cannot be
    placed is not trained and the notes say so: never a guessed mask.
    """
    full = _safe_render(render, messages, False)
    spans: list[tuple[int, int]] = []
    notes: list[str] = []
    how, cursor = "prefixes", 0
    for k, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        content = message.get("content") if isinstance(message.get("content"), str) else ""
        t = render_turn(render, messages, k)
        prompt, upto, start = t.before, t.after, t.start
        if start < len(t.plain):  # the messages before render differently
            found = upto.rfind(content) if content else -1
            if found < 0:
                notes.append(f"turn {k}: the template renders the messages before it differently once it "
                             "follows, and it has no text to find it by; not trained")  # fmt: skip
                how = "rewritten"
                continue
            notes.append(f"turn {k}: the template renders the messages before it differently once it follows; "
                         "trained from its content on")  # fmt: skip
            how, start = "rewritten", found
        elif start < len(prompt):  # e.g. the generation prompt opens a thinking block the rendered turn lacks
            notes.append(f"turn {k}: the generation prompt adds {prompt[start:]!r}, which the rendered turn does "
                         "not have; trained from where they part")  # fmt: skip
        turn = upto[start:_turn_end(render, messages[: k + 1], upto, start, content)].rstrip()
        aligned = full[:start] == upto[:start]
        others = [m.get("content") for m in messages if m.get("role") != "assistant" and isinstance(m.get("content"), str)]
        later = [m.get("content") for m in messages[k + 1 :] if isinstance(m.get("content"), str)]
        a, b, why = _locate(full, turn, content, start if aligned else -1, cursor, others, later)
        if why:
            how = "rewritten"
            notes.append(f"turn {k}: {why}" + ("; trained as rendered there" if b else "; not trained"))
        if not b:
            continue
        cut = None if train_on_reasoning else _reasoning_cut(full[a:b], message)
        spans += [s for s in ((a, a + cut[0]), (a + cut[1], b)) if s[1] > s[0]] if cut else [(a, b)]
        cursor = b
    for k, message in enumerate(messages):  # e.g. Mistral-Nemo writes the system prompt only before a final user turn
        text = message.get("content")
        if message.get("role") != "assistant" and isinstance(text, str) and text.strip() and text.strip() not in full:
            notes.append(f"message {k} ({message.get('role')}): the template does not render its text")
    return ChatSpans(full, spans, how, notes)


def chat_render(tokenizer, template: str, tools: list | None = None, **template_kwargs: Any) -> Render:
    """The tokenizer's own (sandboxed Jinja) renderer for ``template``, with ``tools`` when the rows carry them
    (``template_kwargs``: more variables for the template, over the tokenizer's special tokens)."""

    def render(messages: list, generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=generation_prompt,
            **({"tools": tools} if tools else {}), **template_kwargs,
        )  # fmt: skip

    return render


def spans_to_tokens(tokenizer, spans: ChatSpans) -> tuple[list[int], list[bool]]:
    """The full render's token ids and, per token, whether it starts inside a trained span."""
    enc = tokenizer(spans.text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    trained = [s < e and any(a <= s < b for a, b in spans.spans) for s, e in enc["offset_mapping"]]
    return ids, trained


# --------------------------------------------------------------------------- token-level view with the loss mask


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


def _render_chat(tokenizer, messages: list, template: str, *, generation_prompt: bool = False, mask: bool = False,
                 tools: list | None = None):  # fmt: skip
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


def _chat_text(tokenizer, messages: list, template: str) -> str:
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False)


def _common_prefix(a: Sequence, b: Sequence) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _completion_view(
    tokenizer, name: str, prompt: Any, completion: Any, template: str | None, with_text: bool, assistant_mask: bool
) -> TokenView:
    """A prompt + completion sequence with the completion trained, as TRL builds it."""
    if is_chat(prompt):
        prompt_ids, _ = _render_chat(tokenizer, prompt, template, generation_prompt=True)
        ids, amask = _render_chat(tokenizer, prompt + completion, template, mask=assistant_mask)
        start = _common_prefix(prompt_ids, ids)
        trained = [i >= start and (amask[i] or not assistant_mask) for i in range(len(ids))]
        pieces = (
            _pieces(tokenizer, _chat_text(tokenizer, prompt + completion, template), ids, False) if with_text else []
        )
        return TokenView(name, ids, trained, pieces)
    eos = tokenizer.eos_token or ""
    full = prompt + completion if completion.endswith(eos) else prompt + completion + eos
    prompt_ids = list(tokenizer(prompt)["input_ids"])
    ids = list(tokenizer(full)["input_ids"])
    start = _common_prefix(prompt_ids, ids)
    trained = [i >= start for i in range(len(ids))]
    return TokenView(name, ids, trained, _pieces(tokenizer, full, ids, True) if with_text else [])


def template_inputs(row: dict) -> tuple[list[dict], list | None]:
    """(messages, tools) as a chat template reads them, from a normalized row: fields a row lacks (None in
    the dataset's one schema) are dropped, tool calls and tools decoded from their JSON text."""
    import json

    def decoded(value):
        return json.loads(value) if isinstance(value, str) else value

    messages = [
        {k: decoded(v) if k == "tool_calls" else v for k, v in m.items() if v is not None} for m in row["messages"]
    ]
    return messages, decoded(row.get("tools")) or None


def chat_view(tokenizer, row: dict, template: str, *, assistant_only_loss: bool = True, with_text: bool = True,
              train_on_reasoning: bool = True) -> TokenView:  # fmt: skip
    """A ``messages`` row (with its ``tools``, if any) as trained: the template's {% generation %} spans when it
    has them, else spans derived by rendering growing prefixes (assistant_spans). TemplateRefused when the
    template raises on the row."""
    messages, tools = template_inputs(row)
    render = chat_render(tokenizer, template, tools)
    if has_generation_markers(template) or not assistant_only_loss:
        try:
            ids, mask = _render_chat(tokenizer, messages, template, mask=assistant_only_loss, tools=tools)
            text = render(messages, False)
        except Exception as e:
            raise TemplateRefused(_refusal(e)) from None
        trained = mask if assistant_only_loss else [True] * len(ids)
        how, notes = ("markers" if assistant_only_loss else "all"), []
    else:
        spans = assistant_spans(render, messages, train_on_reasoning=train_on_reasoning)
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
            ids, _ = _render_chat(tokenizer, prompt, template, generation_prompt=True)
            text = tokenizer.apply_chat_template(
                prompt, chat_template=template, tokenize=False, add_generation_prompt=True
            )
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
        raise TemplateRefused(_refusal(e)) from None


def token_lengths(tokenizer, rows: list[dict], chat_template: str | None = None) -> list[int]:
    """Tokens per row (the longest sequence for preference pairs)."""
    return [max(len(v.ids) for v in token_views(tokenizer, row, chat_template, with_text=False)) for row in rows]


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


CHECK_ROWS = 64


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
    import itertools

    rows = [r for r in itertools.islice(iter(rows), n) if _trains(r)]
    if not rows:  # nothing to check: e.g. prompt-only rows (GRPO/RLOO generate their completions)
        return []
    template = chat_template or tokenizer.chat_template
    chat_rows = any("messages" in r or is_chat(r.get("prompt")) for r in rows)
    if chat_rows and not template:
        raise ValueError(
            "the tokenizer has no chat template and none was given; set template.name to a built-in "
            f"({', '.join(BUILTIN_TEMPLATES)}) or a .jinja file"
        )
    eot = end_of_turn_ids(tokenizer, template)
    total = 0
    eot_trained = False
    empty_rows, partial_rows = [], []
    for i, row in enumerate(rows):
        row_total = 0
        try:
            views = token_views(tokenizer, row, template, assistant_only_loss=assistant_only_loss, with_text=False)
        except TemplateRefused as e:
            raise ValueError(f"row {i + 1}: the chat template refuses it: {e}") from None
        for view in views:
            trained = view.trained[:max_length] if max_length else view.trained
            row_total += sum(trained)
            eot_trained = eot_trained or any(t and tid in eot for tid, t in zip(view.ids, trained, strict=False))
            if assistant_only_loss and "messages" in row and not max_length:
                turns = sum(m["role"] == "assistant" for m in row["messages"])
                if 0 < _spans(trained) < turns:
                    partial_rows.append(i)
        total += row_total
        if row_total == 0:
            empty_rows.append(i)
    cut = f" within max_length {max_length}" if max_length else ""
    scope = "this row" if len(rows) == 1 else f"the first {len(rows)} rows"
    if total == 0:
        raise ValueError(
            f"no token of {scope} is trained{cut}: the loss would be empty. "
            + (
                "The prompts fill max_length: raise train.max_length or shorten the prompts."
                if max_length
                else "`tunedeck template render` shows which tokens the template trains."
            )
        )
    warnings = []
    if empty_rows:
        shown = ", ".join(map(str, empty_rows[:10]))
        warnings.append(f"{len(empty_rows)} of {scope} have no trained token{cut} (rows {shown})")
    if partial_rows:
        shown = ", ".join(map(str, partial_rows[:10]))
        warnings.append(
            f"in {len(partial_rows)} multi-turn rows (rows {shown}) only some assistant turns are trained; "
            "the template marks fewer turns than there are (only the last?)"
        )
    if not eot_trained:
        names = ", ".join(sorted(set(eot.values()))) or "(the tokenizer has no eos_token)"
        split = _split_end_of_turn(tokenizer, template)
        hint = f"; the template's {', '.join(split)} is not a token of this model" if split else ""
        warnings.append(
            f"the end-of-turn token ({names}) is never trained in {scope}{hint}: the model may "
            "never learn to stop. Put the end-of-turn token inside {% generation %}…{% endgeneration %}, "
            "or use a built-in template that matches the model"
        )
    return warnings
