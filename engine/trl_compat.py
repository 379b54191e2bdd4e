"""The one place that touches a private name of TRL.

TRL's fused LM head (``trl.trainer.utils.add_fused_lm_head``, used by its SFT, KTO, GRPO and RLOO trainers) projects
only the positions that carry a label when Triton is available, and every position elsewhere, to spare devices
such as Neuron a recompilation per batch shape (trl/trainer/utils.py, ``compact = _use_triton(...)``, TRL 1.16).
On the CPU that costs a full ``hidden @ vocab`` product for every prompt token: with Gemma 3's 262,144-token head
and assistant-only loss, 2.8x the step time (10.2 s -> 3.6 s for 8 rows of 70 tokens, 2 AMD EPYC cores). The CPU
has no recompilation to avoid, so it scores the labelled positions only, as CUDA does; the loss is the same.
"""

from __future__ import annotations


def score_labelled_positions_only_on_cpu() -> bool:
    """Let the fused head skip unlabelled positions on the CPU; False when TRL no longer has the switch."""
    import trl.trainer.utils as trl_utils

    upstream = getattr(trl_utils, "_use_triton", None)
    if upstream is None:
        return False
    if getattr(upstream, "tunedeck_cpu_compact", False):
        return True

    def compact(device) -> bool:
        return upstream(device) or device.type == "cpu"

    compact.tunedeck_cpu_compact = True  # type: ignore[attr-defined]
    trl_utils._use_triton = compact
    return True
