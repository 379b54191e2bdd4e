"""An Ollama Modelfile beside each GGUF: FROM, a Go TEMPLATE equivalent to the chat template, stops.

Ollama does not run Jinja: its TEMPLATE is a Go text/template over ``.Messages``. The template is
derived by rendering the HF chat template on marker conversations and reading off, per role, the
text before and after the message content, the text that opens the conversation, and the
generation prompt. The result is then rendered (``render_go_template``, which implements the
subset emitted here) on the probe conversations and compared with the HF tokenizer's rendering;
``matches`` says whether every one agreed. Templates that vary with position or content (a default
system prompt only when the conversation has none is handled; per-message logic, content
rewriting, or turns merged into one are not): then ``matches`` is False and the report names the
first conversation that differs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tunedeck.engine.export.samples import SYNTHETIC_PROBES, Conversation
from tunedeck.engine.templates.mask import render_turn
from tunedeck.engine.templates.render import Render

_MARK = {"system": "\u2063SYS\u2063", "user": "\u2063USR\u2063", "assistant": "\u2063AST\u2063", "user2": "\u2063US2\u2063"}


@dataclass
class Affixes:
    head: str = ""  # before the first message
    generation: str = ""
    roles: dict[str, tuple[str, str]] = field(default_factory=dict)  # role -> (prefix, suffix)
    head_system: str | None = None  # before the first message when it is a system turn, if different
    system_fold: str | None = None  # the system prompt goes into the first user turn, followed by this (Gemma 3)


class TemplateShapeError(ValueError):
    """The chat template does not reduce to per-role affixes."""


def _split(text: str, *marks: str) -> list[str]:
    parts, rest = [], text
    for m in marks:
        if rest.count(m) != 1:
            raise TemplateShapeError(f"marker {m!r} appears {rest.count(m)} times")
        before, rest = rest.split(m)
        parts.append(before)
    parts.append(rest)
    return parts


def derive_affixes(render: Render) -> Affixes:
    """Read per-role prefixes/suffixes, the opening text and the generation prompt off the renders of a marker
    conversation's growing prefixes (``render_turn``, as the assistant-only loss mask reads them)."""
    u, a, u2, s = _MARK["user"], _MARK["assistant"], _MARK["user2"], _MARK["system"]
    conversation = [{"role": "user", "content": u}, {"role": "assistant", "content": a}, {"role": "user", "content": u2}]
    reply, follow = render_turn(render, conversation, 1), render_turn(render, conversation, 2)
    if not reply.before.startswith(reply.plain):
        raise TemplateShapeError("the generation prompt is not appended at the end")
    if not (reply.stable and follow.stable):
        raise TemplateShapeError("the template renders earlier turns differently once later ones follow")
    head_pre_u, suf_u = _split(reply.plain, u)
    pre_a, suf_a = _split(reply.after[len(reply.plain) :], a)
    pre_u, tail = _split(follow.after[len(follow.plain) :], u2)
    if tail != suf_u:
        raise TemplateShapeError("turn affixes depend on the position in the conversation")
    if not head_pre_u.endswith(pre_u):
        raise TemplateShapeError("the first user turn opens differently from later ones")
    head = head_pre_u[: len(head_pre_u) - len(pre_u)]
    generation = reply.generation
    roles = {"user": (pre_u, suf_u), "assistant": (pre_a, suf_a)}
    head_system = None
    try:
        head_pre_s, between_su, _ = _split(render([{"role": "system", "content": s}, conversation[0]], False), s, u)
    except Exception:  # the template has no system role (or raises on it): Ollama's system turns are dropped
        return Affixes(head, generation, roles)
    if head_pre_s == head + pre_u:  # no turn of its own: the system text opens the first user turn (Gemma 3)
        system, rest = {"role": "system", "content": s}, conversation[1:]
        folded = [{"role": "user", "content": s + between_su + u}, *rest]
        if render([system, conversation[0], *rest], True) == render(folded, True):  # the first turn, not the last
            return Affixes(head, generation, roles, system_fold=between_su)
    if between_su.endswith(pre_u):
        suf_s = between_su[: len(between_su) - len(pre_u)]
        # The system prefix is the user's with the role renamed (ChatML, Llama 3, ...) when that fits;
        # what precedes it opens a conversation that starts with a system turn (a template may put
        # a default system prompt in front of conversations without one).
        guess = pre_u.replace("user", "system")
        if "user" in pre_u and head_pre_s.endswith(guess):
            roles["system"] = (guess, suf_s)
            opening = head_pre_s[: len(head_pre_s) - len(guess)]
            head_system = opening if opening != head else None
        elif head_pre_s.startswith(head):
            roles["system"] = (head_pre_s[len(head) :], suf_s)
    return Affixes(head, generation, roles, head_system)


