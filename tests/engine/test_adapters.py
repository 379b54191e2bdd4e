"""Adapter kinds in the recipe, target discovery from the model, and the LoRA parameter count against PEFT's own count."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tunedeck.engine.model.adapters import (
    adapter_callbacks,
    discover_targets,
    lora_counts,
    parameter_math,
    peft_config,
    resolve_target_modules,
    save_adapter,
)
from tunedeck.engine.model.loading import meta_model, model_summary, quantization_config, trainable_after_freeze
from tunedeck.engine.recipe import RecipeError, recipe_from_dict


def recipe_for(base, **adapter):
    return recipe_from_dict({"model": {"name_or_path": str(base)}, "data": {"train": "d.jsonl"}, "adapter": adapter})


@pytest.fixture(scope="module")
def base(demo_assets):
    return demo_assets.base


def load_base(base):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(base)


# --------------------------------------------------------------------------- a worked LoRA example (d = k = 4096, r = 8)


def test_lora_example_d_k_4096_r_8():
    frozen, trainable = lora_counts(4096, 4096, 8)
    assert (frozen, trainable) == (16_777_216, 65_536)
    assert f"{100 * trainable / frozen:.2f}%" == "0.39%"
    assert lora_counts(4096, 4096, 8, dora=True) == (16_777_216, 65_536 + 4096)  # DoRA: + d magnitudes


# --------------------------------------------------------------------------- discovery


def test_discovery_lists_every_linear_with_count_and_shape(base):
    groups = {g.name: g for g in discover_targets(meta_model(recipe_for(base)))}
    assert list(groups) == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]
    assert groups["q_proj"].count == 2 and groups["q_proj"].shape == (256, 256)
    assert groups["gate_proj"].shape == (512, 256) and groups["down_proj"].shape == (256, 512)  # (out, in)
    assert groups["q_proj"].role == "attention" and groups["up_proj"].role == "mlp" and groups["lm_head"].role == "head"


@pytest.mark.parametrize(
    "setting, names",
    [
        ("all-linear", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
        ("attention", ["q_proj", "k_proj", "v_proj", "o_proj"]),
        ("mlp", ["gate_proj", "up_proj", "down_proj"]),
        (["q_proj", "v_proj"], ["q_proj", "v_proj"]),
        (r".*\.(q|v)_proj", ["q_proj", "v_proj"]),
    ],
)
def test_presets_and_lists_resolve_to_model_names(base, setting, names):
    groups = discover_targets(meta_model(recipe_for(base)))
    assert [g.name for g in resolve_target_modules(setting, groups)] == names


def test_a_wrong_target_name_lists_the_valid_ones(base):
    with pytest.raises(RecipeError) as exc:
        peft_config(recipe_for(base, target_modules=["q_proj", "query_key_value"]))
    message = str(exc.value)
    assert "adapter.target_modules" in message and "'query_key_value'" in message
    assert "q_proj" in message and "down_proj" in message and "all-linear" in message


def test_a_wrong_modules_to_save_name_suggests_embeddings_and_head(base):
    with pytest.raises(RecipeError, match=r"adapter\.modules_to_save.*embed_tokens, lm_head"):
        peft_config(recipe_for(base, modules_to_save=["wte"]))


# --------------------------------------------------------------------------- the math equals PEFT's count


@pytest.mark.parametrize(
    "adapter",
    [
        {"kind": "lora", "r": 16},
        {"kind": "dora", "r": 8},
        {"kind": "lora", "r": 4, "target_modules": "attention", "use_rslora": True},
        {"kind": "lora", "r": 8, "target_modules": "mlp", "modules_to_save": ["lm_head", "embed_tokens"]},
    ],
    ids=["lora", "dora", "rslora-attention", "mlp-modules_to_save"],
)
def test_parameter_math_equals_peft(base, adapter):
    from peft import get_peft_model

    recipe = recipe_for(base, **adapter)
    math = parameter_math(recipe)  # from the config alone (meta device)
    model = get_peft_model(load_base(base), peft_config(recipe))
    assert (math.trainable, math.total) == model.get_nb_trainable_parameters()
    for row in math.rows:  # per target: d*k frozen against r(d + k) trainable (+ d for DoRA)
        assert row.frozen == row.count * row.d * row.k
        assert row.trainable == row.count * (
            recipe.adapter.r * (row.d + row.k) + (row.d if adapter["kind"] == "dora" else 0)
        )


def test_full_and_freeze_all_but_last_layers(base):
    full = parameter_math(recipe_for(base, kind="full"))
    assert full.trainable == full.total == full.base_params
    recipe = recipe_for(base, kind="full", freeze_all_but_last_n_layers=1)
    keep = trainable_after_freeze(meta_model(recipe), 1)
    assert keep and all(n.startswith("model.layers.1.") or n in ("model.norm.weight", "lm_head.weight") for n in keep)
    from tunedeck.engine.model.loading import freeze_all_but_last_layers

    model = load_base(base)
    summary = freeze_all_but_last_layers(model, 1)
    assert summary["trainable_params"] == parameter_math(recipe).trainable < full.trainable
    assert not model.model.embed_tokens.weight.requires_grad and model.lm_head.weight.requires_grad
    with pytest.raises(RecipeError, match="only 2 decoder layers"):
        trainable_after_freeze(meta_model(recipe), 3)


def test_model_summary_counts_like_peft(base):
    from peft import get_peft_model

    model = get_peft_model(load_base(base), peft_config(recipe_for(base, r=8)))
    summary = model_summary(model)
    assert (summary["trainable_params"], summary["total_params"]) == model.get_nb_trainable_parameters()


# --------------------------------------------------------------------------- recipe fields and their PEFT config


def test_peft_config_carries_the_recipe(base):
    cfg = peft_config(
        recipe_for(
            base, kind="dora", r=4, use_rslora=True, init_lora_weights="pissa_niter_4", modules_to_save="lm_head"
        )
    )
    assert (cfg.r, cfg.use_dora, cfg.use_rslora, cfg.init_lora_weights) == (4, True, True, "pissa_niter_4")
    assert cfg.modules_to_save == ["lm_head"] and cfg.target_modules == "all-linear"
    assert sorted(peft_config(recipe_for(base, target_modules="mlp")).target_modules) == [
        "down_proj",
        "gate_proj",
        "up_proj",
    ]
    assert peft_config(recipe_for(base, kind="full")) is None


def test_quantization_configs(base):
    import torch

    q = quantization_config(recipe_for(base, kind="qlora", bnb_4bit_quant_type="fp4", bnb_4bit_use_double_quant=False))
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "fp4" and not q.bnb_4bit_use_double_quant
    q = quantization_config(recipe_for(base, kind="qlora", bnb_4bit_compute_dtype="bfloat16"))
    assert q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant and q.bnb_4bit_compute_dtype == torch.bfloat16
    assert quantization_config(recipe_for(base, kind="lora", load_in_8bit=True)).load_in_8bit
    assert quantization_config(recipe_for(base, kind="lora")) is None


def test_loftq_off_cuda_is_a_clear_error(base):
    import torch

    if torch.cuda.is_available():
        pytest.skip("LoftQ runs on CUDA")
    with pytest.raises(RecipeError, match=r"adapter\.init_lora_weights: loftq needs a CUDA GPU"):
        peft_config(recipe_for(base, init_lora_weights="loftq"))


@pytest.mark.parametrize(
    "adapter, field, words",
    [
        ({"kind": "qlora", "init_lora_weights": "loftq"}, "adapter.init_lora_weights", "use kind lora"),
        ({"init_lora_weights": "eva2"}, "adapter.init_lora_weights", "pissa"),
        ({"kind": "full", "load_in_8bit": True}, "adapter.load_in_8bit", "cannot be trained"),
        ({"kind": "qlora", "load_in_8bit": True}, "adapter.load_in_8bit", "4-bit"),
        ({"kind": "lora", "freeze_all_but_last_n_layers": 2}, "adapter.freeze_all_but_last_n_layers", "kind: full"),
        ({"kind": "full", "freeze_all_but_last_n_layers": 0}, "adapter.freeze_all_but_last_n_layers", "at least 1"),
        ({"kind": "full", "use_rslora": True}, "adapter.use_rslora", "LoRA setting"),
        ({"lora_dropout": 1.5}, "adapter.lora_dropout", "[0, 1)"),
        ({"target_modules": []}, "adapter.target_modules", "empty"),
        ({"bnb_4bit_quant_type": "nf3"}, "adapter.bnb_4bit_quant_type", "fp4"),
    ],
)
def test_recipe_errors_name_the_field(adapter, field, words):
    with pytest.raises(RecipeError) as exc:
        recipe_from_dict({"model": {"name_or_path": "m"}, "data": {"train": "d"}, "adapter": adapter})
    assert field in str(exc.value) and words in str(exc.value)


def test_adapter_settings_round_trip(tmp_path):
    from tunedeck.engine.recipe import load_recipe

    r = recipe_from_dict(
        {
            "model": {"name_or_path": "m"},
            "data": {"train": "d"},
            "adapter": {
                "kind": "qlora",
                "bnb_4bit_quant_type": "fp4",
                "modules_to_save": "lm_head",
                "use_rslora": True,
            },
        }
    )
    r.save(tmp_path / "r.yaml")
    again = load_recipe(tmp_path / "r.yaml", ["adapter.init_lora_weights=gaussian", "adapter.target_modules=q_proj"])
    a = again.adapter
    assert (a.kind, a.bnb_4bit_quant_type, a.modules_to_save, a.use_rslora) == ("qlora", "fp4", ["lm_head"], True)
    assert a.init_lora_weights == "gaussian" and a.target_modules == ["q_proj"]


# --------------------------------------------------------------------------- PiSSA: saved for the original base


def test_pissa_adapter_is_converted_for_the_original_base(base, tmp_path):
    import torch
    from peft import PeftModel, get_peft_model
    from transformers import TrainerState

    recipe = recipe_for(base, r=4, init_lora_weights="pissa")
    run = SimpleNamespace(path=tmp_path)
    model = get_peft_model(load_base(base), peft_config(recipe))
    (callback,) = adapter_callbacks(recipe, run)
    callback.on_train_begin(None, TrainerState(global_step=0), None, model=model)
    torch.manual_seed(0)
    with torch.no_grad():  # stands in for training: move every adapter weight
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.add_(0.05 * torch.randn_like(p))
    ids = torch.tensor([[5, 17, 42, 9, 100, 7]])
    want = model(input_ids=ids).logits
    save_adapter(model, tmp_path / "adapter", run)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["init_lora_weights"] is True  # a plain LoRA of rank 2r
    got = PeftModel.from_pretrained(load_base(base), tmp_path / "adapter")(input_ids=ids).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
