"""Throughput options on the demo SFT data: packing and padding-free against the default (useful tokens/s); JSON out.

Each variant trains the demo base with LoRA through TRL's SFTTrainer (bench/bare_trl_sft.py's
setup: batch 16, max_length 96, assistant-only loss) for ``--steps`` steps; variants alternate over
``--rounds`` rounds in one process, the order rotated each round. Timed like engine_overhead.py
(on_train_begin to the last step's on_log). Counted per batch, inside that window:

- trained tokens: labels != -100 (the assistant tokens the loss is computed on): *useful* tokens;
- real tokens: non-pad input tokens; computed tokens: every position of input_ids, pads included.

Liger kernels (``use_liger_kernel``) run only on CUDA with ``liger-kernel`` installed; else "skipped".

    python bench/throughput_options.py [--steps 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]


def variants() -> dict[str, dict | str]:
    """Variant name -> extra SFTConfig fields, or the reason it is skipped here."""
    import torch

    out: dict[str, dict | str] = {
        "default": {},
        "packing": {"packing": True},  # TRL's default strategy "bfd": best-fit packing, padding-free batches
        # padding-free without packing does not enforce max_length (TRL refuses both): every demo row is shorter
        "padding_free": {"padding_free": True, "max_length": None},
    }
    if not torch.cuda.is_available():
        out["liger"] = "needs a CUDA GPU"
    elif importlib.util.find_spec("liger_kernel") is None:
        out["liger"] = "liger-kernel is not installed (pip install liger-kernel)"
    else:
        out["liger"] = {"use_liger_kernel": True}
    return out


def measure(args, extra: dict) -> dict:
    from bare_trl_sft import LoopTimer, build_trainer

    timer = LoopTimer()
    counts = {"trained": 0, "real": 0, "computed": 0}
    with tempfile.TemporaryDirectory(prefix="tunedeck-throughput-") as out:
        trainer = build_trainer(args, out, [timer.callback()], **extra)
        compute_loss = trainer.compute_loss

        def counting(model, inputs, *a, **k):
            ids = inputs["input_ids"]
            counts["trained"] += int((inputs["labels"] != -100).sum())
            # padding-free batches are one flat sequence with no pads (pad_to_multiple_of is unset)
            counts["real"] += int(inputs["attention_mask"].sum()) if "attention_mask" in inputs else ids.numel()
            counts["computed"] += ids.numel()
            return compute_loss(model, inputs, *a, **k)

        trainer.compute_loss = counting
        trainer.train()
    r = timer.result()
    loop = r["loop_s"]
    return {
        "loop_s": loop,
        "trained_tokens": counts["trained"],
        "real_tokens": counts["real"],
        "computed_tokens": counts["computed"],
        "useful_tokens_per_s": round(counts["trained"] / loop, 1),
        "real_tokens_per_s": round(counts["real"] / loop, 1),
        "final_loss": r["final_loss"],
        "padding_share": round(1 - counts["real"] / counts["computed"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    opts = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if opts.threads:
        torch.set_num_threads(opts.threads)
    from bare_trl_sft import parse_args
    from transformers.utils import logging as hf_logging

    from tunedeck.engine.demo.base import demo_recipe, ensure_demo_assets

    hf_logging.set_verbosity_error()
    recipe = demo_recipe(ensure_demo_assets())
    t = recipe.train
    args = parse_args(
        [
            "--model",
            recipe.model.name_or_path,
            "--data",
            recipe.data.train,
            "--max-steps",
            str(opts.steps),
            "--logging-steps",
            str(opts.steps),
            "--batch",
            str(t.per_device_train_batch_size),
            "--lr",
            str(t.learning_rate),
            "--warmup-steps",
            str(min(t.warmup_steps, opts.steps // 2)),
            "--max-length",
            str(t.max_length),
            "--seed",
            str(t.seed),
        ]
    )
    todo = variants()
    runnable = [name for name, v in todo.items() if isinstance(v, dict)]
    trials: dict[str, list[dict]] = {name: [] for name in runnable}
    for rnd in range(opts.rounds):
        k = rnd % len(runnable)
        for name in runnable[k:] + runnable[:k]:
            with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs: stdout is for the JSON
                trials[name].append({"round": rnd, **measure(args, todo[name]), "loadavg_1m": os.getloadavg()[0]})
            print(name, json.dumps(trials[name][-1]), file=sys.stderr, flush=True)
    base = statistics.median(x["useful_tokens_per_s"] for x in trials["default"])
    summary = {}
    for name, v in todo.items():
        if isinstance(v, str):
            summary[name] = {"skipped": v}
            continue
        useful = statistics.median(x["useful_tokens_per_s"] for x in trials[name])
        summary[name] = {
            "config": v,
            "median_useful_tokens_per_s": useful,
            "vs_default": round(useful / base, 3),
            "padding_share": trials[name][0]["padding_share"],
        }
    result = {
        "name": "throughput_options",
        "command": f"python bench/throughput_options.py --steps {opts.steps} --rounds {opts.rounds} --threads {opts.threads}",
        "measured": "useful (trained, labels != -100) tokens per second of training loop, median over rounds",
        "settings": {
            "model": recipe.model.name_or_path,
            "data": recipe.data.train,
            "steps": opts.steps,
            "batch": t.per_device_train_batch_size,
            "max_length": t.max_length,
            "lora_r": 16,
            "torch_threads": torch.get_num_threads(),
        },
        "summary": summary,
        "trials": trials,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
