"""GPU throughput: LoRA and QLoRA SFT tokens/s, model-FLOPs utilization and peak memory against the estimate.

For an NVIDIA machine; prints one JSON object. A ~0.49B random-init Llama (bench/gpu_memory_check.py's
config) trains through the worker's own trainer (tunedeck.engine.methods.build_trainer) on rows of exactly
``--seq`` tokens (no padding). Timed from the end of step ``--warmup`` to the end of the last step
(CUDA synchronized), so model load and the first, slow steps are out.

    tokens/s = batch * seq * timed steps / seconds
    MFU      = 6 * N * tokens/s / peak dense bf16 FLOP/s of the GPU

N counts the parameters of every matmul (the decoder linears and the output head, not the
embedding lookup); attention's own FLOPs are left out. LoRA computes no weight gradients for
the frozen base, so its real work is nearer 4N per token: ``mfu_4n`` reports that too. Peak
memory: torch.cuda.max_memory_allocated from before the model loads, against tunedeck.engine.model.estimate.
Takes about 2 minutes on an H100/H200. Without CUDA it prints {"skipped": ...} and exits 0;
``--cpu-smoke`` runs a tiny config on CPU to check the plumbing.

    python bench/gpu_throughput.py [--batch 8] [--seq 512] [--steps 40] [--warmup 5] [--peak-tflops X]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# Dense bf16 tensor-core peak (no sparsity), TFLOP/s, from NVIDIA's data sheets; matched on the device name.
PEAK_BF16_TFLOPS = (
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM
    ("H800", 989.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
    ("RTX 6000 Ada", 364.0),
)


def peak_tflops(name: str) -> float | None:
    return next((v for key, v in PEAK_BF16_TFLOPS if key in name), None)


def timed_train(recipe, warmup: int, cuda: bool) -> dict:
    """Train through the worker's trainer; seconds of the steps after ``warmup``, peak memory, final loss."""
    import torch
    from transformers import TrainerCallback

    from tunedeck.engine.methods.common import build_trainer
    from tunedeck.engine.run.rundir import RunDir

    marks: dict[int, float] = {}

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            marks[state.global_step] = time.perf_counter()

    run = RunDir(Path(tempfile.mkdtemp(prefix="run-", dir=recipe.train.runs_dir)))
    run.checkpoints.mkdir(parents=True)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    trainer = build_trainer(recipe, run, [StepClock()])
    with contextlib.redirect_stdout(sys.stderr):
        out = trainer.train()
    last = max(marks)
    result = {
        "timed_steps": last - warmup,
        "seconds": marks[last] - marks[warmup],
        "train_loss": out.training_loss,
        "dtype": str(next(p for p in trainer.model.parameters() if p.requires_grad).dtype),
    }
    if cuda:
        result["measured_peak_bytes"] = torch.cuda.max_memory_allocated() - start
        result["reserved_peak_bytes"] = torch.cuda.max_memory_reserved()
    del trainer, out
    if cuda:
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak when its name is not in the table")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny config on CPU: checks the plumbing, not the GPU")
    args = p.parse_args(argv)
    if args.steps <= args.warmup:
        p.error("--steps must be larger than --warmup")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu_smoke:
        print(json.dumps({"name": "gpu_throughput", "skipped": "no CUDA device"}))
        return 0
    from gpu_memory_check import GPU_CONFIG, SMOKE_CONFIG, build_workspace, sft_recipe

    from tunedeck.engine.model.estimate import estimate

    device = torch.cuda.get_device_name(0) if cuda else "cpu (smoke: plumbing only)"
    peak = args.peak_tflops or (peak_tflops(device) if cuda else None)
    config = GPU_CONFIG if cuda else SMOKE_CONFIG
    seq = args.seq if cuda else min(args.seq, 64)
    t0 = time.time()
    cases = []
    with tempfile.TemporaryDirectory(prefix="tunedeck-gpu-throughput-") as tmp:
        model_dir, data = build_workspace(Path(tmp), config, seq, rows=args.batch * args.steps + args.batch)
        setup_s = time.time() - t0
        for kind in ("lora", "qlora"):
            recipe = sft_recipe(
                Path(tmp), model_dir, data, kind, args.r, batch=args.batch, seq=seq, steps=args.steps,
                logging_steps=args.steps, save_steps=10**9,
            )  # fmt: skip
            Path(recipe.train.runs_dir).mkdir(exist_ok=True)
            case: dict = {"kind": kind}
            try:
                est = estimate(recipe, seq=seq)
                n_matmul = est.arch.linear_params + est.arch.head_params
                m = timed_train(recipe, args.warmup, cuda)
                tokens_per_s = args.batch * seq * m["timed_steps"] / m["seconds"]
                case.update(
                    tokens_per_s=round(tokens_per_s, 1),
                    step_ms=round(1000 * m["seconds"] / m["timed_steps"], 2),
                    timed_steps=m["timed_steps"],
                    matmul_params=n_matmul,
                    mfu=round(6 * n_matmul * tokens_per_s / (peak * 1e12), 4) if peak else None,
                    mfu_4n=round(4 * n_matmul * tokens_per_s / (peak * 1e12), 4) if peak else None,
                    train_loss=round(m["train_loss"], 4),
                    trainable_dtype=m["dtype"],
                    estimate_peak_bytes=round(est.breakdown.peak),
                    measured_peak_bytes=m.get("measured_peak_bytes"),
                    reserved_peak_bytes=m.get("reserved_peak_bytes"),
                )
                if m.get("measured_peak_bytes"):
                    case["estimate_over_measured"] = round(est.breakdown.peak / m["measured_peak_bytes"], 3)
            except Exception as e:  # noqa: BLE001 - one failing case must not hide the other
                case["error"] = f"{type(e).__name__}: {e}"
            cases.append(case)
    out = {
        "name": "gpu_throughput",
        "command": "python bench/gpu_throughput.py"
        + f" --batch {args.batch} --seq {args.seq} --steps {args.steps} --warmup {args.warmup}"
        + (" --cpu-smoke" if args.cpu_smoke else ""),
        "device": device,
        "peak_bf16_tflops": peak,
        "config": config,
        "batch": args.batch,
        "seq": seq,
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "setup_seconds": round(setup_s, 1),
        "total_seconds": round(time.time() - t0, 1),
        "cases": cases,
        "ok": all("error" not in c for c in cases),
    }
    print(json.dumps(out, indent=2))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
