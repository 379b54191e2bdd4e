"""The real-model demo and its fidelity: Gemma 3 270M from its GGUF, tuned and exported; JSON out.

1. ``tunedeck demo --headless --json --model gemma3-270m`` in a fresh workspace: held-out accuracy of the base, the
   tuned model and each GGUF, seconds per stage, and whether the goals were met (tuned >= 0.90 and 0.5 above the
   base, Q8_0 within 0.02 and Q4_K_M within 0.05 of tuned; the whole demo in 15 minutes on 2 cores).
2. That run exported again to F16, Q8_0, Q6_K, Q4_K_M and Q2_K with ``--checks full``: per file its size, bits per
   weight, the tensors llama.cpp's quantizer gave another type, perplexity on held-out replies beside the HF
   model's, top-1 agreement and mean KL against the tuned HF model on held-out text, task accuracy, and parity
   (template, EOS, where <end_of_turn> stops generation).

    python bench/real_demo.py [--run DIR]   # --run: skip step 1 and export this finished run of the real demo
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
TYPES = "F16,Q8_0,Q6_K,Q4_K_M,Q2_K"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="a finished run of the real demo workspace (default: run the demo first)")
    p.add_argument("--quant", default=TYPES)
    args = p.parse_args(argv)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    demo = None
    with tempfile.TemporaryDirectory(prefix="tunedeck-real-demo-") as tmp:
        if not args.run:
            t = time.time()
            proc = subprocess.run([sys.executable, "-m", "tunedeck.tui.cli.main", "demo", "--headless", "--json", "--model", "gemma3-270m",
                                   "--dir", tmp], cwd=ROOT, env=env, capture_output=True, text=True)  # fmt: skip
            if not proc.stdout.strip():
                raise SystemExit(f"the demo failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            demo = json.loads(proc.stdout)
            demo["wall_s"] = round(time.time() - t, 1)
            demo["accuracy_gguf"] = demo["accuracy"].pop("gguf")  # report.py skips keys named "gguf" (paths elsewhere)
        run = Path(args.run or demo["run_dir"]).expanduser().resolve()
        return _export(run, args, env, demo)


def _export(run: Path, args, env: dict, demo: dict | None) -> int:
    t = time.time()
    proc = subprocess.run([sys.executable, "-m", "tunedeck.tui.cli.main", "export", str(run), "--quant", args.quant, "--checks", "full",
                           "--no-adapter", "--json"], cwd=run.parent.parent, env=env, capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"export failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout)
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    files = []
    for f in report["files"]:
        fid = f.get("fidelity") or {}
        files.append({
            "type": f["type"], "size_mb": round(Path(f["path"]).stat().st_size / 1e6, 1), "bits_per_weight": f.get("bits_per_weight"),
            "fallback_tensors": len(f.get("fallback_tensors") or []),
            **{k: fid.get(k) for k in ("top1_agreement", "mean_kl", "perplexity", "perplexity_hf", "accuracy", "accuracy_hf")},
        })  # fmt: skip
    parity = report["parity"]
    print(json.dumps({
        "name": "real_demo",
        "command": "python bench/real_demo.py" + (f" --run {args.run}" if args.run else "")
        + (f" --quant {args.quant}" if args.quant != TYPES else ""),
        "cpu": cpu,
        **({"demo": {k: demo[k] for k in ("accuracy", "accuracy_gguf", "seconds", "passed", "failure", "wall_s")}} if demo else {}),
        "model": "Gemma 3 270M (the packaged Q4_K_M GGUF, dequantized), LoRA SFT on the extraction task",
        "heldout": report.get("heldout_source") or report.get("checks", {}).get("heldout"),
        "files": files,
        "parity_ok": parity["ok"],
        "stops": parity.get("stops"),
        "chat_template_equal": parity["chat_template"]["equal"],
        "checks": report.get("checks"),
        "export_seconds": round(time.time() - t, 1),
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
