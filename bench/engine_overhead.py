"""Engine overhead: ``tunedeck train`` (the CLI, through the detached worker) against a bare TRL script; JSON out.

Both train the demo SFT recipe (``tunedeck demo --init``): same model, data, max_length, batch,
LR, warmup, LoRA r/alpha on every linear layer, assistant-only loss, seed, steps and logging
steps. Trials alternate in one run (pair i: A then B, the next pair B then A), each a fresh
process. Both are timed the same way: from the Trainer's ``on_train_begin`` to the ``on_log`` of
the last step (the worker's ``train_begin`` and last ``step`` events; bench/bare_trl_sft.py's
LoopTimer), tokens = TRL's ``num_tokens`` (non-pad tokens seen) at that log. ``ratio`` is the
median over pairs of ours / bare (each pair runs back to back, so load that drifts over the run
cancels); ``ratio_of_medians`` is given too. Goal: ratio >= 0.97.

    python bench/engine_overhead.py [--pairs 5] [--steps 40] [--logging-steps 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tunedeck.engine.run.events import events_of  # noqa: E402
from tunedeck.engine.run.rundir import RunDir  # noqa: E402

GOAL = 0.97


def run_tunedeck(ws: Path, steps: int, logging_steps: int, env: dict, threads: int = 0) -> dict:
    """One ``tunedeck train`` in the foreground; figures from the run's events.jsonl."""
    cmd = [
        sys.executable,
        "-m",
        "tunedeck.tui.cli.main",
        "train",
        "recipe.yaml",
        "--set",
        f"train.max_steps={steps}",
        "--set",
        f"train.logging_steps={logging_steps}",
        *(["--set", f"train.torch_threads={threads}"] if threads else []),  # else the worker keeps a core for a UI
    ]
    t = time.time()
    proc = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True)
    wall = time.time() - t
    if proc.returncode != 0:
        raise RuntimeError(f"tunedeck train failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    run_path = next(line.split(" started in ", 1)[1] for line in proc.stdout.splitlines() if " started in " in line)
    run = RunDir(Path(run_path))
    begin = events_of(run, "train_begin")[0]["ts"]
    steps = events_of(run, "step")
    last = steps[-1]
    loop_s = last["ts"] - begin
    return {
        "kind": "tunedeck",
        "steps": last["step"],
        "loop_s": round(loop_s, 3),
        "tokens": last["num_tokens"],
        "tokens_per_s": round(last["num_tokens"] / loop_s, 1),
        "final_loss": last["loss"],
        "log_s": [round(e["ts"] - begin, 2) for e in steps],
        "process_wall_s": round(wall, 2),
    }


def run_bare(recipe: dict, steps: int, logging_steps: int, env: dict, threads: int = 0, kind: str = "bare_trl") -> dict:
    """One bench/bare_trl_sft.py with the recipe's settings (``bare_trl_compact``: with tunedeck's TRL switch)."""
    from tunedeck.engine.model.gguf_import import resolve_model

    t, a = recipe["train"], recipe["adapter"]
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "bare_trl_sft.py"),
        *(["--threads", str(threads)] if threads else []),
        *(["--cpu-compact"] if kind == "bare_trl_compact" else []),
        "--model",
        resolve_model(recipe["model"]["name_or_path"]),  # a packaged GGUF: the folder tunedeck dequantized it into
        "--data",
        recipe["data"]["train"],
        "--max-steps",
        str(steps),
        "--batch",
        str(t["per_device_train_batch_size"]),
        "--lr",
        str(t["learning_rate"]),
        "--warmup-steps",
        str(t["warmup_steps"]),
        "--max-length",
        str(t["max_length"]),
        "--logging-steps",
        str(logging_steps),
        "--seed",
        str(t["seed"]),
        "--r",
        str(a["r"]),
        "--lora-alpha",
        str(a["lora_alpha"]),
    ]
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.time() - start
    if proc.returncode != 0:
        raise RuntimeError(f"bare TRL script failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "kind": kind,
        **{k: out[k] for k in ("steps", "loop_s", "tokens", "tokens_per_s", "final_loss", "log_s")},
        "process_wall_s": round(wall, 2),
    }