def _go_literal(text: str) -> str:
    """Literal text for a Go template: everything verbatim except the ``{{`` delimiter."""
    return '{{ "{{" }}'.join(text.split("{{"))


def go_template(aff: Affixes) -> str:
    """One line (whitespace inside the literals matters; no ``{{-`` trimming is used)."""
    branches = []
    roles = {"system": None, **aff.roles} if aff.system_fold is not None else aff.roles
    for i, (role, affixes) in enumerate(roles.items()):
        kw = "if" if i == 0 else "else if"
        if affixes is None:  # a folded system prompt waits for the first user turn
            body = "{{ $system = .Content }}"
        elif role == "assistant":
            body = f"{_go_literal(affixes[0])}{{{{ .Content }}}}{{{{ if not $last }}}}{_go_literal(affixes[1])}{{{{ end }}}}"
        elif role == "user" and aff.system_fold is not None:
            fold = f'{{{{ if $system }}}}{{{{ $system }}}}{_go_literal(aff.system_fold)}{{{{ $system = "" }}}}{{{{ end }}}}'
            body = f"{_go_literal(affixes[0])}{fold}{{{{ .Content }}}}{_go_literal(affixes[1])}"
        else:
            body = f"{_go_literal(affixes[0])}{{{{ .Content }}}}{_go_literal(affixes[1])}"
        branches.append(f'{{{{ {kw} eq .Role "{role}" }}}}{body}')
    head, opening = _go_literal(aff.head), ""
    if aff.system_fold is not None:
        head = '{{ $system := "" }}' + head
    if aff.head_system is not None:
        head = ""
        opening = f'{{{{ if eq $i 0 }}}}{{{{ if eq .Role "system" }}}}{_go_literal(aff.head_system)}{{{{ else }}}}{_go_literal(aff.head)}{{{{ end }}}}{{{{ end }}}}'
    return (
        f"{head}{{{{ range $i, $_ := .Messages }}}}{{{{ $last := eq (len (slice $.Messages $i)) 1 }}}}{opening}"
        + "".join(branches)
        + "{{ end }}"
        + f'{{{{ if and $last (ne .Role "assistant") }}}}{_go_literal(aff.generation)}{{{{ end }}}}'
        + "{{ end }}"
    )


# --------------------------------------------------------------------------- Go template subset


_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\(|\)|[^\s()]+')


def _parse_expr(tokens: list[str]):
    def atom(i):
        if tokens[i] == "(":
            node, i = call(i + 1)
            return node, i + 1  # skip ")"
        return ("lit", tokens[i]), i + 1

    def call(i):
        items = []
        while i < len(tokens) and tokens[i] != ")":
            node, i = atom(i)
            items.append(node)
        return (items[0] if len(items) == 1 else ("call", items)), i

    node, _ = call(0)
    return node


def _eval(node, scope: dict):
    if node[0] == "lit":
        tok = node[1]
        if tok.startswith('"'):
            return bytes(tok[1:-1], "utf-8").decode("unicode_escape")
        if tok.lstrip("-").isdigit():
            return int(tok)
        if tok == "$.Messages":
            return scope["$"]["Messages"]
        if tok.startswith("$"):
            return scope[tok]
        if tok.startswith("."):
            return scope["."][tok[1:]]
        return ("func", tok)
    items = node[1]
    fn = _eval(items[0], scope)
    args = [_eval(a, scope) for a in items[1:]]
    name = fn[1]
    funcs = {
        "eq": lambda a, b: a == b,
        "ne": lambda a, b: a != b,
        "not": lambda a: not a,
        "and": lambda *a: all(a),
        "or": lambda *a: any(a),
        "len": len,
        "slice": lambda x, i, j=None: x[i:j],
    }
    if name not in funcs:
        raise ValueError(f"unsupported Go template function {name!r}")
    return funcs[name](*args)


