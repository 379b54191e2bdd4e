"""The texts an export is checked and calibrated on, drawn from the run's own data."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

Conversation = list[dict[str, str]]

# Conversations the data may not have (a system turn, a follow-up question): renderers must agree on them too.
SYNTHETIC_PROBES: list[Conversation] = [
    [{"role": "system", "content": "You are a concise assistant."}, {"role": "user", "content": "Hello!"}],
    [
        {"role": "user", "content": "Hi there."},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Say \"ok\" twice, then stop.\nThanks {{ not a template }} <b>"},
    ],
]


@dataclass
class RunSamples:
    heldout: list[Conversation | str] = field(default_factory=list)  # perplexity / agreement / KL texts
    heldout_source: str = ""
    eval_rows: list[dict] = field(default_factory=list)  # {"messages": [..., assistant]} for task accuracy
    eval_source: str | None = None
    calibration: list[Conversation | str] = field(default_factory=list)  # importance matrix, GPTQ/AWQ
    probes: list[Conversation] = field(default_factory=list)  # prompts ending in a user turn, from the data
    replied: list[Conversation] = field(default_factory=list)  # the probes a reply is generated to (they fit the context)
    warnings: list[str] = field(default_factory=list)


def _as_conversation(row: dict) -> Conversation | str | None:
    """A normalized (TRL-form) row as one conversation, or plain text, or None (also for KTO's undesirable rows)."""
    if row.get("label") is False:
        return None
    if isinstance(row.get("messages"), list):
        return row["messages"]
    prompt = row.get("prompt")
    answer = row.get("completion", row.get("chosen"))
    if isinstance(prompt, list) and isinstance(answer, list):
        return prompt + answer
    if isinstance(prompt, list) and answer is None:
        return prompt
    if isinstance(prompt, str) and isinstance(answer, str):
        return prompt + answer
    if isinstance(row.get("text"), str):
        return row["text"]
    return None


def load_conversations(source: str, limit: int | None = None, seed: int | None = None) -> list[Conversation | str]:
    """Rows of a dataset (any format the data layer knows) as conversations; a sample of ``limit``."""
    import datasets

    from tunedeck.engine.data import detect_format, load_rows, normalize_row

    datasets.disable_progress_bars()
    ds = load_rows(source)
    n = len(ds)
    idx = list(range(n))
    if seed is not None:
        random.Random(seed).shuffle(idx)
    if limit is not None:
        idx = idx[: max(limit * 2, limit + 8)]  # spare rows for the ones that are not conversations
    rows = [ds[i] for i in idx]
    fmt, _, _ = detect_format(rows[:100])
    out: list[Conversation | str] = []
    for row in rows:
        try:
            conv = _as_conversation(normalize_row(row, fmt) if fmt else row)
        except (KeyError, TypeError, ValueError):
            conv = None
        if conv:
            out.append(conv)
        if limit is not None and len(out) >= limit:
            break
    return out


def _eval_source(recipe) -> tuple[str | None, str | None]:
    """(path, how it was found) of the run's held-out set."""
    if recipe.data.eval:
        return recipe.data.eval, "data.eval"
    workspace_eval = Path(recipe.train.runs_dir).parent / "eval.jsonl"
    if workspace_eval.is_file():
        return str(workspace_eval), "the workspace's eval.jsonl"
    return None, None


def _heldout_split(recipe) -> list[Conversation | str]:
    """The rows training held out with data.eval_size (same split and seed as training)."""
    from tunedeck.engine.data import detect_format, load_rows, normalize_row

    ds = load_rows(recipe.data.train).train_test_split(test_size=recipe.data.eval_size, seed=recipe.train.seed)["test"]
    rows = list(ds)
    fmt, _, _ = detect_format(rows[:100])
    return [c for c in (_as_conversation(normalize_row(r, fmt) if fmt else r) for r in rows) if c]


def run_samples(recipe, fidelity_texts: int, eval_rows: int, calibration_rows: int, n_probes: int = 4) -> RunSamples:
    """Held-out texts, eval rows, calibration texts and probe prompts for one run."""
    out = RunSamples()
    source, how = _eval_source(recipe)
    heldout: list[Conversation | str] = []
    if source:
        heldout = load_conversations(source)
        out.heldout_source = f"{source} ({how})"
    elif recipe.data.eval_size > 0:
        heldout = _heldout_split(recipe)
        out.heldout_source = f"{recipe.data.train} (rows held out by data.eval_size={recipe.data.eval_size})"
    train = load_conversations(recipe.data.train, limit=max(calibration_rows, fidelity_texts, n_probes), seed=0)
    if not heldout:
        heldout = train
        out.heldout_source = f"{recipe.data.train} (training rows: the run has no held-out set)"
        out.warnings.append(
            "no held-out set (data.eval, an eval.jsonl beside runs/, or data.eval_size): perplexity and "
            "agreement are measured on training rows"
        )
    out.heldout = heldout[:fidelity_texts]
    answered = [{"messages": c} for c in heldout if isinstance(c, list) and c and c[-1]["role"] == "assistant"]
    if answered and (source or recipe.data.eval_size > 0):
        out.eval_rows = answered[:eval_rows]
        out.eval_source = out.heldout_source
    out.calibration = train[:calibration_rows]
    for conv in [*heldout, *train]:
        if len(out.probes) >= n_probes:
            break
        if isinstance(conv, list):
            cut = max((i for i, m in enumerate(conv) if m["role"] == "user"), default=-1)
            if cut >= 0 and conv[: cut + 1] not in out.probes:
                out.probes.append(conv[: cut + 1])
    return out
