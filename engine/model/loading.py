"""Loading the base model and tokenizer: dtype and precision, quantization (QLoRA 4-bit, 8-bit), freezing.

Safetensors only; ``trust_remote_code`` as the recipe says (off by default). A model that cannot be
found raises ModelLoadError naming model.name_or_path. ``meta_model`` builds every shape on the
meta device (no weights) for the parameter math and the estimate.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from tunedeck.engine.model.tokenizers import pretrained_tokenizer
from tunedeck.engine.recipe import Recipe, RecipeError
from tunedeck.engine.templates.specs import resolve_template


class ModelLoadError(RuntimeError):
    """The base model or tokenizer could not be loaded; the message says why and what to do."""


def precision(recipe: Recipe, device: str | None = None) -> tuple[str, bool]:
    """(the weights' dtype, whether training runs under bf16 autocast) as the worker sets them up on ``device``
    ("cuda" or "cpu"; default: this machine). The one place "auto" is decided, for training and the estimate.

    ``model.dtype: auto`` and ``train.bf16`` unset mean bf16 where the GPU supports it (Ampere and
    later), float32 elsewhere. An estimate for "cuda" on a machine without a GPU assumes a bf16 one.
    """
    import torch

    cuda = torch.cuda.is_available() if device is None else device == "cuda"
    bf16_ok = cuda and (torch.cuda.is_bf16_supported() if torch.cuda.is_available() else True)
    dtype = recipe.model.dtype if recipe.model.dtype != "auto" else ("bfloat16" if bf16_ok else "float32")
    return dtype, bool(recipe.train.bf16 if recipe.train.bf16 is not None else bf16_ok)


def _torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def model_path(name: str) -> str:
    """What to load for ``model.name_or_path``: a folder or Hub id as it is; a ``.gguf`` file or a packaged GGUF
    (``gemma3-270m``) as the model folder dequantized from it (tunedeck.engine.model.gguf_import, built once)."""
    from tunedeck.engine.model.gguf_import import GGUFImportError, resolve_model

    try:
        return resolve_model(name)
    except GGUFImportError as e:
        raise ModelLoadError(str(e)) from None


def check_model_source(name: str, progress=lambda m: None) -> str:
    """Before a run starts: ModelLoadError, in one line, for a model that is neither a local folder nor in the
    Hugging Face cache while the Hub is off (HF_HUB_OFFLINE), with how to fetch it. Online, the run downloads.
    A GGUF source is checked and dequantized here (once), saying what it does through ``progress``.

    Returns what to load, as ``model_path`` would: ``name`` itself, or a GGUF source's dequantized folder."""
    from pathlib import Path

    from tunedeck.engine.model.gguf_import import GGUFImportError, import_gguf, is_gguf_source

    if is_gguf_source(name):
        try:
            return str(import_gguf(name, progress))
        except GGUFImportError as e:
            raise ModelLoadError(str(e)) from None
    path = Path(name).expanduser()
    if path.is_dir():
        return name
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise ModelLoadError(f"model.name_or_path: {name}: no such folder")
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_CACHE

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return name
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ModelLoadError(
            f"model.name_or_path: {name!r} is not a local folder nor in the Hugging Face cache ({HF_HUB_CACHE}), and "
            f"HF_HUB_OFFLINE is set. Fetch it where there is network (`hf download {name}`) and copy that cache here, "
            "or point model.name_or_path at a local folder"
        )
    return name


def _with_template(tokenizer, template: str) -> str:
    """Set the tokenizer's chat template to ``template`` resolved (tunedeck.engine.templates.specs.resolve_template), and a
    pad token where it has none; returns the template text."""
    text = resolve_template(template, tokenizer.chat_template)
    tokenizer.chat_template = text
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return text


def load_tokenizer(recipe: Recipe):
    """The recipe's tokenizer, at model.revision, with template.name as its chat template."""
    source = model_path(recipe.model.name_or_path)
    try:
        tokenizer = pretrained_tokenizer(source, recipe.model.trust_remote_code, recipe.model.revision)
    except OSError as e:
        raise ModelLoadError(
            f"model.name_or_path: could not load a tokenizer from {source!r}: it is not a local model folder "
            f"and the Hugging Face Hub could not provide it (offline?). Detail: {e}"
        ) from None
    _with_template(tokenizer, recipe.template.name)
    return tokenizer


# --------------------------------------------------------------------------- the model on the meta device


def _config(name_or_path: str, revision: str | None, trust_remote_code: bool):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_path(name_or_path), trust_remote_code=trust_remote_code, revision=revision)
    except OSError as e:
        raise ModelLoadError(
            f"model.name_or_path: could not read a config from {name_or_path!r}: not a local model "
            f"folder, and the Hub could not provide it (offline?). Detail: {e}"
        ) from None


@functools.lru_cache(maxsize=2)
def _meta_model(name_or_path: str, revision: str | None, trust_remote_code: bool):
    import torch
    from transformers import AutoModelForCausalLM

    config = _config(name_or_path, revision, trust_remote_code)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)


def meta_model(recipe: Recipe):
    """The causal LM built from its config on the meta device: every shape, no weights, no memory.

    Cached per model; treat it as read-only.
    """
    m = recipe.model
    return _meta_model(m.name_or_path, m.revision, m.trust_remote_code)


# --------------------------------------------------------------------------- loading and freezing


