"""An importance matrix for llama.cpp's quantizer, computed with the HF model on the run's own data.

llama.cpp's imatrix tool records, for every matrix multiplication, the mean of the squared input
activations per input column. The same numbers come from forward hooks on the HF model's linear
layers; the converter's tensor-name map turns ``model.layers.0.mlp.down_proj`` into
``blk.0.ffn_down.weight``. Entries whose length does not match the GGUF tensor's row length are
dropped (llama.cpp would refuse them), and the count is reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def collect_activations(model, batches: list[list[int]]) -> dict[str, tuple[np.ndarray, int]]:
    """{module name: (sum of squared inputs per column, number of tokens)} over ``batches``."""
    import torch

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    hooks = []

    def hook(name: str):
        def fn(module, args) -> None:
            x = args[0].detach().float().reshape(-1, args[0].shape[-1])
            sums[name] = sums.get(name, 0) + (x * x).sum(0).cpu()
            counts[name] = counts.get(name, 0) + x.shape[0]

        return fn

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            hooks.append(module.register_forward_pre_hook(hook(name)))
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for ids in batches:
                if ids:
                    model(torch.tensor([ids], device=device))
    finally:
        for h in hooks:
            h.remove()
    return {name: (sums[name].numpy().astype(np.float64), counts[name]) for name in sums}


def gguf_tensor_rows(gguf_path: Path) -> tuple[str, int, dict[str, int]]:
    """(architecture, block count, {tensor name: row length ne[0]}) of a GGUF file (its header alone)."""
    from tunedeck.engine.export.gguf import read_header

    meta, tensors = read_header(gguf_path)
    arch = meta["general.architecture"]
    return arch, int(meta[f"{arch}.block_count"]), {name: int(dims[0]) for name, dims, _ in tensors if len(dims) >= 2}


def to_gguf_names(activations: dict[str, tuple[np.ndarray, int]], gguf_path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Map HF module names to GGUF tensor names and average; returns (imatrix, mapping report)."""
    import gguf

    arch, blocks, rows = gguf_tensor_rows(gguf_path)
    arch_enum = next((a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch), None)
    if arch_enum is None:
        return {}, {"mapped": 0, "unmapped": sorted(activations), "reason": f"unknown architecture {arch}"}
    names = gguf.get_tensor_name_map(arch_enum, blocks)
    imatrix: dict[str, np.ndarray] = {}
    unmapped, mismatched = [], []
    for hf_name, (total, count) in activations.items():
        gguf_name = names.get_name(hf_name + ".weight", try_suffixes=(".weight",))
        if gguf_name is None or gguf_name not in rows:
            unmapped.append(hf_name)
            continue
        if rows[gguf_name] != total.shape[0]:
            mismatched.append(gguf_name)
            continue
        imatrix[gguf_name] = (total / max(count, 1)).astype(np.float32)
    return imatrix, {"mapped": len(imatrix), "unmapped": unmapped, "size_mismatch": mismatched}


def compute_imatrix(model, batches: list[list[int]], gguf_path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Importance matrix for the tensors of ``gguf_path`` from the model's activations on ``batches``."""
    activations = collect_activations(model, batches)
    imatrix, report = to_gguf_names(activations, gguf_path)
    report.update(texts=len(batches), tokens=sum(len(b) for b in batches))
    return imatrix, report

