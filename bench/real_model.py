"""Speed and memory on a real model, side by side in one run: Gemma 3 270M (the packaged GGUF); JSON out.

- training tokens/s: ``tunedeck train`` against a bare TRL script on the same model, data and settings, as a user
  writes it and with tunedeck's one TRL switch (bench/engine_overhead.py --model). Goal: ratio >= 0.97.
- chat decode tokens/s of an exported Q4_K_M: tunedeck's chat against llama-cpp-python called directly
  (bench/chat_vs_llama.py --gguf). Goal: ratio >= 0.95.
- the memory estimate against the measured peak (``tunedeck estimate --probe``), LoRA and QLoRA (the base in 4-bit
  NF4, bitsandbytes' CPU backend), and a short QLoRA run to show it trains. Goal: within 15%.

    python bench/real_model.py [--gguf runs/<id>/gguf/<id>.Q4_K_M.gguf] [--pairs 2] [--steps 10]

Without --gguf the Q4_K_M comes from a short LoRA run of the real demo workspace, exported here (a few minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tunedeck.engine.run.events import events_of  # noqa: E402
from tunedeck.engine.run.rundir import RunDir  # noqa: E402

MODEL = "gemma3-270m"


def _run(cmd: list[str], env: dict, cwd: Path = ROOT) -> str:
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def _json_tail(out: str) -> dict:
    """The JSON object a bench script prints last (indented over many lines)."""
    return json.loads(out[out.index("\n{") + 1 :] if not out.startswith("{") else out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gguf", help="an exported Q4_K_M of the real demo (default: train and export one here)")
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)
    args = p.parse_args(argv)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "TRL_EXPERIMENTAL_SILENCE": "1"}
    cli = [sys.executable, "-m", "tunedeck.tui.cli.main"]
    result: dict = {"name": "real_model", "model": MODEL, "command": "python bench/real_model.py " + " ".join(argv or sys.argv[1:])}
    with open("/proc/cpuinfo") as f:
        result["cpu"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    result["threads"] = args.threads
    with tempfile.TemporaryDirectory(prefix="tunedeck-real-") as tmp:
        ws = Path(tmp)
        _run([*cli, "demo", "--init", str(ws), "--model", MODEL], env)

        # 1. training tokens/s against bare TRL (as a user writes it, and with tunedeck's TRL switch)
        t = time.time()
        overhead = _json_tail(_run([sys.executable, str(ROOT / "bench" / "engine_overhead.py"), "--model", MODEL,
                                    "--pairs", str(args.pairs), "--steps", str(args.steps), "--logging-steps", "5",
                                    "--threads", str(args.threads), "--bare", "bare_trl_compact,bare_trl"], env))  # fmt: skip
        result["training"] = {
            "median_tokens_per_s": overhead["median_tokens_per_s"],
            "ratio_vs_bare_trl_with_the_switch": overhead["ratios"]["bare_trl_compact"],
            "ratio_vs_bare_trl_as_is": overhead["ratios"]["bare_trl"],
            "same_work": overhead["same_work"],
            "goal": "ratio >= 0.97 (against bare TRL with the same switch: what tunedeck itself costs)",
            "goal_met": overhead["ratios"]["bare_trl_compact"] >= 0.97,
            "settings": overhead["settings"],
            "seconds": round(time.time() - t, 1),
        }

        # 2. the memory estimate against measured peaks, LoRA and QLoRA
        result["memory"] = {}
        for kind in ("lora", "qlora"):
            probe = json.loads(_run([*cli, "estimate", "recipe.yaml", "--probe", "--no-search", "--json", "--set",
                                     f"adapter.kind={kind}"], env, cwd=ws))["probe"]  # fmt: skip
            row = probe["recipe_batch"]
            result["memory"][kind] = {
                **{k: row[k] for k in ("batch", "seq", "measured_peak", "estimate_peak", "ratio", "losses")},
                "goal": "0.85 <= ratio <= 1.15",
                "goal_met": row["ratio"] is not None and 0.85 <= row["ratio"] <= 1.15,
            }
        out = _run([*cli, "train", "recipe.yaml", "--set", "adapter.kind=qlora", "--set", f"train.max_steps={args.steps}",
                    "--set", "train.logging_steps=2", "--set", f"train.torch_threads={args.threads}"], env, cwd=ws)  # fmt: skip
        run = Path(next(line.split(" started in ", 1)[1] for line in out.splitlines() if " started in " in line))
        steps = events_of(RunDir(run), "step")
        result["qlora_training"] = {
            "losses": [round(e["loss"], 4) for e in steps],
            "seconds_per_step": round((steps[-1]["ts"] - steps[0]["ts"]) / max(steps[-1]["step"] - steps[0]["step"], 1), 2),
            "trains": steps[-1]["loss"] < steps[0]["loss"] / 2,
        }

        # 3. chat decode tokens/s of the exported Q4_K_M
        gguf = args.gguf
        if not gguf:
            out = _run([*cli, "train", "recipe.yaml", "--set", f"train.max_steps={args.steps}",
                        "--set", f"train.torch_threads={args.threads}"], env, cwd=ws)  # fmt: skip
            report = json.loads(_run([*cli, "export", "latest", "--quant", "Q4_K_M", "--checks", "none", "--json"], env, cwd=ws))
            gguf = report["files"][0]["path"]
        chat = _json_tail(_run([sys.executable, str(ROOT / "bench" / "chat_vs_llama.py"), "--gguf", gguf,
                                "--eval", str(ws / "eval.jsonl"), "--rounds", "3", "--max-tokens", "64"], env))  # fmt: skip
        result["chat"] = {k: chat[k] for k in ("gguf", "summary", "ratio_decode_tokens_per_s", "ratio_ttft", "texts_match")}
        result["chat"]["goal"] = chat["goal"]
        result["chat"]["goal_met"] = chat["goal_met"]
    result["goals_met"] = all(
        part["goal_met"] for part in (result["training"], *result["memory"].values(), result["chat"])
    ) and result["qlora_training"]["trains"]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
