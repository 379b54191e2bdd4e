"""What export checks cost: ``export_run`` with ``--checks none`` (merge, convert and quantize alone), ``quick``
and ``full`` on the same run, and what each found (JSON out).

    python bench/export_checks.py [--model demo|qwen2-0.5b] [--levels none,quick,full] [--quant F16,Q8_0,Q4_K_M]

--model demo: a LoRA run on the demo base. --model qwen2-0.5b: Qwen2-0.5B's shape (24 layers, hidden 896, 14 heads,
2 KV heads, MLP 4864, tied embeddings: 494M parameters) with the real Qwen2 tokenizer and chat template (the
vocabulary llama.cpp vendors, as ``tunedeck demo --family qwen2`` uses), random bf16 weights. Both: a random,
non-zero LoRA adapter (r=8, every linear layer; no training: an export costs the same) and the demo's data.

Each level exports a fresh copy of the run. ``checks_s`` is the checking stages (reference, parity, the
verification of each file, HF task accuracy); ``bare_s`` is merge + convert + quantize inside the same export.
Goal (issue 21): quick checks cost at most 2x the bare time, at both sizes. On an NVIDIA machine (torch and
llama-cpp-python built for CUDA: make install TORCH_SPEC=torch LLAMA_CMAKE_ARGS="-DGGML_CUDA=on") each level's
``devices`` says both sides ran on cuda.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.helpers.make_lora_run
os.environ.setdefault("HF_HUB_OFFLINE", "1")
QWEN2_0_5B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True,
                  rope_theta=1000000.0, rms_norm_eps=1e-6)  # fmt: skip


def cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def qwen2_0_5b(into: Path) -> Path:
    """Qwen2-0.5B's shape with the real Qwen2 tokenizer and template (from the tiny qwen2 family model), random weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from tunedeck.engine.demo.families import ensure_family_model

    family = ensure_family_model("qwen2", lambda m: print(m, file=sys.stderr))
    tokenizer = AutoTokenizer.from_pretrained(family)
    small = AutoConfig.from_pretrained(family)
    config = AutoConfig.for_model("qwen2", vocab_size=small.vocab_size, bos_token_id=small.bos_token_id,
                                  eos_token_id=small.eos_token_id, pad_token_id=small.pad_token_id, **QWEN2_0_5B)  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig.from_pretrained(family)
    model.save_pretrained(into, safe_serialization=True)
    tokenizer.save_pretrained(into)
    return into


def summary(report: dict, seconds: float) -> dict:
    checks = report["checks"]
    return {
        "total_s": round(seconds, 2),
        "checks_s": checks["seconds"],
        "bare_s": checks["bare_seconds"],
        "checks_over_bare": round(checks["seconds"] / checks["bare_seconds"], 2) if checks["bare_seconds"] else None,
        "parity_ok": (report.get("parity") or {}).get("ok"),
        "top1": {f["type"]: (f.get("fidelity") or {}).get("top1_agreement") for f in report["files"]},
        "token_positions_per_file": next((f["fidelity"]["tokens"] for f in report["files"] if f.get("fidelity")), 0),
        "devices": checks.get("devices"),  # where the HF side and the GGUF side ran (cuda on a GPU box)
        "covered": checks["covered"],
        "not_covered": checks["not_covered"],
        "stages_s": report["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("demo", "qwen2-0.5b"), default="demo")
    parser.add_argument("--levels", default="none,quick,full", help="comma-separated, in the order they run")
    parser.add_argument("--quant", default="F16,Q8_0,Q4_K_M")
    args = parser.parse_args()

    from tests.helpers import make_lora_run
    from tunedeck.engine.demo.base import ensure_demo_assets
    from tunedeck.engine.export.pipeline import export_run
    from tunedeck.engine.run.rundir import RunDir

    quants = args.quant.split(",")
    assets = ensure_demo_assets(lambda m: print(m, file=sys.stderr))
    name = "export_checks" if args.model == "demo" else "export_checks_" + args.model.replace("-", "_").replace(".", "_")
    out: dict = {"name": name, "command": "python bench/export_checks.py " + " ".join(sys.argv[1:]),
                 "cpu_model": cpu_model(), "model": args.model, "quants": quants}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        base = qwen2_0_5b(Path(tmp) / "base") if args.model == "qwen2-0.5b" else None
        template = make_lora_run(assets, Path(tmp) / "template", base=base)
        for level in args.levels.split(","):
            workspace = Path(tmp) / level
            shutil.copytree(template.parents[1], workspace)
            run = RunDir(workspace / "runs" / template.name)
            print(f"export --checks {level}", file=sys.stderr, flush=True)
            t = time.perf_counter()
            report = export_run(run, quants, overrides={"checks": level})
            out[level] = summary(report, time.perf_counter() - t)
            shutil.rmtree(workspace)
    if "quick" in out:
        out["quick_checks_over_bare"] = out["quick"]["checks_over_bare"]
        out["goal"] = "quick checks_s <= 2 x bare_s (merge + convert + quantize)"
        out["goal_met"] = out["quick_checks_over_bare"] is not None and out["quick_checks_over_bare"] <= 2
    if "quick" in out and "full" in out:
        quick, full = out["quick"]["top1"], out["full"]["top1"]
        out["top1_quick_minus_full"] = {q: round(quick[q] - full[q], 4) for q in quick if None not in (quick[q], full.get(q))}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