def quantization_config(recipe: Recipe):
    """BitsAndBytesConfig for qlora (4-bit) or load_in_8bit, else None."""
    a = recipe.adapter
    if a.kind != "qlora" and not a.load_in_8bit:
        return None
    from transformers import BitsAndBytesConfig

    if a.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = a.bnb_4bit_compute_dtype if a.bnb_4bit_compute_dtype != "auto" else precision(recipe)[0]
    # FSDP and ZeRO-3 shard flat tensors of one float dtype: the 4-bit weights are stored in the compute dtype.
    sharded = recipe.launch.strategy in ("fsdp", "zero3")
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=a.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=a.bnb_4bit_use_double_quant,
        bnb_4bit_compute_dtype=_torch_dtype(compute),
        **({"bnb_4bit_quant_storage": _torch_dtype(compute)} if sharded else {}),
    )


def load_model(recipe: Recipe):
    """The base model: 4-bit for qlora, 8-bit with load_in_8bit, partly frozen for full + freeze; safetensors only."""
    from transformers import AutoModelForCausalLM

    kwargs: dict = dict(
        trust_remote_code=recipe.model.trust_remote_code,
        revision=recipe.model.revision,
        dtype=_torch_dtype(precision(recipe)[0]),
        use_safetensors=True,
    )
    quant = quantization_config(recipe)
    if quant is not None:
        import torch

        kwargs["quantization_config"] = quant
        if recipe.launch.strategy not in ("fsdp", "zero3"):  # those place (and shard) the weights themselves
            local_rank = int(os.environ.get("LOCAL_RANK", 0))  # one GPU per process under accelerate launch
            kwargs["device_map"] = {"": local_rank} if torch.cuda.is_available() else "cpu"
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path(recipe.model.name_or_path), **kwargs)
    except OSError as e:
        raise ModelLoadError(
            f"model.name_or_path: could not load {recipe.model.name_or_path!r} as safetensors: not a local "
            f"model folder with *.safetensors, and the Hub could not provide it (offline?). Detail: {e}"
        ) from None
    if quant is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=recipe.train.gradient_checkpointing)
    n = recipe.adapter.freeze_all_but_last_n_layers
    if recipe.adapter.kind == "full" and n:
        freeze_all_but_last_layers(model, n)
        if recipe.train.gradient_checkpointing:
            model.enable_input_require_grads()
    return model


def decoder_layers(model) -> tuple[str, Any]:
    """(path, ModuleList) of the transformer blocks: the ModuleList with num_hidden_layers entries."""
    import torch

    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    n = getattr(config, "num_hidden_layers", None)
    lists = [(p, m) for p, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
    for path, module in lists:
        if len(module) == n:
            return path, module
    if lists:
        return max(lists, key=lambda pm: len(pm[1]))
    raise RecipeError("adapter.freeze_all_but_last_n_layers", "found no list of decoder layers in this model")


def trainable_after_freeze(model, n: int) -> set[str]:
    """Names of the parameters that train with freeze_all_but_last_n_layers = n.

    The last n decoder layers and every parameter registered after them (the final norm and an
    untied lm_head) train. Embeddings stay frozen; with tied embeddings the head is the embedding
    matrix and stays frozen too.
    """
    path, layers = decoder_layers(model)
    if n > len(layers):
        raise RecipeError(
            "adapter.freeze_all_but_last_n_layers", f"is {n} but the model has only {len(layers)} decoder layers"
        )
    first_trained = len(layers) - n
    prefix = f"{path}." if path else ""
    names = [name for name, _ in model.named_parameters()]
    last_layer_params = [i for i, name in enumerate(names) if name.startswith(prefix)]
    after = last_layer_params[-1] if last_layer_params else -1
    keep = set()
    for i, name in enumerate(names):
        if name.startswith(prefix):
            index = int(name[len(prefix) :].split(".", 1)[0])
            if index >= first_trained:
                keep.add(name)
        elif i > after:
            keep.add(name)
    return keep


def freeze_all_but_last_layers(model, n: int) -> dict[str, int]:
    """Set requires_grad as trainable_after_freeze says; returns the trainable/total counts."""
    keep = trainable_after_freeze(model, n)
    for name, param in model.named_parameters():
        param.requires_grad_(name in keep)
    return model_summary(model)


def model_summary(model) -> dict[str, Any]:
    """Trainable and total parameters of a loaded model (4-bit weights counted unpacked, as PEFT does)."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
    else:
        trainable = total = 0
        for p in model.parameters():
            n = p.numel() * (2 if p.__class__.__name__ == "Params4bit" else 1)
            total += n
            trainable += n if p.requires_grad else 0
    return {
        "trainable_params": int(trainable),
        "total_params": int(total),
        "trainable_percent": round(100.0 * trainable / total, 4) if total else 0.0,
    }


def load_chat_tokenizer(model: str, template: str = "model", trust_remote_code: bool = False,
                        revision: str | None = None):  # fmt: skip
    """(tokenizer, template text) for a local model folder or Hub id (at ``revision``, a recipe's model.revision);
    ValueError says what to do. The tokenizer is load_tokenizer's, for the CLI and the screens."""
    try:
        tokenizer = pretrained_tokenizer(model_path(model), trust_remote_code, revision)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"{model}: could not load a tokenizer: not a local model folder, and the Hugging Face Hub could not "
            f"provide it (offline?). Detail: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None
    return tokenizer, _with_template(tokenizer, template)
