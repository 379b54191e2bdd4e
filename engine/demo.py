"""The embedded default: a tiny *pretrained* Llama base and synthetic datasets, built locally.

Nothing is downloaded. The base is a 2-layer Llama with a byte-level BPE tokenizer trained here
and "pretrained" on plain arithmetic lines ("3+4=7"). It knows sums but not how to chat, so it
fails the instruction task ("What is 3+4?" -> "3+4=7") until SFT teaches it the format.
Everything is deterministic in ``SEED`` and cached under the user cache dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.templates import CHATML

SEED = 1234
N = 20  # operands 0..N-1
EVAL_PAIRS = 100
PHRASINGS = (
    "What is {a} plus {b}?",
    "What is the sum of {a} and {b}?",
    "Add {a} and {b}.",
    "What do you get when you add {a} to {b}?",
)
# Plain-text forms the base is pretrained on: it knows sums, not how to answer a question.
PRETRAIN_FORMS = ("the sum of {a} and {b} is {c}.", "{a} plus {b} is {c}.", "{a}+{b}={c}")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
MODEL_CONFIG = dict(
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)
PRETRAIN = dict(steps=1000, batch_size=32, seq_len=64, lr=3e-3)
VOCAB_SIZE = 512
# Bump when anything above or the build code changes: it keys the cache.
DEMO_VERSION = 2

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoAssets:
    """Paths of the cached demo base and datasets."""

    root: Path

    @property
    def base(self) -> Path:
        return self.root / "base"

    @property
    def sft(self) -> Path:
        return self.root / "data" / "sft.jsonl"

    @property
    def preference(self) -> Path:
        return self.root / "data" / "preference.jsonl"

    @property
    def eval(self) -> Path:
        return self.root / "data" / "eval.jsonl"

    @property
    def pretrain_text(self) -> Path:
        return self.root / "data" / "pretrain.txt"


def cache_root() -> Path:
    """Where demo assets live: $TUNEDECK_CACHE_DIR or the platform's user cache dir."""
    env = os.environ.get("TUNEDECK_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("tunedeck"))


def _fingerprint() -> str:
    spec = json.dumps(
        [DEMO_VERSION, SEED, N, EVAL_PAIRS, PHRASINGS, PRETRAIN_FORMS, SPECIAL_TOKENS, MODEL_CONFIG, PRETRAIN, VOCAB_SIZE, CHATML],
        sort_keys=True,
    )
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def demo_assets() -> DemoAssets:
    return DemoAssets(cache_root() / f"demo-{_fingerprint()}")


# --------------------------------------------------------------------------- data


def _pairs() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    pairs = [(a, b) for a in range(N) for b in range(N)]
    random.Random(SEED).shuffle(pairs)
    return pairs[EVAL_PAIRS:], pairs[:EVAL_PAIRS]


def _answer(a: int, b: int, c: int | None = None) -> str:
    return f"The sum of {a} and {b} is {a + b if c is None else c}."


def _chat(a: int, b: int, phrasing: str) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": phrasing.format(a=a, b=b)},
        {"role": "assistant", "content": _answer(a, b)},
    ]


def sft_rows() -> list[dict]:
    """Every training pair in every phrasing, plus two-turn chats so follow-up questions work too."""
    train, _ = _pairs()
    rows = [{"messages": _chat(a, b, p)} for a, b in train for p in PHRASINGS]
    rng = random.Random(SEED + 3)
    for (a, b), (c, d) in zip(train, rng.sample(train, len(train)), strict=True):
        rows.append({"messages": _chat(a, b, rng.choice(PHRASINGS)) + _chat(c, d, rng.choice(PHRASINGS))})
    return rows


def eval_rows() -> list[dict]:
    """Held-out pairs: never in the SFT or preference data."""
    _, held_out = _pairs()
    rng = random.Random(SEED + 1)
    return [{"messages": _chat(a, b, rng.choice(PHRASINGS))} for a, b in held_out]


def preference_rows() -> list[dict]:
    train, _ = _pairs()
    rng = random.Random(SEED + 2)
    rows = []
    for a, b in train:
        wrong = a + b + rng.choice([-3, -2, -1, 1, 2, 3])
        wrong = wrong if wrong >= 0 else a + b + 1
        rows.append(
            {
                "prompt": [{"role": "user", "content": rng.choice(PHRASINGS).format(a=a, b=b)}],
                "chosen": [{"role": "assistant", "content": _answer(a, b)}],
                "rejected": [{"role": "assistant", "content": _answer(a, b, abs(wrong))}],
            }
        )
    return rows


