"""DDP, FSDP and DeepSpeed ZeRO-2/3 launches of the demo recipe on every NVIDIA GPU of this machine.

Each case is ``tunedeck train recipe.yaml --set launch.strategy=S --set launch.num_processes=N ...``
exactly as a user starts it (accelerate launch with the run's accelerate_config.yaml). Prints one
JSON object: per case the run's state, first and last loss, seconds, and each rank's peak GPU
memory from its heartbeat. DDP needs 2 GPUs; FSDP and ZeRO also run on one (ZeRO-3 offload is the
one-GPU use). ZeRO cases need ``pip install -e '.[deepspeed]'`` and report "skipped" without it.
Without CUDA it prints {"skipped": "..."} and exits 0; ``--cpu-smoke`` runs the DDP case on CPU
(2 processes over gloo) to check the plumbing.

    python bench/gpu_distributed_check.py [--steps 20] [--only ddp,fsdp,...] [--cpu-smoke]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name: (strategy, extra --set overrides, minimum GPUs)
CASES: dict[str, tuple[str, list[str], int]] = {
    "ddp": ("ddp", [], 2),
    "fsdp": ("fsdp", [], 1),
    "fsdp-offload": ("fsdp", ["launch.offload_params=true"], 1),
    "fsdp-qlora": ("fsdp", ["adapter.kind=qlora", "adapter.bnb_4bit_compute_dtype=bfloat16"], 1),
    "zero2": ("zero2", [], 1),
    "zero2-offload": ("zero2", ["launch.offload_optimizer=true"], 1),
    "zero3": ("zero3", [], 1),
    "zero3-offload": ("zero3", ["launch.offload_optimizer=true", "launch.offload_params=true"], 1),
}


def run_case(workspace: Path, name: str, gpus: int, steps: int, timeout: float) -> dict:
    strategy, extra, need = CASES[name]
    if gpus < need:
        return {"case": name, "skipped": f"needs {need} GPUs, this machine has {gpus}"}
    if strategy.startswith("zero") and importlib.util.find_spec("deepspeed") is None:
        return {"case": name, "skipped": "deepspeed not installed (pip install -e '.[deepspeed]')"}
    processes = max(gpus, 2) if strategy == "ddp" else gpus
    sets = [f"launch.strategy={strategy}", f"launch.num_processes={processes}", f"train.max_steps={steps}",
            "train.logging_steps=1", f"train.save_steps={steps}", "train.per_device_train_batch_size=8", *extra]  # fmt: skip
    before = set((workspace / "runs").glob("*")) if (workspace / "runs").exists() else set()
    t = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui.cli.main", "train", "recipe.yaml", *[a for s in sets for a in ("--set", s)]],
        cwd=workspace, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    seconds = time.time() - t
    from tunedeck.engine.run.events import events_of
    from tunedeck.engine.run.rundir import RunDir

    new = sorted(set((workspace / "runs").glob("*")) - before)
    if not new:
        return {"case": name, "state": "refused", "error": (proc.stderr or proc.stdout).strip()[-800:]}
    run = RunDir(new[-1])
    losses = [e["loss"] for e in events_of(run, "step")]
    status = run.read_status()
    return {
        "case": name,
        "strategy": strategy,
        "num_processes": processes,
        "state": run.state(),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "steps": len(losses),
        "seconds": round(seconds, 1),
        "ranks": [{k: r.get(k) for k in ("rank", "device", "peak_mib", "total_mib", "rows_seen", "state")}
                  for r in run.read_ranks()],  # fmt: skip
        "error": status.get("error"),
        "hint": status.get("hint"),
        "run": str(run.path),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--only", help=f"comma-separated cases (default: all): {', '.join(CASES)}")
    p.add_argument("--timeout", type=float, default=300, help="seconds per case")
    p.add_argument("--cpu-smoke", action="store_true", help="no GPU: the ddp case on CPU with 2 processes (gloo)")
    p.add_argument("--workspace", help="reuse this demo workspace (default: a temporary one)")
    args = p.parse_args()
    from tunedeck.engine.run.accelerate_config import nvidia_gpus

    gpus = nvidia_gpus()
    if gpus == 0 and not args.cpu_smoke:
        print(json.dumps({"skipped": "no NVIDIA GPU (NVML sees none); --cpu-smoke runs the ddp case on CPU"}))
        return 0
    names = args.only.split(",") if args.only else (["ddp"] if args.cpu_smoke else list(CASES))
    unknown = [n for n in names if n not in CASES]
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    workspace = Path(args.workspace or tempfile.mkdtemp(prefix="tunedeck-dist-"))
    if not (workspace / "recipe.yaml").exists():
        subprocess.run([sys.executable, "-m", "tunedeck.tui.cli.main", "demo", "--init", str(workspace)], check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)  # fmt: skip
    results = []
    for name in names:
        try:
            results.append(run_case(workspace, name, max(gpus, 2) if args.cpu_smoke else gpus, args.steps, args.timeout))
        except subprocess.TimeoutExpired:
            results.append({"case": name, "state": "timeout", "error": f"over {args.timeout:.0f}s"})
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # progress while the rest runs
    device = None
    if gpus:
        from tunedeck.engine.gpu import sample_gpus

        device = sample_gpus()[0]["name"]
    print(json.dumps({"gpus": gpus, "device": device, "steps": args.steps, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
