"""Template, tokenizer and stop parity between a GGUF and the HF tokenizer/model it came from.

A chat template that renders differently, a different EOS, an end-of-turn token llama.cpp does
not stop on, or a pre-tokenizer that splits text differently all make an exported model answer
with gibberish or never stop, while every weight is right. Each check here names the token or the
string, and says which GGUF metadata would correct it (``Mismatch.fix``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.engine.export.errors import ExportError
from tunedeck.engine.export.samples import SYNTHETIC_PROBES, Conversation

log = logging.getLogger("tunedeck.export")

# Chat formats llama-cpp-python substitutes for a GGUF template it recognises, and their functions.
_BUILTIN_FORMATS = {"chatml": "format_chatml", "mistral-instruct": "format_mistral_instruct", "llama-3": "format_llama3"}


class ParityError(ExportError):
    """The GGUF does not render, tokenize or stop like the HF model."""


@dataclass
class Mismatch:
    check: str
    message: str
    fix: dict[str, Any] = field(default_factory=dict)  # GGUF metadata that corrects it; empty: metadata cannot


def short_diff(a: str, b: str, context: int = 24) -> str:
    """Where two strings first differ, with a little context on each side."""
    i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    lo = max(0, i - context)
    return f"at character {i}: {a[lo : i + context]!r} vs {b[lo : i + context]!r}"


def expected_template(tokenizer, probes: list[Conversation]) -> tuple[str | None, bool]:
    """The chat template to write into the GGUF, and whether ``{% generation %}`` markers were removed.

    The markers only steer TRL's loss mask; llama.cpp's server and Ollama do not know the tag. They
    are removed when that renders every probe identically (it always should; whitespace control
    around a marker is the exception), otherwise the template is kept as it is.
    """
    from tunedeck.engine.templates.render import has_generation_markers, strip_generation_markers

    template = tokenizer.chat_template
    if not isinstance(template, str) or not has_generation_markers(template):
        return template if isinstance(template, str) else None, False
    stripped = strip_generation_markers(template)
    for conv in [*probes, *SYNTHETIC_PROBES]:
        for agp in (True, False):
            try:
                want = tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=agp)
            except Exception:  # the template refuses this conversation: nothing to compare
                continue
            if tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=agp, chat_template=stripped) != want:
                return template, False
    return stripped, True


def _formatter(llm, add_generation_prompt: bool):
    """The renderer llama-cpp-python's chat completion will use for this GGUF, and its name."""
    from llama_cpp import llama_chat_format

    if llm.chat_format == "chat_template.default":
        eos, bos = llm.token_eos(), llm.token_bos()
        fmt = llama_chat_format.Jinja2ChatFormatter(
            template=llm.metadata["tokenizer.chat_template"],
            eos_token=_text(llm, eos) if eos != -1 else "",
            bos_token=_text(llm, bos) if bos != -1 else "",
            add_generation_prompt=add_generation_prompt,
        )
        return (lambda conv: fmt(messages=conv).prompt), "the GGUF's Jinja template"
    name = _BUILTIN_FORMATS.get(llm.chat_format)
    if name and add_generation_prompt:
        fn = getattr(llama_chat_format, name)
        return (lambda conv: fn(messages=conv).prompt), f"llama-cpp-python's built-in {llm.chat_format!r} format"
    return None, f"llama-cpp-python's {llm.chat_format!r} format"


def _vocab(llm):
    import llama_cpp

    return llama_cpp.llama_model_get_vocab(llm.model)


def _text(llm, tid: int) -> str:
    """Token ``tid`` as the GGUF's vocabulary writes it (``<|im_end|>``, ``▁Hello``), not the text it decodes to."""
    import llama_cpp

    return llama_cpp.llama_vocab_get_text(_vocab(llm), tid).decode("utf-8")


def _token(llm, tid: int) -> dict:
    return {"id": tid, "token": _text(llm, tid) if tid >= 0 else None}


def _pieces(tokenizer, ids: list[int]) -> list[str]:
    return tokenizer.convert_ids_to_tokens(ids)


