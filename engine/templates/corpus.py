"""Checking assistant-only masks against real chat templates: the ones llama.cpp vendors.

The llama-cpp-python sdist (kept beside the wheel it builds, see the Makefile) carries
``vendor/llama.cpp/models/templates/*.jinja``: the chat templates of current model families.
``check_template`` renders a fixed set of conversations (single turn, system, multi-turn, tools, two
rounds of tool calls under a system prompt, reasoning) through one template and checks that the derived
mask covers every assistant reply and tool call, and no system, user or tool text. ``coverage`` does it for every template: the test suite asserts it,
bench/template_coverage.py reports it.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any

from tunedeck.engine.templates.mask import assistant_spans
from tunedeck.engine.templates.render import TemplateRefused, chat_render

LLAMA_CPP_VERSION = "0.3.36"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
_CALL = {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo-7"}}}
_CALL_2 = {**_CALL, "id": "call00002", "function": {"name": "get_weather", "arguments": {"city": "Bergen-3"}}}
# Every text is unique, so where it lands in the render says whether it is trained.
CONVERSATIONS: dict[str, list[dict[str, Any]]] = {
    "single": [{"role": "user", "content": "USER-1 what is 3 plus 4?"},
               {"role": "assistant", "content": "REPLY-1 the sum is 7."}],
    "system": [{"role": "system", "content": "SYSTEM-1 you add numbers."},
               {"role": "user", "content": "USER-1 what is 3 plus 4?"},
               {"role": "assistant", "content": "REPLY-1 the sum is 7."}],
    "multi": [{"role": "user", "content": "USER-1 what is 3 plus 4?"},
              {"role": "assistant", "content": "REPLY-1 the sum is 7."},
              {"role": "user", "content": "USER-2 and 5 plus 6?"},
              {"role": "assistant", "content": "REPLY-2 the sum is 11."}],
    "tools": [{"role": "user", "content": "USER-1 weather in Oslo?"},
              {"role": "assistant", "content": "", "tool_calls": [_CALL]},
              {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": "TOOL-1 sunny, 21 C"},
              {"role": "assistant", "content": "REPLY-2 it is sunny."}],
    # Tool calls alone, on templates that rewrite earlier turns (Mistral's moves the system prompt to the last
    # user turn): each turn of calls must be found by its rendered call and trained through its end-of-turn.
    "tool-rounds": [{"role": "system", "content": "SYSTEM-1 you report the weather."},
                    {"role": "user", "content": "USER-1 weather in Oslo?"},
                    {"role": "assistant", "content": "", "tool_calls": [_CALL]},
                    {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": "TOOL-1 sunny, 21 C"},
                    {"role": "assistant", "content": "REPLY-2 it is sunny."},
                    {"role": "user", "content": "USER-3 and in Bergen?"},
                    {"role": "assistant", "content": "", "tool_calls": [_CALL_2]},
                    {"role": "tool", "tool_call_id": "call00002", "name": "get_weather", "content": "TOOL-2 rain, 12 C"},
                    {"role": "assistant", "content": "REPLY-4 it rains."}],
    "reasoning": [{"role": "user", "content": "USER-1 what is 3 plus 4?"},
                  {"role": "assistant", "content": "REPLY-1 the sum is 7.", "reasoning_content": "THINK-1 add them"},
                  {"role": "user", "content": "USER-2 and 5 plus 6?"},
                  {"role": "assistant", "content": "REPLY-2 the sum is 11.", "reasoning_content": "THINK-2 add them"}],
}  # fmt: skip


def llama_cpp_sdist() -> Path | None:
    """The llama-cpp-python sdist the Makefile keeps in its wheelhouse (TUNEDECK_LLAMA_SDIST overrides)."""
    if os.environ.get("TUNEDECK_LLAMA_SDIST"):
        return Path(os.environ["TUNEDECK_LLAMA_SDIST"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    found = sorted(cache.glob(f"tunedeck/wheels/llama-cpp-python-{LLAMA_CPP_VERSION}-*/llama_cpp_python-{LLAMA_CPP_VERSION}.tar.gz"))
    return found[0] if found else None


def vendored_templates(sdist: Path) -> dict[str, str]:
    """{model name: template text} from ``vendor/llama.cpp/models/templates/*.jinja`` in the sdist."""
    out = {}
    with tarfile.open(sdist) as tar:
        for member in tar:
            if member.isfile() and "/vendor/llama.cpp/models/templates/" in member.name and member.name.endswith(".jinja"):
                out[Path(member.name).stem] = tar.extractfile(member).read().decode("utf-8")
    return dict(sorted(out.items()))


def _inside(text: str, needle: str, spans: list[tuple[int, int]]) -> bool | None:
    """Whether ``needle`` lies in a trained span (None: the render does not contain it)."""
    at = text.find(needle)
    if at < 0:
        return None
    return any(a <= at and at + len(needle) <= b for a, b in spans)


def check_conversation(tokenizer, template: str, name: str, **template_kwargs: Any) -> dict[str, Any]:
    """One conversation through one template: ``{"status": ok|wrong|refused, "problems": [...], "how", "notes"}``."""
    messages = CONVERSATIONS[name]
    render = chat_render(tokenizer, template, TOOLS if name.startswith("tool") else None, **template_kwargs)
    try:
        spans = assistant_spans(render, messages)
        no_reasoning = assistant_spans(render, messages, train_on_reasoning=False) if name == "reasoning" else None
    except TemplateRefused as e:
        return {"status": "refused", "problems": [f"the template refuses it: {str(e)[:200]}"], "how": "", "notes": []}
    problems = []
    for m in messages:
        text, role = m.get("content") or "", m["role"]
        where = _inside(spans.text, text, spans.spans) if text else None
        if role == "assistant" and text and where is not True:
            problems.append(f"{text[:8]} is {'not rendered' if where is None else 'not trained'}")
        if role != "assistant" and where:
            problems.append(f"{role} text {text[:8]} is trained")
        for call in m.get("tool_calls") or []:
            if _inside(spans.text, call["function"]["arguments"]["city"], spans.spans) is False:
                problems.append(f"the tool call {call['function']['arguments']['city']} is not trained")
        if no_reasoning and m.get("reasoning_content") and _inside(no_reasoning.text, m["reasoning_content"], no_reasoning.spans):
            problems.append(f"{m['reasoning_content'][:7]} is trained with train_on_reasoning false")
    return {"status": "wrong" if problems else "ok", "problems": problems, "how": spans.how, "notes": spans.notes}


def check_template(tokenizer, template: str, **template_kwargs: Any) -> dict[str, Any]:
    """Every conversation through ``template``. Handled: it accepts at least one and every mask it gives is
    right; refused: it accepts none, or some mask would be wrong (the reason says which)."""
    results = {name: check_conversation(tokenizer, template, name, **template_kwargs) for name in CONVERSATIONS}
    accepted = [n for n, r in results.items() if r["status"] != "refused"]
    wrong = [f"{n}: {'; '.join(r['problems'])}" for n, r in results.items() if r["status"] == "wrong"]
    if wrong:
        reason = "; ".join(wrong)
    elif not accepted:
        reason = "refuses every test conversation: " + results["single"]["problems"][0]
    else:
        reason = ""
    return {"handled": not reason, "reason": reason, "accepted": accepted, "conversations": results}


def coverage(tokenizer, templates: dict[str, str]) -> dict[str, Any]:
    """check_template over ``templates``: handled / total and the refused ones with their reasons."""
    # Templates read bos_token/eos_token; the checking tokenizer's own may not exist or be named otherwise.
    results = {name: check_template(tokenizer, text, bos_token="<s>", eos_token="</s>") for name, text in templates.items()}
    refused = {name: r["reason"] for name, r in results.items() if not r["handled"]}
    return {
        "handled": len(results) - len(refused),
        "total": len(results),
        "share": round((len(results) - len(refused)) / len(results), 3) if results else 0.0,
        "refused": refused,
        "derived_by": {
            how: sorted(n for n, r in results.items() if r["handled"] and any(c["how"] == how for c in r["conversations"].values()))
            for how in ("prefixes", "rewritten")
        },
        "results": results,
    }