def render_go_template(template: str, messages: Conversation) -> str:
    """Render the subset of Go's text/template that ``go_template`` emits (range, if/else if, eq, ...)."""
    pieces: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(template):
        if m.start() > pos:
            pieces.append(("text", template[pos : m.start()]))
        pieces.append(("action", m.group(1)))
        pos = m.end()
    if pos < len(template):
        pieces.append(("text", template[pos:]))

    def block(i: int, scope: dict, out: list[str], emit: bool) -> tuple[int, str]:
        """Run pieces from i until an else/end at this level; return (index, terminator)."""
        while i < len(pieces):
            kind, body = pieces[i]
            if kind == "text":
                if emit:
                    out.append(body)
                i += 1
                continue
            if body == "end" or body.startswith("else"):
                return i, body
            if body.startswith("range "):
                spec = body[len("range ") :]
                var_i, _, expr = spec.partition(":=")
                names = [v.strip() for v in var_i.split(",")]
                items = _eval(_parse_expr(_TOKEN.findall(expr.strip())), scope) if emit else []
                start = i + 1
                end = start
                saved = {k: scope[k] for k in (".", *names) if k in scope}
                for n, item in enumerate(items):  # one scope: an assignment in the body outlives the iteration
                    scope.update({".": item, names[0]: n, names[-1]: item})
                    end, _ = block(start, scope, out, True)
                scope.update(saved)
                if not items:
                    end, _ = block(start, scope, out, False)
                i = end + 1
                continue
            if body.startswith("if "):
                taken = False
                cond = body[3:]
                i += 1
                while True:
                    ok = emit and not taken and bool(_eval(_parse_expr(_TOKEN.findall(cond)), scope))
                    i, term = block(i, scope, out, ok)
                    taken = taken or ok
                    if term == "end":
                        i += 1
                        break
                    cond = term[len("else if ") :] if term.startswith("else if ") else "true"
                    i += 1
                continue
            assign = re.match(r"(\$\w+)\s*:?=\s*(.*)", body, re.S)
            if assign:  # declaration (:=) or assignment (=)
                if emit:
                    scope[assign.group(1)] = _eval(_parse_expr(_TOKEN.findall(assign.group(2).strip())), scope)
                i += 1
                continue
            if emit:
                value = True if body == "true" else _eval(_parse_expr(_TOKEN.findall(body)), scope)
                out.append(str(value))
            i += 1
        return i, ""

    out: list[str] = []
    root = {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages]}
    block(0, {".": root, "$": root}, out, True)
    return "".join(out)


# --------------------------------------------------------------------------- the Modelfile


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_modelfile(gguf_name: str, render: Render, stops: list[str], probes: list[Conversation]) -> tuple[str, dict]:
    """(Modelfile text, report) for a GGUF whose chat template ``render`` applies."""
    report: dict = {"stops": stops}
    try:
        aff = derive_affixes(render)
        template = go_template(aff)
        report["template"] = "derived from the chat template (per-role affixes)"
    except Exception as e:  # TemplateShapeError, or the model has no chat template at all
        template = None
        report["template"] = (
            f"not derivable: {e}; the Modelfile has no TEMPLATE, so Ollama falls back to the template it "
            "recognises from the GGUF's tokenizer.chat_template"
        )
    checked = 0
    if template is not None:
        for k, conv in enumerate([*probes, *SYNTHETIC_PROBES]):
            try:
                want = render(conv, True)
            except Exception:
                continue
            got = render_go_template(template, conv)
            checked += 1
            if got != want:
                from tunedeck.engine.export.parity import short_diff

                report["matches"] = False
                report["difference"] = f"conversation {k}: {short_diff(got, want)}"
                break
        else:
            report["matches"] = checked > 0
    else:
        report["matches"] = False
    report["conversations"] = checked
    lines = [f"FROM ./{gguf_name}"]
    if template is not None:
        if '"""' in template:
            report["matches"] = False
            report["difference"] = 'the template contains """, which a Modelfile cannot quote'
        else:
            lines.append(f'TEMPLATE """{template}"""')
    lines += [f"PARAMETER stop {_quote(s)}" for s in stops]
    return "\n".join(lines) + "\n", report


def write_modelfile(gguf_path: Path, render: Render, stops: list[str], probes: list[Conversation]) -> dict:
    """Write ``<gguf>.Modelfile`` beside the GGUF; return the report (path, matches, ...)."""
    text, report = build_modelfile(gguf_path.name, render, stops, probes)
    path = gguf_path.with_name(gguf_path.name.removesuffix(".gguf") + ".Modelfile")
    path.write_text(text, encoding="utf-8")
    return {"path": str(path), **report}
