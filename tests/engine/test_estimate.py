"""The memory estimate: its activation formula against what autograd keeps, its arithmetic, and the probe."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import weakref

import pytest

from tests.helpers import ROOT
from tunedeck.engine.model.estimate import (
    GIB,
    _lora_groups,
    arch_of,
    estimate,
    estimate_lines,
    layer_activation_bytes,
    max_batch_that_fits,
    precision_of,
)
from tunedeck.engine.recipe import load_recipe, recipe_from_dict

TINY = dict(
    hidden_size=128, intermediate_size=352, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    vocab_size=300, max_position_embeddings=128, tie_word_embeddings=False,
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random tiny Llama saved as safetensors (QLoRA needs a real from_pretrained)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny") / "model"
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**TINY)).save_pretrained(path)
    return path


def recipe_for(path, adapter=None, **sections):
    return recipe_from_dict(
        {"model": {"name_or_path": str(path)}, "data": {"train": "d.jsonl"}, "adapter": adapter or {}, **sections}
    )


def saved_bytes_of_layer(recipe, layer: int = 1, batch: int = 3, seq: int = 20) -> int:
    """Bytes of the tensors autograd keeps for backward while one decoder layer runs (parameters excluded)."""
    import torch
    from peft import get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    from tunedeck.engine.model.adapters import peft_config
    from tunedeck.engine.model.loading import load_model

    model = load_model(recipe)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))  # as SFTTrainer does
    lora = peft_config(recipe, model)
    if lora is not None:
        model = get_peft_model(model, lora)
        if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
            for name, p in model.named_parameters():  # as SFTTrainer does for a quantized base
                if p.requires_grad and "lora_magnitude_vector" not in name:
                    p.data = p.data.to(torch.bfloat16)
    model.train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    records, where = [], ["before"]

    def pack(t):
        records.append((weakref.ref(t), t.untyped_storage().data_ptr(), t.untyped_storage().nbytes(), where[0]))
        return t

    blocks = (model.get_base_model() if lora is not None else model).model.layers
    blocks[layer].register_forward_pre_hook(lambda m, a: where.__setitem__(0, "layer"))
    blocks[layer].register_forward_hook(lambda m, a, o: where.__setitem__(0, "after"))
    ids = torch.randint(0, TINY["vocab_size"], (batch, seq))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=recipe.train.bf16 is True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        out = model(input_ids=ids, labels=ids, fused_lm_head=True)
    kept = {}
    for ref, ptr, nbytes, w in records:  # only what is still alive for backward, each storage once
        if ref() is not None and ptr not in params and ptr not in kept:
            kept[ptr] = (nbytes, w)
    del out
    return sum(n for n, w in kept.values() if w == "layer")


@pytest.mark.parametrize(
    "adapter, dtype, bf16",
    [
        ({"kind": "lora", "r": 8}, "float32", False),  # the CPU default
        ({"kind": "lora", "r": 8}, "bfloat16", True),  # the CUDA default: bf16 weights, bf16 autocast, fp32 adapter
        ({"kind": "lora", "r": 8}, "float32", True),  # fp32 weights under autocast: bf16 weight copies are kept
        ({"kind": "lora", "r": 8, "target_modules": ["q_proj", "v_proj"], "lora_dropout": 0.1}, "bfloat16", True),
        ({"kind": "dora", "r": 4}, "bfloat16", True),
        ({"kind": "qlora", "r": 8}, "float32", False),
        ({"kind": "qlora", "r": 8}, "bfloat16", True),
        ({"kind": "full"}, "bfloat16", True),
        ({"kind": "full"}, "float32", False),
    ],
    ids=[
        "lora-fp32",
        "lora-bf16-autocast",
        "lora-fp32-autocast",
        "qv-dropout",
        "dora",
        "qlora-cpu",
        "qlora-autocast",
        "full-bf16",
        "full-fp32",
    ],  # fmt: skip
)
def test_layer_activations_equal_what_autograd_keeps(tiny_model, adapter, dtype, bf16):
    recipe = recipe_for(
        tiny_model, adapter, model={"name_or_path": str(tiny_model), "dtype": dtype}, train={"bf16": bf16}
    )
    from tunedeck.engine.model.loading import meta_model

    meta = meta_model(recipe)
    per_token, fixed = layer_activation_bytes(
        arch_of(meta), precision_of(recipe, "cpu"), recipe, _lora_groups(recipe, meta)
    )
    assert per_token * 3 * 20 + fixed == saved_bytes_of_layer(recipe)


def test_estimate_needs_only_the_config(demo_assets, tmp_path):
    folder = tmp_path / "config-only"
    folder.mkdir()
    shutil.copy(demo_assets.base / "config.json", folder / "config.json")
    est = estimate(recipe_for(folder), device="cpu")
    # From the config alone: the count of the real weights, and r=16 LoRA on all-linear of the demo's layers.
    assert est.arch.params == _weights_numel(demo_assets.base) and est.params.trainable == 139_264
    b = est.breakdown
    assert b.weights == est.arch.params * 4 and b.adapter_weights == est.params.trainable * 4
    assert b.optimizer == 2 * b.gradients == 2 * est.params.trainable * 4


def test_weights_at_their_dtype_or_bits(demo_assets):
    base = demo_assets.base
    arch = estimate(recipe_for(base), device="cpu").arch
    other = arch.params - arch.linear_params  # embeddings, norms and the head: never quantized, fp32 under k-bit
    bf16 = estimate(recipe_for(base), device="cuda").breakdown
    assert bf16.weights == arch.params * 2
    nf4 = estimate(recipe_for(base, {"kind": "qlora"}), device="cuda").breakdown
    assert nf4.weights == pytest.approx(arch.linear_params * (4 + 0.127) / 8 + other * 4)
    fp4 = estimate(recipe_for(base, {"kind": "qlora", "bnb_4bit_use_double_quant": False}), device="cuda").breakdown
    assert fp4.weights == pytest.approx(arch.linear_params * 4.5 / 8 + other * 4)
    int8 = estimate(recipe_for(base, {"kind": "lora", "load_in_8bit": True}), device="cuda").breakdown
    assert int8.weights == arch.linear_params + arch.linear_rows * 4 + other * 4
    assert nf4.adapter_weights == bf16.adapter_weights / 2  # TRL keeps a quantized model's adapter in bf16


def test_strategies_shard_what_they_should(demo_assets):
    est = estimate(recipe_for(demo_assets.base, {"kind": "full"}, launch={"num_processes": 4, "strategy": "ddp"}), device="cuda")
    s = est.strategies
    assert s["single"].num_processes == 1 and s["zero3"].num_processes == 4
    assert s["fsdp"].weights == s["zero3"].weights == s["single"].weights / 4
    assert s["zero2"].weights == s["single"].weights and s["zero2"].gradients == s["single"].gradients / 4
    assert s["zero2"].optimizer == est.params.trainable * 12 / 4  # DeepSpeed: fp32 master and states, sharded
    assert s["ddp"].peak > s["single"].peak  # gradient buckets
    assert s["zero3"].total < s["single"].total and s["zero2"].total < s["single"].total
    assert est.to_dict()["strategies"].keys() == {"single", "ddp", "fsdp", "zero2", "zero3"}


def test_activations_scale_with_tokens_and_checkpointing_saves(demo_assets):
    def acts(batch, seq, ckpt=False):
        r = recipe_for(demo_assets.base, train={"gradient_checkpointing": ckpt})
        return estimate(r, device="cuda", batch=batch, seq=seq)

    a1, a2 = acts(4, 64), acts(8, 64)
    assert a2.activations_without_checkpointing > 1.9 * a1.activations_without_checkpointing
    assert (
        acts(4, 64, True).breakdown.activations
        == a1.activations_with_checkpointing
        < a1.activations_without_checkpointing
    )
    assert a1.breakdown.overhead == 0.75 * GIB and a1.breakdown.total == a1.breakdown.peak + 0.75 * GIB


def test_largest_batch_that_fits_agrees_with_the_estimate(demo_assets):
    recipe = recipe_for(demo_assets.base)
    budget = estimate(recipe, device="cuda", batch=24).breakdown.total
    best = max_batch_that_fits(recipe, budget, device="cuda")
    assert best >= 24 and estimate(recipe, device="cuda", batch=best + 1).breakdown.total > budget


@pytest.mark.slow
def test_probe_measures_within_15_percent_on_cpu(demo_assets):
    import torch

    from tunedeck.engine.model.memory_probe import probe

    if torch.cuda.is_available():
        pytest.skip("the CPU figure; bench/gpu_memory_check.py covers CUDA")
    recipe = recipe_for(demo_assets.base, {"r": 16}, train={"per_device_train_batch_size": 8, "max_length": 96})
    recipe.data.train = str(demo_assets.sft)
    result = probe(recipe, steps=3, search=False)
    run = result["recipe_batch"]
    assert run["fits"] and len(run["losses"]) == 3 and run["seq"] > 0
    assert 0 < run["labelled"] < 8 * run["seq"]  # the prompts are masked: the loss head projects the replies only
    assert 0.85 <= run["ratio"] <= 1.15, run


def test_the_loss_head_counts_only_labelled_tokens(demo_assets):
    recipe = recipe_for(demo_assets.base)
    every, some = (estimate(recipe, device="cpu", batch=8, seq=64, labelled=n).breakdown for n in (None, 100))
    assert some.loss_head < every.loss_head and some.peak < every.peak
    assert estimate(recipe, device="cpu", batch=8, seq=64, labelled=10**6).breakdown.loss_head == every.loss_head  # at most every token


# --------------------------------------------------------------------------- the commands


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tunedeck.tui.cli.main", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


@pytest.fixture(scope="module")
def demo_recipe_file(demo_assets, tmp_path_factory):
    path = tmp_path_factory.mktemp("recipe") / "recipe.yaml"
    recipe_for(demo_assets.base, {"r": 16}, train={"per_device_train_batch_size": 16, "max_length": 96}).save(path)
    return path


def _weights_numel(model_dir) -> int:
    """Parameters in a model folder's safetensors, read from the headers."""
    import math

    from safetensors import safe_open

    total = 0
    for path in model_dir.glob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            total += sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())
    return total