def check_same_settings(recipe: dict) -> None:
    """The bare script hard-codes what the recipe must then also say; refuse to compare otherwise."""
    a, t, m = recipe["adapter"], recipe["train"], recipe["method"]
    expected = {
        ("adapter", "kind"): "lora",
        ("adapter", "target_modules"): "all-linear",
        ("adapter", "lora_dropout"): 0.0,
        ("method", "name"): "sft",
        ("method", "assistant_only_loss"): True,
        ("train", "gradient_accumulation_steps"): 1,
        ("train", "gradient_checkpointing"): False,
        ("train", "lr_scheduler_type"): "linear",
        ("train", "weight_decay"): 0.0,
    }
    got = {"adapter": a, "train": t, "method": m}
    wrong = {f"{s}.{k}": got[s][k] for (s, k), v in expected.items() if got[s][k] != v}
    if wrong:
        raise SystemExit(f"the demo recipe changed ({wrong}): update bench/bare_trl_sft.py to match it")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--logging-steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for both sides (0: torch's default)")
    p.add_argument("--model", help="a packaged real model (gemma3-270m): its demo workspace instead of the toy's")
    p.add_argument("--bare", default="bare_trl", help="comma-separated: bare_trl (TRL as a user runs it), "
                   "bare_trl_compact (with tunedeck's one TRL switch, engine/trl_compat.py)")  # fmt: skip
    args = p.parse_args(argv)
    bares = args.bare.split(",")
    if args.steps % args.logging_steps:
        p.error("--steps must be a multiple of --logging-steps (the last step must be logged)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "TRL_EXPERIMENTAL_SILENCE": "1"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    trials = []
    with tempfile.TemporaryDirectory(prefix="tunedeck-overhead-") as tmp:
        ws = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "tunedeck.tui.cli.main", "demo", "--init", str(ws), *(["--model", args.model] if args.model else [])],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        recipe = yaml.safe_load((ws / "recipe.yaml").read_text())
        check_same_settings(recipe)
        for i in range(args.pairs):
            order = ("tunedeck", *bares) if i % 2 == 0 else (*bares, "tunedeck")
            for kind in order:
                if kind == "tunedeck":
                    trial = run_tunedeck(ws, args.steps, args.logging_steps, env, args.threads)
                else:
                    trial = run_bare(recipe, args.steps, args.logging_steps, env, args.threads, kind)
                trials.append({"pair": i, **trial, "loadavg_1m": os.getloadavg()[0]})
                print(json.dumps(trials[-1]), file=sys.stderr, flush=True)

    def tps(kind: str, pair: int) -> float:
        return next(t["tokens_per_s"] for t in trials if t["pair"] == pair and t["kind"] == kind)

    ours = [t["tokens_per_s"] for t in trials if t["kind"] == "tunedeck"]
    bare = [t["tokens_per_s"] for t in trials if t["kind"] == bares[0]]
    ratios = {b: [round(tps("tunedeck", i) / tps(b, i), 3) for i in range(args.pairs)] for b in bares}
    pair_ratios = ratios[bares[0]]
    ratio = statistics.median(pair_ratios)
    wall = {
        k: statistics.median(t["process_wall_s"] for t in trials if t["kind"] == k) for k in ("tunedeck", *bares)
    }
    result = {
        "name": "engine_overhead",
        "command": f"python bench/engine_overhead.py --pairs {args.pairs} --steps {args.steps} "
        f"--logging-steps {args.logging_steps} --threads {args.threads}"
        + (f" --model {args.model}" if args.model else "") + (f" --bare {args.bare}" if args.bare != "bare_trl" else ""),
        "measured": "training-loop tokens/s: TRL num_tokens / (last step's on_log - on_train_begin), fresh process each",
        "settings": {
            "model": recipe["model"]["name_or_path"],
            "data": recipe["data"]["train"],
            "steps": args.steps,
            "logging_steps": args.logging_steps,
            "omp_num_threads": env.get("OMP_NUM_THREADS"),
            **{
                k: recipe["train"][k]
                for k in ("per_device_train_batch_size", "max_length", "learning_rate", "warmup_steps", "seed")
            },
            "lora_r": recipe["adapter"]["r"],
            "lora_alpha": recipe["adapter"]["lora_alpha"],
            "assistant_only_loss": True,
        },
        "trials": trials,
        "median_tokens_per_s": {k: statistics.median(t["tokens_per_s"] for t in trials if t["kind"] == k)
                                for k in ("tunedeck", *bares)},  # fmt: skip
        "ratio": round(ratio, 3),
        "pair_ratios": pair_ratios,
        "ratio_of_medians": round(statistics.median(ours) / statistics.median(bare), 3),
        "ratios": {b: statistics.median(r) for b, r in ratios.items()},
        "goal": f"ratio >= {GOAL}",
        "goal_met": ratio >= GOAL,
        "same_work": len({(t["tokens"], round(t["final_loss"], 3)) for t in trials}) == 1,
        "median_process_wall_s": wall,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
