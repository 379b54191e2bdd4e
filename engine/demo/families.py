"""Tiny models of real families, for ``tunedeck demo --init DIR --family NAME``: offline, built once, cached.

Each is transformers' own architecture (its config class, a few small layers) with the family's
*real* tokenizer and chat template, so that everything tunedeck does differently per family (the
tokenizer's BOS/EOS/end-of-turn rules and digit splitting, attention biases, the template, llama.cpp's
pre-tokenizer detection and the converter's per-architecture code) runs on the real thing. The
tokenizers come from the vocabulary-only GGUFs llama.cpp vendors (``models/ggml-vocab-*.gguf`` in the
llama-cpp-python sdist the Makefile keeps): transformers builds a fast tokenizer from them, checked
against llama.cpp's own test vectors beside each file (``.gguf.inp``/``.gguf.out``). The model is
briefly pretrained on the demo's arithmetic, plain and in the family's chat frame, so its outputs are
not degenerate; the demo's SFT data then trains it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunedeck.engine.demo.base import (
    PRETRAIN,
    SEED,
    Progress,
    build_once,
    cache_root,
    habit_chats,
    pretrain,
    pretrain_lines,
)
from tunedeck.engine.model.gguf_import import mark_control_tokens, write_sentencepiece_model
from tunedeck.engine.templates.specs import KNOWN_END_OF_TURN


@dataclass(frozen=True)
class Family:
    name: str
    vocab: str  # llama.cpp's models/ggml-vocab-<vocab>.gguf
    model_type: str  # transformers' model_type (AutoConfig.for_model)
    template: str  # "model": the chat template the vocabulary file carries; else a built-in (engine/chat_templates)
    architecture: dict[str, Any] = field(default_factory=dict)  # config settings this family needs
    note: str = ""
    add_bos: bool = False  # the real tokenizer adds its BOS to every text (Llama 3 does; the old vocab file omits the flag)
    spm: bool = False  # a SentencePiece vocabulary: the model folder also gets the tokenizer.model real checkpoints ship


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("llama3", "llama-bpe", "llama", "llama3.1", note="Llama 3 tokenizer (128k BPE, digits in threes)",
               add_bos=True),
        Family("qwen2", "qwen2", "qwen2", "model", note="Qwen2/2.5 tokenizer (152k BPE, digits one by one), q/k/v biases"),
        Family("qwen3", "qwen2", "qwen3", "qwen3", {"head_dim": 16}, note="Qwen3: Qwen's tokenizer, q/k norms, thinking template"),
        Family("mistral", "llama-spm", "mistral", "mistral-nemo", {"sliding_window": 4096}, add_bos=True, spm=True,
               note="Mistral v0.x's 32k SentencePiece tokenizer (llama.cpp's llama-spm), [INST] template, sliding window"),
        Family("phi3", "phi-3", "phi3", "model", add_bos=True, spm=True,
               note="Phi-3 tokenizer (32k SentencePiece + chat tokens), fused qkv_proj and gate_up_proj"),
        Family("gemma", "gemma-4", "gemma4_text", "model",
               {"head_dim": 16, "global_head_dim": 32, "hidden_size_per_layer_input": 0, "sliding_window": 64,
                "layer_types": ["sliding_attention", "full_attention"]},
               note="Gemma 4: its 262k tokenizer and template (the template writes <bos>), sliding and global "
                    "attention layers of different head sizes, q/k norms, tied and scaled embeddings"),
    )
}
# Small enough to pretrain in about a minute on 2 cores with a 152k-token vocabulary.
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=512, tie_word_embeddings=True)  # fmt: skip
TINY_PRETRAIN = dict(steps=120, batch_size=4)  # tunedeck.engine.demo.base.PRETRAIN's settings, fewer and smaller steps


def _fingerprint(family: Family) -> str:
    code = [inspect.getsource(f) for f in (pretrain_lines, habit_chats, load_vocab_tokenizer, pretrain, build_family_model)]
    code.append(repr(KNOWN_END_OF_TURN))  # the stop tokens written into generation_config.json
    spec = json.dumps([family.__dict__, TINY, PRETRAIN, TINY_PRETRAIN, SEED, code], sort_keys=True, default=str)
    return hashlib.sha256(spec.encode()).hexdigest()[:12]


def family_dir(name: str) -> Path:
    family = FAMILIES[name]
    return cache_root() / f"family-{name}-{_fingerprint(family)}"


def _vocab_file(vocab: str, into: Path) -> Path:
    """ggml-vocab-<vocab>.gguf (and llama.cpp's test vectors for it) out of the llama-cpp-python sdist."""
    from tunedeck.engine.templates.corpus import llama_cpp_sdist

    sdist = llama_cpp_sdist()
    if sdist is None or not sdist.is_file():
        raise FileNotFoundError(
            "the llama-cpp-python sdist is not in the wheelhouse, and the family tokenizers come from it: run "
            "`make install` (it downloads the sdist), or point TUNEDECK_LLAMA_SDIST at llama_cpp_python-0.3.36.tar.gz"
        )
    into.mkdir(parents=True, exist_ok=True)
    wanted = {f"ggml-vocab-{vocab}.gguf", f"ggml-vocab-{vocab}.gguf.inp", f"ggml-vocab-{vocab}.gguf.out"}
    with tarfile.open(sdist) as tar:
        for member in tar:
            name = Path(member.name).name
            if member.isfile() and "/vendor/llama.cpp/models/" in member.name and name in wanted:
                (into / name).write_bytes(tar.extractfile(member).read())
    path = into / f"ggml-vocab-{vocab}.gguf"
    if not path.is_file():
        raise FileNotFoundError(f"{sdist} has no models/ggml-vocab-{vocab}.gguf")
    return path


def load_vocab_tokenizer(gguf: Path, sentencepiece: bool = False):
    """A fast tokenizer built by transformers from a vocabulary GGUF; ValueError when it does not tokenize
    llama.cpp's own test vectors the way llama.cpp does.

    ``sentencepiece``: spaces as SentencePiece (and llama.cpp) treat them, one "▁" per space after a prepended
    one, as Llama 2's and Mistral's own tokenizers do; transformers' GGUF builder uses Metaspace, which merges a
    leading space into the prefix (" Hello" -> "▁Hello" where SentencePiece gives "▁", "▁Hello")."""
    from tokenizers import normalizers

    from tunedeck.engine.model.tokenizers import load_saved_tokenizer

    tokenizer = load_saved_tokenizer(gguf.parent, gguf_file=gguf.name, fast=True)
    mark_control_tokens(tokenizer, gguf)
    if sentencepiece:
        backend = tokenizer.backend_tokenizer
        backend.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
        backend.pre_tokenizer = None
    inp, out = gguf.with_name(gguf.name + ".inp"), gguf.with_name(gguf.name + ".out")
    if inp.is_file() and out.is_file():
        texts = inp.read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
        wanted = out.read_text(encoding="utf-8").split("\n")
        wrong = [t for t, ids in zip(texts, wanted, strict=False)
                 if tokenizer(t, add_special_tokens=False)["input_ids"] != [int(x) for x in ids.split()]]  # fmt: skip
        if len(wrong) > 1:  # one known difference in llama-bpe's (a lone space run); more is a broken tokenizer
            raise ValueError(f"{gguf.name}: {len(wrong)} of llama.cpp's test texts tokenize differently, e.g. {wrong[0]!r}")
    return tokenizer


def build_family_model(family: Family, target: Path, progress: Progress) -> None:
    """The family's tokenizer and template, and a tiny pretrained model of its architecture, saved in ``target``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunedeck.engine.templates import BUILTIN_TEMPLATES, end_of_turn_ids

    vocab = _vocab_file(family.vocab, target / "vocab")
    tokenizer = load_vocab_tokenizer(vocab, sentencepiece=family.spm)
    tokenizer.add_bos_token = family.add_bos
    if family.template != "model":
        tokenizer.chat_template = BUILTIN_TEMPLATES[family.template]
    if not tokenizer.chat_template:
        raise ValueError(f"{family.vocab}: the vocabulary carries no chat template; give the family a built-in")
    eot = tokenizer.eos_token_id
    config = AutoConfig.for_model(
        family.model_type, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=eot,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eot, **TINY, **family.architecture,
    )  # fmt: skip
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config)
    chats = [tokenizer.apply_chat_template(c, tokenize=False) for c in habit_chats()]
    pieces = [tokenizer(t, add_special_tokens=False)["input_ids"] + [eot] for t in pretrain_lines() + chats]
    pretrain(model, pieces, progress, f"the tiny {family.name} model", **TINY_PRETRAIN)
    # Generation stops at the EOS and at the template's end-of-turn token, as a real instruct model's config says.
    stops = sorted(end_of_turn_ids(tokenizer, tokenizer.chat_template))
    model.generation_config.eos_token_id = stops if len(stops) > 1 else eot
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    if family.spm:  # SentencePiece's own pieces come first; added chat tokens follow them
        added = min((i for i in tokenizer.added_tokens_decoder if i >= 3), default=len(tokenizer))
        write_sentencepiece_model(vocab, target / "tokenizer.model", added)
    shutil.rmtree(target / "vocab", ignore_errors=True)


def ensure_family_model(name: str, progress: Progress = lambda m: None) -> Path:
    """The cached tiny model of family ``name`` (built once; later calls return at once)."""
    if name not in FAMILIES:
        raise ValueError(f"no family {name!r}; choose from {', '.join(FAMILIES)} (or --family list)")
    root = family_dir(name)
    if (root / "COMPLETE").exists():
        return root / "model"
    progress(f"building a tiny {name} model with the family's real tokenizer in {root} (once)")
    build_once(root, lambda tmp: build_family_model(FAMILIES[name], tmp / "model", progress), name)
    return root / "model"


FAMILY_TRAIN = dict(max_steps=30, per_device_train_batch_size=8, learning_rate=2e-3, warmup_steps=3, max_length=128,
                    logging_steps=5, save_steps=30, seed=0)  # fmt: skip


def init_family_workspace(directory: Path, name: str, progress: Progress = lambda m: None) -> Path:
    """recipe.yaml for a LoRA SFT of the tiny ``name`` model on the demo's sums, on the family's own template."""
    from tunedeck.engine.demo.base import ensure_demo_assets
    from tunedeck.engine.recipe import recipe_from_dict

    model = ensure_family_model(name, progress)
    assets = ensure_demo_assets(progress)
    directory = Path(directory).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    recipe = recipe_from_dict({
        "model": {"name_or_path": str(model)},
        "data": {"train": str(assets.sft)},
        "template": {"name": "model"},
        "adapter": {"kind": "lora", "r": 16, "lora_alpha": 32, "target_modules": "all-linear"},
        "method": {"name": "sft"},
        "train": {"runs_dir": "runs", **FAMILY_TRAIN},
        "export": {"quant": ["F16", "Q8_0", "Q4_K_M"]},
    })  # fmt: skip
    path = directory / "recipe.yaml"
    recipe.save(path)
    (directory / "eval.jsonl").write_text("".join(assets.eval.read_text().splitlines(keepends=True)[:20]))
    return path
