"""The Adapter screen's only calls into engine.adapters/engine.estimate (the ML stack loads here, in a thread)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from engine.recipe import Recipe


@lru_cache(maxsize=4)
def _meta_model(name_or_path: str, revision: str | None, trust_remote_code: bool) -> Any:
    from engine.models import meta_model
    from engine.recipe import recipe_from_dict

    recipe = recipe_from_dict({"model": {"name_or_path": name_or_path, "revision": revision,
                                         "trust_remote_code": trust_remote_code}, "data": {"train": "x"}})  # fmt: skip
    return meta_model(recipe)


def adapter_figures(recipe: Recipe) -> list[str]:
    """Trainable/total parameters per target group and the memory estimate, as lines to show."""
    from engine.adapters import parameter_math
    from engine.estimate import estimate
    from engine.units import fmt_bytes as format_bytes

    m = recipe.model
    model = _meta_model(m.name_or_path, m.revision, m.trust_remote_code)
    math = parameter_math(recipe, model=model)
    lines = [f"trainable {math.trainable:,} of {math.total:,} ({math.percent:.3f}%)", f"base {math.base_params:,}"]
    for row in math.rows:
        lines.append(f"  {row.name:<10} x{row.count:<3} {row.d}x{row.k}  +{row.trainable:,}")
    lines += [f"note: {n}" for n in math.notes]
    est = estimate(recipe, model=model)
    b = est.breakdown
    lines += [
        "",
        f"memory per device ({est.device}, batch {est.batch} x seq {est.seq}):",
        f"  weights {format_bytes(b.weights)}  adapter {format_bytes(b.adapter_weights)}",
        f"  grads {format_bytes(b.gradients)}  optimizer {format_bytes(b.optimizer)}",
        f"  activations {format_bytes(b.activations)}  head {format_bytes(b.loss_head)}",
        f"  total {format_bytes(b.total)} (peak {format_bytes(b.peak)} + overhead)",
    ]
    lines += [f"note: {n}" for n in est.notes[:3]]
    return lines
