"""GGUF quantization with llama.cpp's own quantizer (``llama_model_quantize`` through llama-cpp-python)."""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass, field
from pathlib import Path

from tunedeck.engine.export.errors import ExportError

# K- and IQ-quants need rows that are multiples of 256 (IQ4_NL and the legacy types 32). Narrower
# tensors fall back to another type; llama.cpp logs one line per tensor:
#   warning: blk.0.attn_k.weight   - ncols    320 not divisible by 256 (required for type    q4_K) -> falling back to    q5_0
_FALLBACK = re.compile(r"warning:\s+(\S+)\s+-\s+ncols\s+(\d+) not divisible by\s+(\d+) \(required for type\s+(\w+)\).*?-> falling back to\s+(\w+)")
# Older llama.cpp builds: "... blk.0.attn_k.weight - [ 320, 320, ...] ... using fallback quantization q8_0"
_OLD_FALLBACK = re.compile(r"\]\s+([\w.]+)\s+-\s+\[.*?using fallback quantization (\w+)")
_IMATRIX_NEEDED = re.compile(r"offending tensor: (\S+)")


class QuantizeError(ExportError):
    """llama.cpp refused to quantize; carries its own log lines."""


@dataclass
class QuantizeResult:
    fallback_tensors: list[dict[str, str]] = field(default_factory=list)
    imatrix_entries: int = 0  # importance-matrix rows handed to the quantizer (0: none)


def ftype(qtype: str) -> int:
    """llama.cpp's file-type enum for a GGUF type name (F32, Q4_K_M, IQ2_XXS, ...)."""
    import llama_cpp

    name = "LLAMA_FTYPE_ALL_F32" if qtype == "F32" else f"LLAMA_FTYPE_MOSTLY_{qtype}"
    value = getattr(llama_cpp, name, None)
    if value is None:
        raise QuantizeError(f"this llama.cpp build has no quantization type {qtype}")
    return value


def parse_fallbacks(log: str) -> list[dict[str, str]]:
    """The tensors llama.cpp quantized to another type than the one asked for, from its log."""
    out = []
    for line in log.splitlines():
        if m := _FALLBACK.search(line):
            name, ncols, block, wanted, got = m.groups()
            out.append({"tensor": name, "type": got.upper(), "wanted": wanted.upper(), "reason": f"{ncols} columns, not a multiple of {block}"})
        elif m := _OLD_FALLBACK.search(line):
            out.append({"tensor": m.group(1), "type": m.group(2).upper()})
    return out


def _imatrix_array(imatrix: dict):
    """A NULL-terminated ``llama_model_imatrix_data`` array; the caller keeps the result alive."""
    import llama_cpp
    import numpy as np

    keep = []
    arr = (llama_cpp.llama_model_imatrix_data * (len(imatrix) + 1))()
    for i, (name, values) in enumerate(imatrix.items()):
        data = np.ascontiguousarray(values, dtype=np.float32)
        encoded = name.encode()
        keep += [data, encoded]
        arr[i].name = encoded
        arr[i].data = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        arr[i].size = data.size
    arr[len(imatrix)].name = None
    return arr, keep


def quantize_gguf(src: Path, dst: Path, qtype: str, threads: int = 0, imatrix: dict | None = None) -> QuantizeResult:
    """Quantize ``src`` (an F32/F16 GGUF) to ``dst``; report the tensors that fell back to another type.

    ``imatrix`` maps GGUF tensor names to per-column importance (mean squared activation), as
    llama.cpp's imatrix tool computes it; the IQ1/IQ2/IQ3_XXS and Q2_K_S types need one.
    """
    import llama_cpp

    from tunedeck.engine.export.llamalog import captured_llama_log

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype(qtype)
    params.nthread = threads
    keep = None
    if imatrix:
        arr, keep = _imatrix_array(imatrix)
        params.imatrix = ctypes.cast(arr, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    with captured_llama_log() as lines:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    del keep
    text = "".join(lines)
    if rc != 0:
        Path(dst).unlink(missing_ok=True)
        if m := _IMATRIX_NEEDED.search(text):
            raise QuantizeError(
                f"llama.cpp needs an importance matrix to quantize {src.name} to {qtype} (tensor {m.group(1)}); "
                "set export.imatrix to auto or always"
            )
        tail = "".join(lines[-10:]).strip()
        raise QuantizeError(f"llama.cpp could not quantize {src.name} to {qtype} (code {rc}): {tail}")
    return QuantizeResult(parse_fallbacks(text), len(imatrix or {}))
