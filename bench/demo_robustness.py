"""Does the demo SFT learn on every machine? Held-out accuracy over a matrix of builds, as JSON.

Each cell builds (or reuses) a demo base and trains the demo SFT recipe with the real worker:

- base-build seeds x SFT seeds (the weights' init and batch order),
- torch threads 1 and 2 (another reduction order in every matmul),
- float32 matmul precision "highest" vs "medium" for the SFT (``--base-precisions`` for the base
  build too): on a CPU with bf16 units (AVX512-BF16, AMX) "medium" runs every matmul in bf16, a far
  larger change than another vendor's kernels make; ``perturbation_max_abs_error`` says how large
  it was here (0.17 against float64 on an Intel Xeon with AMX, where "highest" is 5e-5; a CPU
  without bf16 units ignores the setting, and that half of the matrix repeats the other).

Goal: every cell >= 0.95 held-out accuracy (docs/benchmarks.md). Every base build and every cell
runs in its own process (clean torch state). About 30 minutes on 2 cores with the defaults.

    PYTHONPATH=. python bench/demo_robustness.py [--base-seeds 1234,1,2] [--sft-seeds 0,1,2] [--threads 1,2]
        [--precisions highest,medium] [--base-precisions highest] [--max-steps N] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 0.95


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _perturbation(precision: str) -> float:
    """Max abs error of one float32 matmul at ``precision`` against float64: how much it changes results here."""
    import torch

    torch.set_float32_matmul_precision(precision)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 256, generator=g), torch.randn(256, 512, generator=g)
    return float((a @ b - (a.double() @ b.double())).abs().max())


def _setup(threads: int, precision: str) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision(precision)


def build_cell(root: Path, seed: int, threads: int, precision: str) -> dict:
    """A demo base pretrained with ``seed`` at ``precision`` on ``threads`` threads, plus its datasets, in ``root``."""
    from tunedeck.engine.demo import base as demo
    _setup(threads, precision)
    t = time.time()
    if not (root / "base" / "config.json").exists():
        (root / "base").mkdir(parents=True, exist_ok=True)
        demo.build_base(root / "base", seed=seed)
        demo.write_data(root / "data")
    return {"build_s": round(time.time() - t, 1), "base_sum_accuracy": _sum_accuracy(root / "base")}


def _sum_accuracy(base: Path) -> float:
    """Plain-text sums on the held-out pairs ("7 plus 5 is" -> " 12."): what the base knows before any SFT."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunedeck.engine.demo.base import addition_pairs

    tok = AutoTokenizer.from_pretrained(base)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(base).eval()
    _, held_out = addition_pairs()
    enc = tok([f"{a} plus {b} is" for a, b in held_out], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=2, do_sample=False, pad_token_id=tok.pad_token_id)
    got = tok.batch_decode(out[:, enc["input_ids"].shape[1] :])
    return sum(g.strip().startswith(f"{a + b}.") for g, (a, b) in zip(got, held_out, strict=True)) / len(held_out)


def train_cell(root: Path, seed: int, threads: int, precision: str, max_steps: int | None) -> dict:
    """The demo SFT recipe on the base in ``root``, run by the real worker in this process; held-out accuracy."""
    from tunedeck.engine.demo.base import DemoAssets, demo_recipe
    from tunedeck.engine.demo.pipeline import hf_accuracy
    from tunedeck.engine.evaluate import load_eval_rows
    from tunedeck.engine.export.merge import merge_run
    from tunedeck.engine.run.events import events_of
    from tunedeck.engine.run.launch import create_run
    from tunedeck.engine.run.worker import run_worker

    _setup(threads, precision)
    assets = DemoAssets(root)
    recipe = demo_recipe(assets)
    recipe.train.seed = seed
    recipe.train.runs_dir = str(root / "runs")
    recipe.train.save_steps = 10**6  # no checkpoints: only the final adapter is evaluated
    if max_steps:
        recipe.train.max_steps = max_steps
    run = create_run(recipe)
    t = time.time()
    if run_worker(run) != 0 or run.state() != "finished":
        return {"error": f"training ended {run.state()}: see {run.log_path}"}
    train_s = time.time() - t
    losses = [e["loss"] for e in events_of(run, "step")]
    return {
        "accuracy": hf_accuracy(merge_run(run), load_eval_rows(assets.eval)),
        "final_loss": round(losses[-1], 4) if losses else None,
        "train_s": round(train_s, 1),
    }