def check_metadata(gguf_path: Path, tokenizer, stop_ids: list[int], template: str | None, probes: list[Conversation]) -> tuple[dict, list[Mismatch]]:
    """Template, EOS/EOT/EOG, BOS, rendering and tokenization parity; needs only the GGUF's vocabulary."""
    from llama_cpp import Llama

    from tunedeck.engine.export.llamalog import captured_llama_log

    with captured_llama_log():  # a vocabulary-only load warns about the context size: noise here
        llm = Llama(str(gguf_path), vocab_only=True, verbose=False)
    try:
        return _check_metadata(llm, tokenizer, stop_ids, template, probes)
    finally:
        llm.close()


def _check_metadata(llm, tokenizer, stop_ids, template, probes) -> tuple[dict, list[Mismatch]]:
    """Each check in turn (they all take these arguments): its part of the report, and its mismatches."""
    report: dict[str, Any] = {}
    problems: list[Mismatch] = []
    for check in (_check_template, _check_stop_tokens, _check_special_tokens, _check_conversations):
        part, found = check(llm, tokenizer, stop_ids, template, probes)
        report.update(part)
        problems += found
    return report, problems


def _check_template(llm, tokenizer, stop_ids, template, probes) -> tuple[dict, list[Mismatch]]:
    """The chat template itself."""
    gguf_template = llm.metadata.get("tokenizer.chat_template")
    report = {"chat_template": {"equal": gguf_template == template, "hf": template is not None, "gguf": gguf_template is not None}}
    if template is None or gguf_template == template:
        return report, []
    what = "has no tokenizer.chat_template" if gguf_template is None else f"tokenizer.chat_template differs from the HF tokenizer's {short_diff(gguf_template, template)}"
    return report, [Mismatch("chat_template", f"the GGUF {what}", {"tokenizer.chat_template": template})]


def _check_stop_tokens(llm, tokenizer, stop_ids, template, probes) -> tuple[dict, list[Mismatch]]:
    """End of sequence, end of turn, end of generation."""
    import llama_cpp

    problems: list[Mismatch] = []
    vocab = _vocab(llm)
    hf_eos = tokenizer.eos_token_id
    eos = llm.token_eos()
    eot = llama_cpp.llama_vocab_eot(vocab)
    eog = [i for i in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, i)]
    report: dict[str, Any] = {}
    report["eos"] = {"gguf": _token(llm, eos), "hf": [{"id": i, "token": tokenizer.convert_ids_to_tokens(i)} for i in stop_ids]}
    report["eot"] = {"gguf": _token(llm, eot), "explicit": "tokenizer.ggml.eot_token_id" in llm.metadata}
    report["eog"] = [_token(llm, i) for i in eog]
    names = ", ".join(f"{tokenizer.convert_ids_to_tokens(i)!r} (id {i})" for i in stop_ids) or "nothing"
    if stop_ids and eos not in stop_ids:
        problems.append(
            Mismatch(
                "eos",
                f"the GGUF's EOS is {_token(llm, eos)['token']!r} (id {eos}) but the HF model ends replies with {names}",
                {"tokenizer.ggml.eos_token_id": hf_eos if hf_eos is not None else stop_ids[0]},
            )
        )
    if report["eot"]["explicit"] and stop_ids and eot not in stop_ids:
        problems.append(
            Mismatch(
                "eot",
                f"the GGUF's end-of-turn token is {_token(llm, eot)['token']!r} (id {eot}) but the HF model ends turns with {names}",
                {"tokenizer.ggml.eot_token_id": stop_ids[0]},
            )
        )
    for sid in stop_ids:
        if sid not in eog:
            key = "tokenizer.ggml.eos_token_id" if sid == hf_eos else "tokenizer.ggml.eot_token_id"
            problems.append(
                Mismatch(
                    "eog",
                    f"llama.cpp would not stop at {tokenizer.convert_ids_to_tokens(sid)!r} (id {sid}), where the HF model "
                    f"stops: it is not an end-of-generation token in the GGUF (those are {[t['token'] for t in report['eog']]})",
                    {key: sid},
                )
            )
    return report, problems


