"""GPTQ and AWQ exports (4-bit HF safetensors) through GPTQModel, calibrated on the run's data.

GPTQModel is the maintained library for both (AutoGPTQ and AutoAWQ are archived). It is an
optional extra: ``pip install 'tunedeck[gptq]'`` installs gptqmodel 7.6.0 (7.7 needs torch >= 2.14.1)
and optimum (transformers needs it to load GPTQ checkpoints). GPTQ quantizes on CPU and on GPUs;
GPTQModel 7.6's AWQ needs CUDA. ``bench/gptq_awq_gpu_check.py`` checks both on an NVIDIA machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

from tunedeck.engine.export.errors import ExportError

EXTRA = "pip install 'tunedeck[gptq]'  (gptqmodel==7.6.0 and optimum)"


class HFQuantUnavailable(ExportError):
    """The method cannot run here (missing package, no CUDA); the message says what to install or where to run."""


def availability(method: str) -> str | None:
    """None when ``method`` can run here, else the reason it cannot."""
    import importlib.util

    import torch

    missing = [m for m in ("gptqmodel", "optimum") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{method.upper()} needs {' and '.join(missing)}: {EXTRA}"
    if method == "awq" and not torch.cuda.is_available():
        return "AWQ in GPTQModel 7.6 quantizes on CUDA only; run this export on an NVIDIA GPU machine (GPTQ works on CPU)"
    return None


def quantize_hf(method: str, model_dir: Path, out_dir: Path, texts: list[str], bits: int = 4, group_size: int = 128) -> dict:
    """Quantize ``model_dir`` with GPTQ or AWQ, calibrated on ``texts``; write a transformers-loadable folder."""
    reason = availability(method)
    if reason:
        raise HFQuantUnavailable(reason)
    import torch

    # GPTQModel sizes its CPU thread pools from the core count; below 4 cores its model-loader pool
    # asks for more workers than the CPU pool holds and refuses to start.
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, (os.cpu_count() or 2) // 2)))
    from gptqmodel import AWQConfig, GPTQConfig, GPTQModel

    config = (GPTQConfig if method == "gptq" else AWQConfig)(bits=bits, group_size=group_size)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # GPTQModel prints progress to stdout; keep stdout for the CLI's --json output.
    with contextlib.redirect_stdout(sys.stderr):
        model = GPTQModel.load(str(model_dir), config, device=device)
        model.quantize(texts, batch_size=1 if device == "cpu" else 4)
        model.save(str(tmp))
    del model
    from tunedeck.engine.model.tokenizers import load_saved_tokenizer

    load_saved_tokenizer(model_dir).save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return {"method": method, "bits": bits, "group_size": group_size, "path": str(out_dir), "device": device, "calibration_texts": len(texts)}


def load_quantized(path: Path):
    """The quantized folder as transformers loads it (the proof that it loads back)."""
    from transformers import AutoModelForCausalLM

    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(2, (os.cpu_count() or 2) // 2)))
    with contextlib.redirect_stdout(sys.stderr):
        model = AutoModelForCausalLM.from_pretrained(path, device_map="auto")
    model.eval()
    return model
