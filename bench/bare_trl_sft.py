"""The alternative to ``tunedeck train``: a bare TRL script (SFTTrainer + LoraConfig), as a user would write it.

Used by bench/engine_overhead.py (same model, data and settings as the demo recipe) and
bench/throughput_options.py. Prints one JSON object: the training loop's tokens/s, timed exactly as
engine_overhead.py times the worker (from ``on_train_begin`` to the ``on_log`` of the last step;
tokens = TRL's own ``num_tokens`` at that log).

    python bench/bare_trl_sft.py --model DIR --data sft.jsonl [--max-steps 60] [--batch 16] ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="a messages JSONL")
    p.add_argument("--max-steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup-steps", type=int, default=20)
    p.add_argument("--max-length", type=int, default=96)
    p.add_argument("--logging-steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--cpu-compact", action="store_true", help="apply tunedeck's one TRL switch (engine/trl_compat.py: "
                   "the fused LM head scores labelled positions only on the CPU, as it does on CUDA)")  # fmt: skip
    return p.parse_args(argv)


class LoopTimer:
    """Wall time of the training loop: on_train_begin to the on_log of the last logged step."""

    def __init__(self) -> None:
        self.begin: float | None = None
        self.logs: list[dict] = []  # {"t", "step", "num_tokens", "loss"}

    def callback(self):
        from transformers import TrainerCallback

        timer = self

        class _Timer(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                timer.begin = time.time()

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    timer.logs.append(
                        {
                            "t": time.time(),
                            "step": state.global_step,
                            "num_tokens": logs.get("num_tokens"),
                            "loss": logs["loss"],
                        }
                    )

        return _Timer()

    def result(self) -> dict:
        last = self.logs[-1]
        loop_s = last["t"] - self.begin
        return {
            "steps": last["step"],
            "loop_s": round(loop_s, 3),
            "tokens": last["num_tokens"],
            "tokens_per_s": round(last["num_tokens"] / loop_s, 1),
            "final_loss": last["loss"],
            "log_s": [round(x["t"] - self.begin, 2) for x in self.logs],  # seconds into the loop at each log
        }


def build_trainer(args: argparse.Namespace, output_dir: str, callbacks: list, **config):
    """SFTTrainer + LoRA on every linear layer, fp32 on CPU (bf16 on a bf16 GPU); ``config``: extra SFTConfig fields."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16 if bf16 else torch.float32)
    settings = dict(
        output_dir=output_dir,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch,
        learning_rate=args.lr,
        warmup_steps=args.warmup_steps,
        logging_steps=args.logging_steps,
        save_steps=500,
        seed=args.seed,
        data_seed=args.seed,
        gradient_checkpointing=False,
        bf16=bf16,
        report_to="none",
        disable_tqdm=True,
        max_length=args.max_length,
        assistant_only_loss=True,
    )
    settings.update(config)
    return SFTTrainer(
        model=model,
        args=SFTConfig(**settings),
        train_dataset=load_dataset("json", data_files=args.data, split="train"),
        processing_class=tokenizer,
        peft_config=LoraConfig(
            r=args.r, lora_alpha=args.lora_alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
        callbacks=callbacks,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = time.time()
    timer = LoopTimer()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.cpu_compact:
        from tunedeck.engine.trl_compat import score_labelled_positions_only_on_cpu

        score_labelled_positions_only_on_cpu()
    with tempfile.TemporaryDirectory(prefix="bare-trl-") as out:
        trainer = build_trainer(args, out, [timer.callback()])
        metrics = trainer.train().metrics
    print(
        json.dumps(
            {**timer.result(), "train_runtime": metrics["train_runtime"], "process_s": round(time.time() - start, 2)}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