def _check_special_tokens(llm, tokenizer, stop_ids, template, probes) -> tuple[dict, list[Mismatch]]:
    """Special tokens added around plain text (BOS/EOS)."""
    import llama_cpp

    meta = llm.metadata
    probe = "Hello world"
    hf_ids = tokenizer(probe, add_special_tokens=True)["input_ids"]
    gguf_ids = llm.tokenize(probe.encode(), add_bos=True, special=True)
    hf_bos = bool(hf_ids) and hf_ids[0] == tokenizer.bos_token_id and tokenizer.bos_token_id is not None
    gguf_bos = bool(llama_cpp.llama_vocab_get_add_bos(_vocab(llm)))
    report: dict[str, Any] = {"add_bos": {"hf": hf_bos, "gguf": gguf_bos}}
    if hf_ids == gguf_ids:
        return report, []
    if _forced_bos(meta, tokenizer, template, hf_ids, gguf_ids):
        report["add_bos"]["note"] = (
            "llama.cpp adds BOS to every Gemma 4 text whatever the file says (src/llama-vocab.cpp, ggml-org/llama.cpp"
            "#21500) where the HF tokenizer leaves it to the chat template: chat prompts get one BOS either way, raw "
            "completions get a BOS in llama.cpp only"
        )
        log.warning(report["add_bos"]["note"])
        return report, []
    fix: dict[str, Any] = {"tokenizer.ggml.add_bos_token": hf_bos}
    if hf_bos:
        fix["tokenizer.ggml.bos_token_id"] = tokenizer.bos_token_id
    fix["tokenizer.ggml.add_eos_token"] = bool(hf_ids) and hf_ids[-1] == tokenizer.eos_token_id and len(hf_ids) > len(tokenizer(probe, add_special_tokens=False)["input_ids"])
    return report, [
        Mismatch(
            "special_tokens",
            f"tokenizing {probe!r} with special tokens: the HF tokenizer gives {_pieces(tokenizer, hf_ids)}, "
            f"llama.cpp {[_text(llm, i) for i in gguf_ids]} (add_bos: HF {hf_bos}, GGUF {gguf_bos})",
            fix,
        )
    ]


def _check_conversations(llm, tokenizer, stop_ids, template, probes) -> tuple[dict, list[Mismatch]]:
    """Rendering and tokenization of conversations, with and without the generation prompt."""
    gguf_template = llm.metadata.get("tokenizer.chat_template")
    problems: list[Mismatch] = []
    rendered = equal = token_equal = tokenized = 0
    renderer = None
    if gguf_template is not None and template is not None:
        for agp in (True, False):
            fmt, renderer_name = _formatter(llm, agp)
            renderer = renderer or renderer_name
            if fmt is None:
                continue
            for k, conv in enumerate([*probes, *SYNTHETIC_PROBES]):
                if not agp and conv[-1]["role"] != "assistant":
                    conv = [*conv, {"role": "assistant", "content": "An answer."}]
                try:
                    want = tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=agp)
                except Exception:  # the HF template refuses it (e.g. no system role): not a parity question
                    continue
                rendered += 1
                try:
                    got = fmt(conv)
                except Exception as e:
                    problems.append(Mismatch("render", f"llama.cpp cannot render conversation {k} ({renderer_name}): {e}", _template_fix(gguf_template, template)))
                    continue
                if got != want:
                    problems.append(
                        Mismatch(
                            "render",
                            f"llama.cpp ({renderer_name}) renders conversation {k} differently from the HF tokenizer "
                            f"(add_generation_prompt={agp}) {short_diff(got, want)}",
                            _template_fix(gguf_template, template),
                        )
                    )
                    continue
                equal += 1
                tokenized += 1
                mismatch = _compare_tokens(llm, tokenizer, want, f"conversation {k} (add_generation_prompt={agp})")
                if mismatch is None:
                    token_equal += 1
                else:
                    problems.append(mismatch)
    report = {
        "render": {"renderer": renderer, "conversations": rendered, "equal": equal},
        "tokenization": {"texts": tokenized, "equal": token_equal},
    }
    return report, problems


def _compare_tokens(llm, tokenizer, text: str, what: str) -> Mismatch | None:
    """None where llama.cpp tokenizes ``text`` (a rendered ``what``) as the HF tokenizer does; else the first difference."""
    hf_tok = tokenizer(text, add_special_tokens=False)["input_ids"]
    gg_tok = llm.tokenize(text.encode(), add_bos=False, special=True)
    if hf_tok == gg_tok:
        return None
    i = next((j for j, (x, y) in enumerate(zip(hf_tok, gg_tok, strict=False)) if x != y), min(len(hf_tok), len(gg_tok)))
    return Mismatch(
        "tokens",
        f"llama.cpp tokenizes {what} differently from the HF tokenizer from token {i}: "
        f"HF {_pieces(tokenizer, hf_tok[i : i + 6])} vs llama.cpp "
        f"{[_text(llm, t) for t in gg_tok[i : i + 6]]} (pre-tokenizer "
        f"{llm.metadata.get('tokenizer.ggml.pre')!r}); set export.pre_tokenizer to the one this tokenizer uses",
    )


