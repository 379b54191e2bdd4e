"""The assistant-only loss mask of any template, derived by rendering growing prefixes of the conversation.

A template with ``{% generation %}`` markers says itself what is trained (tunedeck.engine.templates.views reads
them); for every other one, a model's own included, ``assistant_spans`` finds the character spans of
the assistant turns, and ``spans_to_tokens`` turns them into the trained-token mask.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from tunedeck.engine.templates.render import Render, safe_render
from tunedeck.engine.templates.specs import KNOWN_END_OF_TURN

_TAG = re.compile(r"<\|?[^<>\s|]{1,40}\|?>|</?s>|\[/?[A-Z_]{1,20}\]")


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
    cut = common_prefix(upto, cont)
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
        head, tail = turn[: turn.find(content)], turn[turn.find(content) + len(content) :]
        begin = at - len(head) if head and full[:at].endswith(head) else at
        after = full[at + len(content) :]
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


_PROBE = {"role": "assistant", "content": "\u2063PROBE\u2063"}


def _calls(message: dict) -> list:
    """The (name, arguments) of each tool call: what a template renders of it, ids aside."""
    return [((c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments"))
            for c in message.get("tool_calls") or []]  # fmt: skip


def call_text(render: Render, messages: list, k: int, upto: str, lo: int = 0) -> str:
    """What the template writes for assistant turn k's tool calls (a turn without text), as it stands at the
    end of ``upto`` (the render of ``messages[:k + 1]``): where ``upto`` parts from the same conversation with
    the turn replaced by a reply of probe text, through where the two agree again (the end-of-turn text), the
    call's markers included (``[TOOL_CALLS]``, ``<｜tool▁calls▁begin｜>``) and never cutting a tag, from ``lo`` on
    (where the generation prompt ends). "" when the template renders none of the calls' names there or raises."""
    try:
        alt = render([*messages[:k], _PROBE], False)
    except Exception:
        return ""
    begin = common_prefix(upto, alt)
    end = len(upto) - common_prefix(upto[begin:][::-1], alt[begin:][::-1])
    for m in _TAG.finditer(upto):
        begin = m.start() if m.start() < begin < m.end() else begin
        end = m.end() if m.start() < end < m.end() else end
    text = upto[max(begin, lo) : end].strip()
    return text if any(isinstance(n, str) and n and n in text for n, _ in _calls(messages[k])) else ""


def _call_anchor(render: Render, messages: list, k: int, upto: str, full: str, cursor: int,
                 lo: int = 0) -> tuple[str, str]:  # fmt: skip
    """(the rendered tool call of turn k to find the turn by, "") or ("", why it cannot be used)."""
    text = call_text(render, messages, k, upto, lo)
    if not text:
        return "", "the template writes no tool call for it that names the function"
    same = sum(1 for m in messages[k:] if m.get("role") == "assistant" and _calls(m) == _calls(messages[k]))
    n = full.count(text, cursor)
    if n > same:
        return "", (f"its tool call renders as {text[:80]!r}, which stands {n} times in the rest of the conversation "
                    f"for {same} turn(s) that make that call: which one is its is ambiguous")  # fmt: skip
    return text, ""


def _call_start(upto: str, prompt: str, start: int, call: str) -> int:
    """``start`` moved back to the tag it falls inside when that tag opens the turn's tool ``call`` and is not
    the generation prompt's (DeepSeek: the prompt ends ``<think>\n</think>``, the turn starts
    ``<｜tool▁calls▁begin｜>``: one token, which would go untrained as it starts before the span)."""
    tag = next((m for m in _TAG.finditer(upto) if m.start() < start < m.end()), None)
    if tag and call and upto.startswith(call, tag.start()) and tag.group() not in prompt[tag.start() :]:
        return tag.start()
    return start


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
    plain = safe_render(render, messages[:k], False)
    before = safe_render(render, messages[:k], True) if assistant else plain
    after = safe_render(render, messages[: k + 1], False)
    return TurnRender(plain, before, after, common_prefix(before, after))


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
    full = safe_render(render, messages, False)
    spans: list[tuple[int, int]] = []
    notes: list[str] = []
    how, cursor = "prefixes", 0
    for k, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        content = message.get("content") if isinstance(message.get("content"), str) else ""
        calls_only = bool(message.get("tool_calls")) and not content.strip()  # found by its rendered call instead
        t = render_turn(render, messages, k)
        prompt, upto, start = t.before, t.after, t.start
        if start < len(t.plain):  # the messages before render differently
            lost = ""
            if calls_only:
                content, lost = _call_anchor(render, messages, k, upto, full, cursor)
            found = upto.rfind(content) if content else -1
            if found < 0:
                notes.append(f"turn {k}: the template renders the messages before it differently once it "
                             f"follows, and {lost or 'it has no text to find it by'}; not trained")  # fmt: skip
                how = "rewritten"
                continue
            notes.append(f"turn {k}: the template renders the messages before it differently once it follows; "
                         f"trained from its {'tool call' if calls_only else 'content'} on")  # fmt: skip
            how, start = "rewritten", found
        elif start < len(prompt):  # e.g. the generation prompt opens a thinking block the rendered turn lacks
            start = _call_start(upto, prompt, start, call_text(render, messages, k, upto)) if calls_only else start
            notes.append(f"turn {k}: the generation prompt adds {prompt[start:]!r}, which the rendered turn does "
                         "not have; trained from where they part")  # fmt: skip
        aligned = full[:start] == upto[:start]
        others = [
            m.get("content") for m in messages if m.get("role") != "assistant" and isinstance(m.get("content"), str)
        ]
        later = [m.get("content") for m in messages[k + 1 :] if isinstance(m.get("content"), str)]
        turn = upto[start : _turn_end(render, messages[: k + 1], upto, start, content)].rstrip()
        a, b, why = _locate(full, turn, content, start if aligned else -1, cursor, others, later)
        if not b and calls_only and not content:  # a turn of tool calls alone: found by its rendered call instead
            content, lost = _call_anchor(render, messages, k, upto, full, cursor, start)
            if not content:
                why = f"{why}, and {lost}"
            else:
                turn = upto[start : _turn_end(render, messages[: k + 1], upto, start, content)].rstrip()
                a, b, why = _locate(full, turn, content, start if aligned else -1, cursor, others, later)
                why = why or "the template renders it differently once later turns follow; found by its tool call"
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


def spans_to_tokens(tokenizer, spans: ChatSpans) -> tuple[list[int], list[bool]]:
    """The full render's token ids and, per token, whether it starts inside a trained span."""
    enc = tokenizer(spans.text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    trained = [s < e and any(a <= s < b for a, b in spans.spans) for s, e in enc["offset_mapping"]]
    return ids, trained


def common_prefix(a: Sequence, b: Sequence) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
