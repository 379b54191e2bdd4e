"""How much an export verifies (``export.checks`` / ``tunedeck export --checks``), and what it says it covered.

- ``full``: every held-out text (``export.fidelity_texts``), every probe reply up to ``STOP_TOKENS``, and task
  accuracy on ``export.eval_rows`` for the HF model and for each file.
- ``quick`` (the default): the same kinds of check on samples sized to a token budget, so the cost grows with the
  model like merge, convert and quantize do (a forward pass per token against a pass over the weights): perplexity,
  top-1 agreement and KL on ``QUICK_TOKENS`` token positions per file, stop parity on ``QUICK_PROBES`` probes up to
  ``STOP_TOKENS`` tokens, and each file's reply only to the probes the HF model stopped on, cut a few tokens past
  where it stopped; no task accuracy. Template, EOS/EOT/EOG, BOS, rendering and tokenization parity need no model and are checked
  in full at every level but ``none``: a broken template or EOS fails a quick export as it fails a full one.
- ``none``: nothing is loaded or generated; the files are written unchecked, and the report says so.

Both sides of every check run on the GPU when there is one: the HF reference on CUDA when torch sees it, the GGUF
in llama.cpp with every layer offloaded when llama-cpp-python is built with GPU offload (``tunedeck.engine.chat.open_llama``,
which falls back to the CPU when the GPU cannot hold the file, and says so).
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("quick", "full", "none")
STOP_TOKENS = 64  # generation limit of the HF replies and the stop parity check
QUICK_PROBES = 2
QUICK_TOKENS = 256  # token positions per file (top-1 and KL on each; perplexity on the scored reply tokens)
QUICK_REPLY_SLACK = 8  # quick: a file's reply may run this many tokens past where the HF model stopped


@dataclass(frozen=True)
class CheckPlan:
    level: str
    stop_tokens: int  # generation limit of the HF replies and the stop parity check
    probes: int | None  # probe conversations replied to (None: all)
    tokens: int | None  # token positions per file (None: every held-out text whole)
    eval_rows: int  # rows of task accuracy, for the HF model and each file

    @property
    def runs(self) -> bool:
        return self.level != "none"


def plan(level: str, eval_rows: int) -> CheckPlan:
    if level == "full":
        return CheckPlan("full", STOP_TOKENS, None, None, eval_rows)
    if level == "quick":
        return CheckPlan("quick", STOP_TOKENS, QUICK_PROBES, QUICK_TOKENS, 0)
    if level == "none":
        return CheckPlan("none", 0, 0, 0, 0)
    raise ValueError(f"checks must be one of {', '.join(LEVELS)}, got {level!r}")


def within_budget(texts: list[tuple[list[int], int]], tokens: int | None) -> list[tuple[list[int], int]]:
    """The held-out texts (ids, first scored position) cut to ``tokens`` positions in all; each kept text has at
    least one scored token. ``None``: all of them."""
    if tokens is None:
        return texts
    out: list[tuple[list[int], int]] = []
    used = 0
    for ids, start in texts:
        room = tokens - used
        if room <= start or len(ids) <= start:
            if out or len(ids) <= start:
                continue
            room = start + 1  # the first text always counts, with at least one scored token
        out.append((ids[:room], start))
        used += min(len(ids), room)
        if used >= tokens:
            break
    return out


def devices(reference_device: str | None) -> tuple[dict, list[str]]:
    """Where each side of the checks ran (llama.cpp's "gpu": CUDA, or whatever backend the build offloads to), and
    a warning when the GGUF side could not use a GPU."""
    from tunedeck.engine.chat import OFFLOAD_FAILED, gpu_layers

    llama = "gpu" if gpu_layers() else "cpu"
    warnings = []
    if reference_device == "cuda" and llama == "cpu":
        warnings.append(
            "the GGUF checks ran on the CPU: llama-cpp-python is built without GPU offload "
            '(make install LLAMA_CMAKE_ARGS="-DGGML_CUDA=on"; tunedeck doctor shows the build)'
        )
    if llama == "gpu" and OFFLOAD_FAILED:
        llama = "gpu, cpu for " + ", ".join(sorted(set(OFFLOAD_FAILED)))
        warnings.append(f"llama.cpp could not load {', '.join(sorted(set(OFFLOAD_FAILED)))} onto the GPU: those checks ran on the CPU")
    return {"reference": reference_device, "llama_cpp": llama}, warnings


def coverage(plan: CheckPlan, report: dict) -> tuple[list[str], list[str]]:
    """What the checks covered and what they did not, in words, from the finished report."""
    if not plan.runs:
        return [], [
            "template, EOS and tokenization parity",
            "stop parity",
            "perplexity, top-1 agreement and KL against the HF model",
            "task accuracy",
            "replies of each file",
        ]
    covered: list[str] = []
    missing: list[str] = []
    parity = report.get("parity") or {}
    if parity:
        covered.append(
            f"parity: chat template, EOS/EOT/EOG, BOS; {parity['render']['conversations']} conversation renderings and "
            f"{parity['tokenization']['texts']} tokenizations compared"
        )
        stop = parity.get("stop") or {}
        if stop.get("hf_stopped"):
            covered.append(f"stop parity on the {stop['hf_stopped']} of {stop['probes']} probe replies the HF model ended within {plan.stop_tokens} tokens")
        elif not stop.get("probes"):
            missing.append("stop parity: no probe conversation (the data has none that end in a user turn, or none fit the context)")
        else:
            missing.append(f"stop parity: the HF model ended none of its {stop['probes']} probe replies within {plan.stop_tokens} tokens")
    files = report.get("files") or []
    if files:
        fid = files[0].get("fidelity") or {}
        covered.append(f"perplexity, top-1 agreement and KL on {fid.get('tokens', 0)} token positions of {report['reference'].get('texts', 0)} held-out texts per file")
        replies = [f["verify"].get("replies", 0) for f in files]
        if any(replies):
            covered.append(f"each file's greedy reply to {max(replies)} probe(s), checked to stop where the HF model's did")
    accuracy = report.get("reference", {}).get("accuracy")
    if accuracy is not None:
        covered.append(f"task accuracy on {report['samples']['eval_rows']} eval rows, HF and each file")
    elif plan.level == "quick" and report["samples"].get("eval"):
        missing.append("task accuracy on the eval rows (--checks full)")
    ref = report.get("reference", {})
    if plan.level == "quick" and ref.get("cut_to_budget"):
        missing.append(f"the held-out text past {plan.tokens} token positions (--checks full)")
    if plan.level == "quick" and ref.get("probes", 0) > plan.probes:
        missing.append(f"{ref['probes'] - plan.probes} more probe conversation(s) (--checks full)")
    return covered, missing
