"""The headless demo: base -> SFT -> export -> chat, with held-out accuracy at every stage."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from engine.demo import ensure_demo_assets, init_workspace
from engine.runs import RunDir

Progress = Callable[[str], None]


# The demo passes when the tuned model clears TUNED_BAR on held-out prompts and no GGUF falls more
# than GGUF_SLACK below it (bench/demo_robustness.py measures how often it does).
TUNED_BAR = 0.80
GGUF_SLACK = 0.05


class StageFailed(RuntimeError):
    pass


def demo_failure(accuracy: dict, run_dir: str) -> str | None:
    """One plain line saying why the demo did not pass, or None when it did."""
    misses = [f"tuned {accuracy['tuned']:.2f} < {TUNED_BAR:.2f}"] if accuracy["tuned"] < TUNED_BAR else []
    misses += [
        f"GGUF {qtype} {a:.2f} < {TUNED_BAR - GGUF_SLACK:.2f}"
        for qtype, a in accuracy["gguf"].items()
        if a < TUNED_BAR - GGUF_SLACK
    ]
    if not misses:
        return None
    return f"the demo did not learn its task: {'; '.join(misses)}; see {Path(run_dir) / 'worker.log'}"


def _hf_accuracy(model_dir: Path, rows: list[dict]) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.evaluate import hf_exact_match

    model = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return hf_exact_match(model, tokenizer, rows)


def _gguf_accuracy(path: Path, rows: list[dict]) -> float:
    from engine.chat import ChatSession
    from engine.evaluate import exact_match

    with ChatSession(path, n_ctx=256) as chat:
        return exact_match(lambda msgs: chat.reply(msgs, temperature=0.0, max_tokens=24), rows)


def run_demo(
    workspace: Path,
    follow: Callable[[RunDir], str],
    progress: Progress = print,
    chat_out: Callable[[str], None] | None = None,
) -> dict:
    """Run every stage; ``follow(run)`` waits for the training worker and returns its final state."""
    from engine.evaluate import load_eval_rows, split_prompt
    from engine.export.pipeline import export_run
    from engine.launch import start_run
    from engine.recipe import load_recipe

    seconds: dict[str, float] = {}
    t0 = t = time.time()
    assets = ensure_demo_assets(progress)
    recipe_path = init_workspace(workspace, progress)
    rows = load_eval_rows(assets.eval)
    seconds["base"] = time.time() - t

    t = time.time()
    progress(f"evaluating the base on {len(rows)} held-out prompts")
    accuracy: dict = {"base": _hf_accuracy(assets.base, rows)}
    seconds["eval_base"] = time.time() - t

    t = time.time()
    run = start_run(load_recipe(recipe_path))
    progress(f"training run {run.id} (LoRA SFT) in {run.path}")
    state = follow(run)
    if state != "finished":
        raise StageFailed(f"training ended {state}: see {run.log_path}")
    seconds["train"] = time.time() - t

    t = time.time()
    report = export_run(run, progress=progress)
    seconds["export"] = time.time() - t

    t = time.time()
    progress("evaluating the tuned model (transformers)")
    accuracy["tuned"] = _hf_accuracy(run.merged, rows)
    seconds["eval_tuned"] = time.time() - t

    t = time.time()
    accuracy["gguf"] = {}
    for f in report["files"]:
        progress(f"evaluating {Path(f['path']).name} (llama.cpp)")
        accuracy["gguf"][f["type"]] = _gguf_accuracy(Path(f["path"]), rows)
    seconds["eval_gguf"] = time.time() - t

    t = time.time()
    if chat_out is not None:
        from engine.chat import ChatSession

        prompt, _ = split_prompt(rows[0])
        smallest = report["files"][-1]["path"]
        chat_out(f"chat with {Path(smallest).name}\n> {prompt[-1]['content']}\n")
        with ChatSession(smallest, n_ctx=256) as chat:
            for chunk in chat.stream(prompt, max_tokens=32):
                chat_out(chunk)
        chat_out("\n")
    seconds["chat"] = time.time() - t
    seconds["total"] = time.time() - t0
    return {
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "accuracy": accuracy,
        "run_dir": str(run.path),
        "gguf_files": {f["type"]: f["path"] for f in report["files"]},
        "passed": demo_failure(accuracy, str(run.path)) is None,
    }
