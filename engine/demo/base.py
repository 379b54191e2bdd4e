"""The embedded default: a tiny *pretrained* Llama base and synthetic datasets, built locally.

Nothing is downloaded. The base is a 2-layer Llama with a byte-level BPE tokenizer trained here,
pretrained on plain arithmetic ("3+4=7", "3 plus 4 is 7.") and on questions in the chat frame
answered in that plain habit ("What is 3 plus 4?" -> "3 plus 4 is 7."), as real base models have
seen chat-formatted text. SFT teaches the house answer ("The sum of 3 and 4 is 7."), which the
base never gives, on pairs the held-out eval never shows.

Why the base sees the chat frame: every answer copies the question's operands, an in-context
lookup that needs an attention match and a copy of the operand's identity together, each useless
alone. A base pretrained only on self-contained lines never needed it, and the chat frame's tokens
(<|im_start|>, <|im_end|>, the role names) were ones it had never seen, with untrained embeddings
that a LoRA on the linear layers cannot change. The SFT then had to grow that lookup from nothing:
it learned the format and sat on a plateau guessing the operands (loss ~0.74, token accuracy 0.81:
the two operand tokens wrong, one sentence for every question), and whether it ever left that
plateau was decided by the last bits of the CPU's float kernels (0.99 on one machine, 0.00 on
another). With the lookup and the frame in the base, the SFT only changes the wording of the answer:
the default base (SEED) learns it at 0.99-1.00 under every SFT seed, thread count and matmul
precision measured on an Intel Xeon. Not yet every base: built with seed 1, two SFT seeds of six end
on a smaller plateau (0.67, 0.74). bench/demo_robustness.py measures it; docs/benchmarks.md has the
figures.

Everything is deterministic in ``SEED`` and cached under the user cache dir.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path

from tunedeck.engine.templates.specs import CHATML

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
PRETRAIN = dict(steps=1500, batch_size=32, seq_len=64, lr=3e-3)
VOCAB_SIZE = 512

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

    def data(self, name: str) -> Path:
        """One of the per-method demo files (named by tunedeck.engine.methods.METHODS[...].demo)."""
        return self.root / "data" / name


def cache_root() -> Path:
    """Where demo assets live: $TUNEDECK_CACHE_DIR or the platform's user cache dir."""
    env = os.environ.get("TUNEDECK_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("tunedeck"))


def _fingerprint() -> str:
    """Keys the cached base: its settings and the source of the code that builds it (nothing to bump by hand)."""
    code = [inspect.getsource(f) for f in (pretrain_lines, habit_chats, _train_tokenizer, pretrain, build_base)]
    spec = json.dumps(
        [SEED, N, EVAL_PAIRS, PHRASINGS, PRETRAIN_FORMS, SPECIAL_TOKENS, MODEL_CONFIG, PRETRAIN, VOCAB_SIZE, CHATML, code],
        sort_keys=True,
    )
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def build_once(target: Path, build: Callable[[Path], None], marker: str) -> None:
    """Run ``build`` into a temp folder beside ``target``, mark it COMPLETE and rename it to ``target``: a reader sees a
    finished folder or none, another process that finished first keeps its copy, and a failure leaves nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        build(tmp)
        (tmp / "COMPLETE").write_text(marker)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: keep theirs
            if not (target / "COMPLETE").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def demo_assets() -> DemoAssets:
    return DemoAssets(cache_root() / f"demo-{_fingerprint()}")


# --------------------------------------------------------------------------- data


def addition_pairs() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
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
    train, _ = addition_pairs()
    rows = [{"messages": _chat(a, b, p)} for a, b in train for p in PHRASINGS]
    rng = random.Random(SEED + 3)
    for (a, b), (c, d) in zip(train, rng.sample(train, len(train)), strict=True):
        rows.append({"messages": _chat(a, b, rng.choice(PHRASINGS)) + _chat(c, d, rng.choice(PHRASINGS))})
    return rows


def eval_rows() -> list[dict]:
    """Held-out pairs: never in the SFT or preference data."""
    _, held_out = addition_pairs()
    rng = random.Random(SEED + 1)
    return [{"messages": _chat(a, b, rng.choice(PHRASINGS))} for a, b in held_out]


def _rejected(a: int, b: int, kind: str, rng: random.Random) -> str:
    """A wrong answer of ``kind``: mistakes a sampled policy makes on this task."""
    good = _answer(a, b)
    if kind == "sum":  # well formed, wrong arithmetic
        return _answer(a, b, a + b + rng.choice([-3, -2, -1, 1, 2, 3]) if a + b > 3 else a + b + 1)
    # malformed: missing its start, cut short, rambling on, or with a stray word first
    return rng.choice([good[4:], good[: rng.randint(5, len(good) - 4)], f"{good} {good[:8]}", f"sum {good}"])


REJECTED_KINDS = ("malformed", "sum", "malformed", "malformed")


def _preference_row(phrasing: str, a: int, b: int, rejected: str) -> dict:
    """One pair in TRL's conversational preference format: the correct answer is chosen."""
    return {
        "prompt": [{"role": "user", "content": phrasing.format(a=a, b=b)}],
        "chosen": [{"role": "assistant", "content": _answer(a, b)}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def preference_rows(held_out: bool = False) -> list[dict]:
    """Correct answers (chosen) against malformed replies (three in four) or a wrong sum (one in four)."""
    train, evals = addition_pairs()
    rng = random.Random(SEED + (4 if held_out else 2))
    return [
        _preference_row(rng.choice(PHRASINGS), a, b, _rejected(a, b, kind, rng))
        for kind, (a, b) in zip(cycle(REJECTED_KINDS), evals if held_out else train)
    ]


def orpo_rows(held_out: bool = False) -> list[dict]:
    """Correct chat answers (chosen) against the base's plain-text habit (rejected): ORPO starts from the base."""
    train, evals = addition_pairs()
    rng = random.Random(SEED + (7 if held_out else 6))
    return [
        _preference_row(rng.choice(PHRASINGS), a, b, habit.format(a=a, b=b, c=a + b))
        for habit, (a, b) in zip(cycle(PRETRAIN_FORMS), evals if held_out else train)
    ]


def kto_rows(held_out: bool = False) -> list[dict]:
    """Unpaired: each preference pair gives a desirable and an undesirable completion."""
    rows = []
    for row in preference_rows(held_out):
        rows.append({"prompt": row["prompt"], "completion": row["chosen"], "label": True})
        rows.append({"prompt": row["prompt"], "completion": row["rejected"], "label": False})
    return rows


def prompt_rows(held_out: bool = False) -> list[dict]:
    """Prompts only, for online methods (GRPO, RLOO, PPO); a and b go to the reward function."""
    train, evals = addition_pairs()
    rng = random.Random(SEED + 5)
    return [
        {"prompt": [{"role": "user", "content": rng.choice(PHRASINGS).format(a=a, b=b)}], "a": a, "b": b}
        for a, b in (evals if held_out else train)
    ]


def sum_reward(completions, a, b, **kwargs) -> list[float]:
    """The demo's Python reward: 0.5 for naming both operands as taught, 0.5 more for the right sum."""
    rewards = []
    for completion, x, y in zip(completions, a, b, strict=True):
        text = completion[-1]["content"] if isinstance(completion, list) else completion
        first = text.strip().splitlines()[0] if text.strip() else ""
        reward = 0.5 if first.startswith(f"The sum of {x} and {y} is") else 0.0
        reward += 0.5 if first.rstrip(".").split(" ")[-1] == str(x + y) else 0.0
        rewards.append(reward)
    return rewards


def pretrain_lines() -> list[str]:
    """Plain-text arithmetic, every sum in every plain form and as a sentence: the base's knowledge.

    The sentence ("The sum of 3 and 4 is 7.", the house answer's wording) is there so that every token
    of the house answer has a trained embedding, as in any real base. A LoRA cannot train an embedding:
    with "The" left at its random init, copying the first operand after "The sum of" failed on some
    bases (held-out accuracy 0.67-0.74 with the first operand always " 1", measured on a Xeon)."""
    forms = (*PRETRAIN_FORMS, "The sum of {a} and {b} is {c}.")
    return [f.format(a=a, b=b, c=a + b) for a in range(N) for b in range(N) for f in forms]


def habit_chats() -> list[list[dict[str, str]]]:
    """Every question in the chat frame, answered in a plain form: the base's habit, which SFT replaces with the
    house answer."""
    return [
        [
            {"role": "user", "content": phrasing.format(a=a, b=b)},
            {"role": "assistant", "content": PRETRAIN_FORMS[(a * N + b + i) % len(PRETRAIN_FORMS)].format(a=a, b=b, c=a + b)},
        ]
        for a in range(N)
        for b in range(N)
        for i, phrasing in enumerate(PHRASINGS)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> None:
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


def pretrain(model, pieces: list[list[int]], progress: Progress, what: str, seed: int = SEED, first: tuple[int, ...] = (),
             **changes):
    """Next-token training on rows of random ``pieces`` (token ids) end to end after ``first``, with AdamW on a one-cycle
    schedule: the demo base's pretraining and the family models' (``changes``: settings of PRETRAIN they change)."""
    import torch

    settings = {**PRETRAIN, **changes}
    steps, batch_size, seq_len, lr = (settings[k] for k in ("steps", "batch_size", "seq_len", "lr"))
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for step in range(1, steps + 1):
        rows = []
        for _ in range(batch_size):
            row = list(first)
            while len(row) < seq_len:
                row += rng.choice(pieces)
            rows.append(row[:seq_len])
        x = torch.tensor(rows)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % max(steps // 10, 1) == 0 or step == steps:
            progress(f"pretraining {what}: step {step}/{steps} loss {loss.item():.3f}")
    model.eval()
    return model


def build_base(target: Path, seed: int = SEED, progress: Progress = lambda msg: None) -> None:
    """Train the tokenizer and pretrain the base into ``target`` (``seed``: the weights' init and batches)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    pre = pretrain_lines()
    # Role names become whole tokens, as in every real tokenizer: the chat frame is a few tokens, not 13 bytes.
    texts = pre + [m["content"] for row in sft_rows() + eval_rows() for m in row["messages"]] + ["user", "assistant"] * 200
    tokenizer = _train_tokenizer(texts)
    chats = [tokenizer.apply_chat_template(chat, tokenize=False).rstrip("\n") for chat in habit_chats()]
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), bos_token_id=None, eos_token_id=eos,
                                         pad_token_id=tokenizer.pad_token_id, **MODEL_CONFIG))  # fmt: skip
    lines = [tokenizer(line + "\n")["input_ids"] for line in pre + chats]
    pretrain(model, lines, progress, "demo base", seed, first=(tokenizer.convert_tokens_to_ids("<|endoftext|>"),))
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    # Stated explicitly so every consumer (llama.cpp included) agrees: no BOS is added.
    cfg_path = target / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(add_bos_token=False, add_eos_token=False)
    cfg_path.write_text(json.dumps(cfg, indent=2))


def _data_version() -> str:
    """A hash of the code that writes the datasets: any change to it rewrites them (the base is kept)."""
    writers = (addition_pairs, _answer, _chat, sft_rows, eval_rows, _rejected, _preference_row, preference_rows, orpo_rows,
               kto_rows, prompt_rows, pretrain_lines, write_jsonl, write_data)  # fmt: skip
    spec = json.dumps([[inspect.getsource(f) for f in writers], REJECTED_KINDS])
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def write_data(data_dir: Path) -> None:
    """Every demo dataset (cheap: rewritten whenever ``_data_version()`` changes, the base is kept)."""
    pre = pretrain_lines()
    files = {
        "sft.jsonl": sft_rows(),
        "eval.jsonl": eval_rows(),
        "preference.jsonl": preference_rows(),
        "preference_eval.jsonl": preference_rows(held_out=True),
        "orpo.jsonl": orpo_rows(),
        "orpo_eval.jsonl": orpo_rows(held_out=True),
        "kto.jsonl": kto_rows(),
        "kto_eval.jsonl": kto_rows(held_out=True),
        "prompts.jsonl": prompt_rows(),
        "prompts_eval.jsonl": prompt_rows(held_out=True),
        "text.jsonl": [{"text": line} for line in pre],
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        tmp = data_dir / f".{name}.{os.getpid()}.tmp"
        write_jsonl(tmp, rows)
        os.replace(tmp, data_dir / name)
    (data_dir / "pretrain.txt").write_text("\n".join(pre) + "\n", encoding="utf-8")
    (data_dir / "VERSION").write_text(DATA_VERSION)


# Taken once, at import: the code that runs, even if the files on disk change under a long-lived process.
DATA_VERSION = _data_version()


def ensure_demo_assets(progress: Progress = lambda msg: None) -> DemoAssets:
    """Build the demo base and datasets once; later calls return the cached copy at once."""
    assets = demo_assets()
    if (assets.root / "COMPLETE").exists():
        version = assets.root / "data" / "VERSION"
        if not version.exists() or version.read_text() != DATA_VERSION:
            write_data(assets.root / "data")
        return assets
    assets.root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=assets.root.parent))
    try:
        staged = DemoAssets(tmp)
        progress(f"building the demo base and data in {assets.root} (once)")
        write_data(tmp / "data")
        build_base(staged.base, progress=progress)
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


INSTRUCT = dict(max_steps=400, learning_rate=2e-3, per_device_train_batch_size=16, max_length=96, seed=0)


def ensure_instruct_model(progress: Progress = lambda msg: None) -> Path:
    """The demo base after a short LoRA SFT, merged: the classic RLHF pipeline's starting point for preference and RL.

    Built once, next to the base (a few seconds of training on an idle machine).
    """
    assets = ensure_demo_assets(progress)
    # Keyed by its recipe (INSTRUCT and this function, as imported) and its data: a change builds a new one.
    key = hashlib.sha256(_INSTRUCT_RECIPE + assets.sft.read_bytes()).hexdigest()[:8]
    target = assets.root / f"instruct-{key}"
    if (target / "COMPLETE").exists():
        return target
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from tunedeck.engine.data import load_rows
    from tunedeck.engine.evaluate import hf_exact_match, load_eval_rows
    from tunedeck.engine.model.tokenizers import load_saved_tokenizer

    progress(f"building the demo instruct model in {target} (once)")
    tmp = Path(tempfile.mkdtemp(prefix=".instruct-", dir=assets.root))
    try:
        tokenizer = load_saved_tokenizer(assets.base)
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(assets.base),
            args=SFTConfig(
                output_dir=str(tmp / "out"), assistant_only_loss=True, report_to="none", save_strategy="no",
                gradient_checkpointing=False, bf16=False, disable_tqdm=True, warmup_steps=20, **INSTRUCT,
            ),  # fmt: skip
            train_dataset=load_rows(str(assets.sft)),
            processing_class=tokenizer,
            peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"),
        )
        trainer.train()
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(tmp / "model", safe_serialization=True)
        tokenizer.save_pretrained(tmp / "model")
        shutil.copy(assets.base / "tokenizer_config.json", tmp / "model" / "tokenizer_config.json")
        accuracy = hf_exact_match(merged, tokenizer, load_eval_rows(assets.eval))
        low = "" if accuracy >= 0.8 else " (below 0.80: it did not learn its task; see bench/demo_robustness.py)"
        progress(f"demo instruct model: held-out accuracy {accuracy:.2f}{low}")
        (tmp / "model" / "COMPLETE").write_text("ok")
        try:
            (tmp / "model").rename(target)
        except OSError:
            if not (target / "COMPLETE").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


_INSTRUCT_RECIPE = json.dumps([INSTRUCT, inspect.getsource(ensure_instruct_model)], sort_keys=True).encode()


# --------------------------------------------------------------------------- workspace and pipeline


DEMO_TRAIN = dict(
    max_steps=300,
    per_device_train_batch_size=16,
    learning_rate=2e-3,
    warmup_steps=20,
    max_length=96,
    logging_steps=25,
    save_steps=150,
    seed=0,
)


def demo_recipe(assets: DemoAssets, method: str = "sft", progress: Progress = lambda msg: None):
    """The demo recipe for ``method``: LoRA r16 on every linear layer over the demo base or the instruct model,
    with the method's own demo changes (tunedeck.engine.methods.METHODS[method].demo)."""
    from tunedeck.engine.methods import METHODS
    from tunedeck.engine.recipe import recipe_from_dict

    demo = METHODS[method].demo
    # Preference and RL methods start where the classic RLHF pipeline does: from an SFT model.
    model = assets.base if demo.from_base else ensure_instruct_model(progress)
    data = {"train": str(assets.data(demo.train))}
    if demo.eval:
        data["eval"] = str(assets.data(demo.eval))
    train = {"runs_dir": "runs", **DEMO_TRAIN, **demo.train_overrides}
    if demo.eval:
        train["save_steps"] = max(train["max_steps"] // 4, 1)  # evaluate (and checkpoint) four times
    return recipe_from_dict(
        {
            "model": {"name_or_path": str(model)},
            "data": data,
            "template": {"name": "model"},
            "adapter": {"kind": "lora", "r": 16, "lora_alpha": 32, "target_modules": "all-linear", **demo.adapter},
            "method": {"name": method, **demo.settings},
            "train": train,
            "export": {"quant": ["F16", "Q8_0", "Q4_K_M"]},
        }
    )


def default_workspace() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("tunedeck")) / "demo"


def init_workspace(directory: Path, progress: Progress = lambda m: None, method: str = "sft") -> Path:
    """Write recipe.yaml (pointing at the cached demo base and data for ``method``) into ``directory``."""
    from tunedeck.engine.methods import METHODS

    if method not in METHODS:
        raise ValueError(f"no demo for method {method!r}; choose from {', '.join(METHODS)}")
    assets = ensure_demo_assets(progress)
    directory = Path(directory).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    recipe_path = directory / "recipe.yaml"
    demo_recipe(assets, method, progress).save(recipe_path)
    (directory / "eval.jsonl").write_text(assets.eval.read_text())
    return recipe_path