def pretrain_lines() -> list[str]:
    """Plain-text arithmetic: the base learns sums, never the chat format."""
    return [f.format(a=a, b=b, c=a + b) for a in range(N) for b in range(N) for f in PRETRAIN_FORMS]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


# --------------------------------------------------------------------------- base model


def _train_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        chat_template=CHATML,
        model_max_length=MODEL_CONFIG["max_position_embeddings"],
    )


def _pretrain(tokenizer, lines: list[str], progress: Progress):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        **MODEL_CONFIG,
    )
    model = LlamaForCausalLM(config)
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    rng = random.Random(SEED)
    seq, bs = PRETRAIN["seq_len"], PRETRAIN["batch_size"]
    line_ids = [tokenizer(line + "\n")["input_ids"] for line in lines]

    def batch() -> torch.Tensor:
        rows = []
        for _ in range(bs):
            ids = [eot]
            while len(ids) < seq:
                ids += rng.choice(line_ids)
            rows.append(ids[:seq])
        return torch.tensor(rows)

    opt = torch.optim.AdamW(model.parameters(), lr=PRETRAIN["lr"], weight_decay=0.0)
    steps = PRETRAIN["steps"]
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=PRETRAIN["lr"], total_steps=steps, pct_start=0.1)
    model.train()
    for step in range(1, steps + 1):
        x = batch()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == steps:
            progress(f"pretraining demo base: step {step}/{steps} loss {loss.item():.3f}")
    model.eval()
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    return model


def ensure_demo_assets(progress: Progress = lambda msg: None) -> DemoAssets:
    """Build the demo base and datasets once; later calls return the cached copy at once."""
    assets = demo_assets()
    if (assets.root / "COMPLETE").exists():
        return assets
    assets.root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=assets.root.parent))
    try:
        staged = DemoAssets(tmp)
        progress(f"building the demo base and data in {assets.root} (once)")
        sft, ev, pref, pre = sft_rows(), eval_rows(), preference_rows(), pretrain_lines()
        _write_jsonl(staged.sft, sft)
        _write_jsonl(staged.eval, ev)
        _write_jsonl(staged.preference, pref)
        staged.pretrain_text.write_text("\n".join(pre) + "\n", encoding="utf-8")
        texts = pre + [m["content"] for row in sft + ev for m in row["messages"]]
        tokenizer = _train_tokenizer(texts)
        model = _pretrain(tokenizer, pre, progress)
        model.save_pretrained(staged.base, safe_serialization=True)
        tokenizer.save_pretrained(staged.base)
        # Stated explicitly so every consumer (llama.cpp included) agrees: no BOS is added.
        cfg_path = staged.base / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.update(add_bos_token=False, add_eos_token=False)
        cfg_path.write_text(json.dumps(cfg, indent=2))
        (tmp / "COMPLETE").write_text(_fingerprint())
        try:
            tmp.rename(assets.root)
        except OSError:  # another process finished first: keep theirs
            if not (assets.root / "COMPLETE").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return assets


# --------------------------------------------------------------------------- workspace and pipeline


DEMO_TRAIN = dict(
    max_steps=1000,
    per_device_train_batch_size=16,
    learning_rate=2e-3,
    warmup_steps=20,
    max_length=96,
    logging_steps=50,
    save_steps=500,
    seed=0,
)


def demo_recipe(assets: DemoAssets):
    """The demo's SFT recipe: LoRA r16 on every linear layer, assistant-only loss."""
    from engine.recipe import recipe_from_dict

    return recipe_from_dict(
        {
            "model": {"name_or_path": str(assets.base)},
            "data": {"train": str(assets.sft)},
            "template": {"name": "model"},
            "adapter": {"kind": "lora", "r": 16, "lora_alpha": 32, "target_modules": "all-linear"},
            "method": {"name": "sft"},
            "train": {"runs_dir": "runs", **DEMO_TRAIN},
            "export": {"quant": ["F16", "Q8_0", "Q4_K_M"]},
        }
    )


def default_workspace() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("tunedeck")) / "demo"


def init_workspace(directory: Path, progress: Progress = lambda m: None) -> Path:
    """Write recipe.yaml (pointing at the cached demo base and data) into ``directory``."""
    assets = ensure_demo_assets(progress)
    directory = Path(directory).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    recipe_path = directory / "recipe.yaml"
    demo_recipe(assets).save(recipe_path)
    (directory / "eval.jsonl").write_text(assets.eval.read_text())
    return recipe_path
