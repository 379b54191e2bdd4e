"""Estimate against measured peak GPU memory for LoRA and QLoRA on a ~0.5B Llama (random init, no downloads).

Prints one JSON object. Each case runs ``--steps`` real steps through the worker's own trainer
(tunedeck.engine.model.memory_probe.probe) and compares the estimate's peak with torch.cuda.max_memory_allocated
(the CUDA context is in neither). Goal: every ratio within 15%. Without CUDA it prints
{"skipped": "no CUDA device"} and exits 0; ``--cpu-smoke`` runs a tiny config on CPU instead,
to check the plumbing.

    python bench/gpu_memory_check.py [--batch 8] [--seq 512] [--steps 3] [--cpu-smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# ~0.49B parameters: 24 layers of hidden 1024 / MLP 4096, GQA 16/8 heads, 32k vocabulary, untied head
GPU_CONFIG = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=8,
    vocab_size=32000, max_position_embeddings=4096, tie_word_embeddings=False, rms_norm_eps=1e-5,
)  # fmt: skip
SMOKE_CONFIG = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    vocab_size=1000, max_position_embeddings=512, tie_word_embeddings=False, rms_norm_eps=1e-5,
)  # fmt: skip
GOAL = 0.15


def sft_recipe(tmp: Path, model_dir: Path, data: Path, kind: str, r: int, *, batch: int, seq: int, steps: int, **train):
    """The LoRA/QLoRA SFT recipe both GPU scripts measure (r, alpha 2r, every linear layer)."""
    from tunedeck.engine.recipe import recipe_from_dict

    return recipe_from_dict(
        {
            "model": {"name_or_path": str(model_dir)},
            "data": {"train": str(data)},
            "adapter": {"kind": kind, "r": r, "lora_alpha": 2 * r, "target_modules": "all-linear"},
            "method": {"name": "sft"},
            "train": {
                "runs_dir": str(tmp / "runs"), "per_device_train_batch_size": batch, "max_length": seq,
                "max_steps": steps, "learning_rate": 1e-4, **train,
            },
        }
    )  # fmt: skip


def build_workspace(root: Path, config: dict, seq: int, rows: int) -> tuple[Path, Path]:
    """A random-init Llama saved in bf16 with a word-level tokenizer, and rows of exactly ``seq`` tokens."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from tunedeck.engine.templates.specs import CHATML

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
    words = [f"w{i}" for i in range(config["vocab_size"] - len(specials))]
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|pad|>", chat_template=CHATML, model_max_length=seq
    )
    model_dir = root / "model"
    cfg = LlamaConfig(
        **config, bos_token_id=None, eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|pad|>"], dtype="bfloat16"
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    del model
    rng = random.Random(0)
    data = root / "train.jsonl"
    with data.open("w") as f:
        for _ in range(rows):  # longer than seq: truncation makes every row exactly seq tokens, no padding
            f.write(json.dumps({"text": " ".join(rng.choice(words) for _ in range(seq + 16))}) + "\n")
    return model_dir, data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--cpu-smoke", action="store_true", help="tiny config on CPU: checks the plumbing, not the GPU")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu_smoke:
        print(json.dumps({"skipped": "no CUDA device"}))
        return 0
    from tunedeck.engine.model.estimate import estimate
    from tunedeck.engine.model.memory_probe import probe

    config = GPU_CONFIG if cuda else SMOKE_CONFIG
    seq = args.seq if cuda else min(args.seq, 64)
    results = []
    params = None
    with tempfile.TemporaryDirectory(prefix="tunedeck-gpu-check-") as tmp:
        t0 = time.time()
        model_dir, data = build_workspace(Path(tmp), config, seq, rows=max(args.batch * args.steps * 2, 32))
        setup_s = time.time() - t0
        for kind, checkpointing in (("lora", False), ("qlora", False), ("lora", True), ("qlora", True)):
            recipe = sft_recipe(
                Path(tmp), model_dir, data, kind, args.r, batch=args.batch, seq=seq, steps=args.steps,
                logging_steps=1, gradient_checkpointing=checkpointing,
            )  # fmt: skip
            case = {"kind": kind, "gradient_checkpointing": checkpointing}
            try:
                measured = probe(recipe, steps=args.steps, search=False)
                run = measured["recipe_batch"]
                est = estimate(recipe, seq=run["seq"] or seq)
                b = est.breakdown
                params = est.arch.params
                ratio = b.peak / run["measured_peak"] if run["measured_peak"] else None
                case.update(
                    seq=run["seq"],
                    estimate_peak_bytes=round(b.peak),
                    measured_peak_bytes=run["measured_peak"],
                    ratio=round(ratio, 4) if ratio else None,
                    within_goal=bool(ratio and abs(ratio - 1) <= GOAL),
                    estimate_total_with_overhead_bytes=round(b.total),
                    estimate_parts_bytes={
                        k: round(getattr(b, k))
                        for k in (
                            "weights",
                            "adapter_weights",
                            "gradients",
                            "optimizer",
                            "activations",
                            "loss_head",
                            "transient",
                        )
                    },
                    measured_weights_bytes=run["measured_weights"],
                    reserved_peak_bytes=run.get("reserved_peak"),
                    seconds=run["seconds"],
                    losses=run["losses"],
                )
            except Exception as e:  # noqa: BLE001 - one failing case must not hide the others
                case["error"] = f"{type(e).__name__}: {e}"
            results.append(case)
    out = {
        "device": torch.cuda.get_device_name() if cuda else "cpu (smoke: plumbing only)",
        "config": config,
        "params": params,
        "batch": args.batch,
        "seq": seq,
        "steps": args.steps,
        "goal": f"estimate within {GOAL:.0%} of torch.cuda.max_memory_allocated",
        "setup_seconds": round(setup_s, 1),
        "results": results,
        "all_within_goal": all(r.get("within_goal") for r in results),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
