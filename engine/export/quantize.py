"""GGUF quantization with llama.cpp's own quantizer (``llama_model_quantize`` through llama-cpp-python)."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

# K-quants need rows that are multiples of 256; llama.cpp then logs, per tensor,
# "... - using fallback quantization q8_0" with the tensor's name on the same log record.
_FALLBACK = re.compile(r"using fallback quantization (\w+)")
_TENSOR = re.compile(r"\]\s+([\w.]+)\s+-\s+\[")


def _ftype(qtype: str) -> int:
    import llama_cpp

    name = "LLAMA_FTYPE_ALL_F32" if qtype == "F32" else f"LLAMA_FTYPE_MOSTLY_{qtype}"
    value = getattr(llama_cpp, name, None)
    if value is None:
        raise ValueError(f"this llama.cpp build has no quantization type {qtype}")
    return value


class QuantizeError(RuntimeError):
    """llama.cpp refused to quantize; carries its own log lines."""


def quantize_gguf(src: Path, dst: Path, qtype: str, threads: int = 0) -> list[dict[str, str]]:
    """Quantize ``src`` to ``dst``; return the tensors that fell back to another type."""
    import llama_cpp
    from llama_cpp import _logger

    lines: list[str] = []

    @llama_cpp.llama_log_callback
    def capture(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        lines.append(text.decode("utf-8", "replace"))

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _ftype(qtype)
    params.nthread = threads
    llama_cpp.llama_log_set(capture, ctypes.c_void_p(0))
    try:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    if rc != 0:
        tail = "".join(lines[-10:]).strip()
        raise QuantizeError(f"llama.cpp could not quantize {src.name} to {qtype} (code {rc}): {tail}")
    text = "".join(lines)
    fallbacks, current = [], None
    for line in text.splitlines():
        if m := _TENSOR.search(line):
            current = m.group(1)
        if (m := _FALLBACK.search(line)) and current:
            fallbacks.append({"tensor": current, "type": m.group(1).upper()})
    return fallbacks
