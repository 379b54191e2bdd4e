"""Loading the base model for an adapter kind, and the PEFT config that goes with it."""

from __future__ import annotations

from engine.recipe import Recipe
from engine.templates import resolve_template


class ModelLoadError(RuntimeError):
    """The base model or tokenizer could not be loaded; the message says why and what to do."""


def _dtype(name: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def load_tokenizer(recipe: Recipe):
    from transformers import AutoTokenizer

    source = recipe.model.name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, trust_remote_code=recipe.model.trust_remote_code, revision=recipe.model.revision
        )
    except OSError as e:
        raise ModelLoadError(
            f"model.name_or_path: could not load a tokenizer from {source!r}: it is not a local model folder "
            f"and the Hugging Face Hub could not provide it (offline?). Detail: {e}"
        ) from None
    tokenizer.chat_template = resolve_template(recipe.template.name, tokenizer.chat_template)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(recipe: Recipe):
    """The base model, quantized to 4-bit NF4 for QLoRA; safetensors only."""
    from transformers import AutoModelForCausalLM

    kwargs: dict = dict(
        trust_remote_code=recipe.model.trust_remote_code,
        revision=recipe.model.revision,
        dtype=_dtype(recipe.model.dtype),
        use_safetensors=True,
    )
    if recipe.adapter.kind == "qlora":
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"] if kwargs["dtype"] != torch.float32 else torch.float32,
        )
        kwargs["device_map"] = {"": 0} if torch.cuda.is_available() else "cpu"
    try:
        model = AutoModelForCausalLM.from_pretrained(recipe.model.name_or_path, **kwargs)
    except OSError as e:
        raise ModelLoadError(
            f"model.name_or_path: could not load {recipe.model.name_or_path!r} as safetensors: not a local "
            f"model folder with *.safetensors, and the Hub could not provide it (offline?). Detail: {e}"
        ) from None
    if recipe.adapter.kind == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=recipe.train.gradient_checkpointing
        )
    return model


def peft_config(recipe: Recipe):
    """The LoraConfig for lora/qlora/dora, or None for full fine-tuning."""
    if recipe.adapter.kind == "full":
        return None
    from peft import LoraConfig

    a = recipe.adapter
    return LoraConfig(
        r=a.r,
        lora_alpha=a.lora_alpha,
        lora_dropout=a.lora_dropout,
        target_modules=a.target_modules,
        bias=a.bias,
        use_dora=a.kind == "dora",
        task_type="CAUSAL_LM",
    )