def _child(args: argparse.Namespace) -> int:
    kind, root, seed, threads, precision = args.cell
    if kind == "build":
        out = build_cell(Path(root), int(seed), int(threads), precision)
    else:
        out = train_cell(Path(root), int(seed), int(threads), precision, args.max_steps)
    print(json.dumps(out))
    return 0


def _run_child(*cell: str, max_steps: int | None) -> dict:
    cmd = [sys.executable, __file__, "--cell", *cell] + (["--max-steps", str(max_steps)] if max_steps else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1"})
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-seeds", default="1234,1,2")
    p.add_argument("--sft-seeds", default="0,1,2")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--precisions", default="highest,medium", help="float32 matmul precisions of the SFT")
    p.add_argument("--paired", action="store_true", help="pair --threads with --precisions (1:highest, 2:medium) "
                   "instead of crossing them: half the cells, each still moves both")
    p.add_argument("--base-precisions", default="highest", help="float32 matmul precisions of the base build")
    p.add_argument("--base-threads", type=int, default=2, help="torch threads of the base build")
    p.add_argument("--max-steps", type=int, help="override the demo's train.max_steps")
    p.add_argument("--work", help="folder for the bases and runs (default: a temporary one, removed)")
    p.add_argument("--cell", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.cell:
        return _child(args)
    from tunedeck.engine.demo.base import DEMO_TRAIN

    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="demo-robustness-")
    work = Path(args.work or tmp.name)
    t0 = time.time()
    bases, cells = [], []
    for base_precision in args.base_precisions.split(","):
        for base_seed in ints(args.base_seeds):
            root = work / f"base-{base_precision}-{base_seed}"
            built = _run_child("build", str(root), str(base_seed), str(args.base_threads), base_precision, max_steps=None)
            bases.append({"base_seed": base_seed, "base_precision": base_precision, **built})
            print(json.dumps(bases[-1]), file=sys.stderr, flush=True)
            if "error" in built:
                continue
            if args.paired:
                variants = list(zip(args.precisions.split(","), ints(args.threads), strict=True))
            else:
                variants = [(p, t) for p in args.precisions.split(",") for t in ints(args.threads)]
            for precision, threads in variants:
                for sft_seed in ints(args.sft_seeds):
                    cell = _run_child("train", str(root), str(sft_seed), str(threads), precision, max_steps=args.max_steps)
                    cells.append({"base_seed": base_seed, "base_precision": base_precision, "precision": precision,
                                  "sft_seed": sft_seed, "threads": threads, **cell})  # fmt: skip
                    print(json.dumps(cells[-1]), file=sys.stderr, flush=True)
    accuracies = [c.get("accuracy", 0.0) for c in cells]
    result = {
        "command": " ".join(["python bench/demo_robustness.py", *sys.argv[1:]]),
        "measured": f"{os.cpu_count()} CPUs ({_cpu()})",
        "perturbation_max_abs_error": {p: _perturbation(p) for p in {*args.precisions.split(","), *args.base_precisions.split(",")}},
        "sft_max_steps": args.max_steps or DEMO_TRAIN["max_steps"],
        "bases": bases,
        "cells": cells,
        "min": min(accuracies, default=0.0),
        "median": statistics.median(accuracies) if accuracies else 0.0,
        "goal": GOAL,
        "goal_met": bool(cells) and all(a >= GOAL for a in accuracies),
        "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(result, indent=1))
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