def _forced_bos(meta, tokenizer, template, hf_ids: list[int], gguf_ids: list[int]) -> bool:
    """True where the only difference is the BOS llama.cpp forces on Gemma 4 and the chat template writes BOS itself."""
    bos = tokenizer.bos_token
    if (
        meta.get("tokenizer.ggml.model") != "gemma4"
        or not bos
        or not template
        or gguf_ids != [tokenizer.bos_token_id, *hf_ids]
    ):
        return False
    try:
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
        )
    except Exception:
        return False
    return rendered.startswith(bos)


def _template_fix(gguf_template: str | None, template: str | None) -> dict[str, Any]:
    return {"tokenizer.chat_template": template} if template is not None and gguf_template != template else {}


def check_stop(gguf_path: Path, tokenizer, probes: list[Conversation], hf_replies: list[dict], max_tokens: int) -> tuple[dict, list[Mismatch]]:
    """Greedy generation with llama.cpp stops wherever the HF model's does (same prompts, same limit).

    Only a reply that repeats the HF reply and then runs on is a stop failure; a reply that took
    another path (float rounding at a near tie) is counted as ``diverged``, not blamed on metadata.
    """
    from tunedeck.engine.chat import ChatSession

    judged = [(conv, hf) for conv, hf in zip(probes, hf_replies, strict=True) if hf["stopped"]]
    report: dict[str, Any] = {"probes": len(probes), "hf_stopped": len(judged), "gguf_stopped": 0, "same_reply": 0, "diverged": 0}
    problems: list[Mismatch] = []
    if not judged:
        report["note"] = f"not judged: the HF model did not stop within {max_tokens} tokens on any probe"
        return report, problems
    with ChatSession(gguf_path, n_ctx=512) as chat:
        for conv, hf in judged:
            out = chat.llm.create_chat_completion(messages=conv, temperature=0.0, max_tokens=max_tokens)
            choice = out["choices"][0]
            text = choice["message"]["content"] or ""
            report["same_reply"] += text.strip() == hf["text"].strip()
            if choice["finish_reason"] == "stop":
                report["gguf_stopped"] += 1
                continue
            if not text.strip().startswith(hf["text"].strip()):
                report["diverged"] += 1
                continue
            stop = tokenizer.convert_ids_to_tokens(hf["tokens"][-1])
            problems.append(
                Mismatch(
                    "stop",
                    f"the HF model ends its reply to {conv[-1]['content'][:60]!r} with {stop!r} after "
                    f"{len(hf['tokens'])} tokens; llama.cpp wrote the same reply, then ran on to the {max_tokens}-token "
                    f"limit without stopping: {text[:80]!r}",
                )
            )
    return report, problems


def raise_for(path: Path, problems: list[Mismatch], fix_allowed: bool) -> None:
    """ParityError listing every mismatch, and how to fix it."""
    if not problems:
        return
    shown: list[str] = []
    for check in dict.fromkeys(p.check for p in problems):
        same = [p for p in problems if p.check == check]
        shown += [f"  - [{check}] {p.message}" for p in same[:2]]
        if len(same) > 2:
            shown.append(f"  - [{check}] ... and {len(same) - 2} more like it")
    lines = "\n".join(shown)
    if all(p.fix for p in problems) and not fix_allowed:
        hint = (
            "The HF tokenizer is the reference. To write its values into the GGUF, set export.fix_metadata: true "
            "(or pass --fix-metadata); or fix the model's tokenizer files and export again."
        )
    elif not all(p.fix for p in problems):
        hint = "GGUF metadata cannot correct every item above: fix the tokenizer or the converter settings named there."
    else:
        hint = "Writing corrected metadata did not make the GGUF agree with the HF tokenizer."
    raise ParityError(f"{path.name} does not behave like the HF model it came from:\n{lines}\n{hint}")