def test_estimate_command_text_and_json(demo_recipe_file, demo_assets):
    text = cli("estimate", str(demo_recipe_file), "--device", "cuda", "--memory-gib", "1")
    assert text.returncode == 0, text.stderr
    total = f"trainable 139,264 of {_weights_numel(demo_assets.base) + 139_264:,}"
    for words in ("q_proj", total, "weights bfloat16", "memory per device (cuda, batch 16 x seq 96)", "activations",
                  "zero3", "largest batch that fits in 1.00 GiB"):  # fmt: skip
        assert words in text.stdout
    # the parameter and memory lines are the engine's, the ones the Adapter screen shows
    shared = estimate_lines(estimate(load_recipe(demo_recipe_file), device="cuda", source=str(demo_recipe_file)))
    assert "\n".join(shared) in text.stdout
    out = cli("estimate", str(demo_recipe_file), "--json", "--device", "cpu", "--set", "adapter.kind=qlora")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["kind"] == "qlora" and data["precision"]["quant"] == "nf4"
    assert set(data["strategies"]) == {"single", "ddp", "fsdp", "zero2", "zero3"}
    assert data["memory"]["peak"] > data["memory"]["weights"] > 0 and data["activations"]["with_checkpointing"] > 0


def test_adapter_targets_command_and_a_wrong_name(demo_recipe_file):
    out = cli("adapter", "targets", str(demo_recipe_file), "--json", "--set", "adapter.target_modules=attention")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [m["name"] for m in data["linear_modules"] if m["selected"]] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert data["presets"]["mlp"] == ["gate_proj", "up_proj", "down_proj"]
    bad = cli("estimate", str(demo_recipe_file), "--set", "adapter.target_modules=[qproj]")
    assert bad.returncode == 2 and "adapter.target_modules" in bad.stderr and "q_proj" in bad.stderr
    assert "Traceback" not in bad.stderr
