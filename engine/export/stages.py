"""The export pipeline's stages (tunedeck.engine.export.pipeline): which run for a set of quant types, in order, and
their names as a user reads them. Stage ids: merge, samples, adapter, reference, convert, parity,
reference_accuracy, imatrix, quantize_<TYPE>, verify_<TYPE>, gptq, awq (the keys of report["seconds"]).
"""

from __future__ import annotations

STAGE_LABELS = {
    "merge": "merge adapter into base",
    "samples": "held-out and eval samples",
    "adapter": "copy the adapter",
    "reference": "HF reference model",
    "convert": "convert to GGUF (F32)",
    "parity": "template/EOS/stop parity",
    "reference_accuracy": "HF task accuracy",
    "imatrix": "importance matrix",
}


def stage_label(stage: str) -> str:
    """A pipeline stage id (see this module's docstring) as the user reads it."""
    kind, _, qtype = stage.partition("_")
    if kind == "quantize" and qtype:
        return f"quantize {qtype}"
    if kind == "verify" and qtype:
        return f"check {qtype} against HF"
    return STAGE_LABELS.get(stage, stage.upper() if stage in ("gptq", "awq") else stage)


def planned_stages(quants: list[str], checks: str = "quick") -> list[str]:
    """The stages every export of ``quants`` runs, in order (optional ones are added as they start)."""
    if checks == "none":
        return ["merge", "convert", *(f"quantize_{q}" for q in quants if q != "F32")]
    per_type = [s for q in quants for s in ((f"verify_{q}",) if q == "F32" else (f"quantize_{q}", f"verify_{q}"))]
    return ["merge", "reference", "convert", "parity", *per_type]
