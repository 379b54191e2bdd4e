"""Training memory per device, from the model config alone (meta device); tunedeck.engine.model.memory_probe measures it.

The estimate follows what the stack actually keeps (transformers 5 Llama-style blocks, PEFT LoRA,
TRL 1.16 SFTTrainer with its chunked LM head, fused AdamW), in bytes:

* weights: params x dtype bytes; 4-bit (NF4/FP4) linears 0.5 byte/param plus constants (fp32 absmax
  per 64 = 0.5 bit/param; double quantization 0.127 bit/param), 8-bit 1 byte/param plus a fp32
  scale per row. With a quantized base, PEFT's prepare_model_for_kbit_training keeps every other
  parameter (embeddings, norms, head) in fp32. The LM head is never quantized.
* adapter weights: LoRA A/B (r(d + k) per target, + d for DoRA) in fp32 (PEFT upcasts them), or
  bf16 on a quantized base (TRL casts them); modules_to_save copies at their dtype.
* gradients: one per trainable parameter at its dtype. Optimizer: AdamW keeps two states per
  trainable parameter at its dtype (HF Trainer keeps no fp32 master copy); DeepSpeed keeps an fp32
  master and fp32 states (12 bytes per trainable parameter) under mixed precision.
* activations, per token and decoder layer (h hidden, i intermediate, q = heads x head_dim,
  kv = kv_heads x head_dim, a heads, r rank; R = residual-stream bytes, O = linear-output bytes,
  S = SDPA bytes, P = bytes a LoRA input is kept in):
  two RMSNorms 2(4h + 4) (fp32 input copy and rsqrt) + SDPA S(2q + 2kv) + 4a (q, k, v, output,
  log-sum-exp) + gated MLP 3iO (gate, SiLU output, up) + the input of each LoRA target, kept once
  when the adapter shares the input's dtype, else one copy per target at P bytes + r x P per target
  (A's output) + for DoRA d(O + P) per target. Full fine-tuning keeps each linear's input instead
  (plus the norm outputs). Under autocast a fp32 weight is kept once more as a bf16 copy per layer.
  With gradient checkpointing only each layer's input (hR per token) stays, plus one layer's worth
  during its recomputation. Beyond the layers: the final norm (4h + 4), the hidden states the head
  reads (hR), and the attention mask (batch x seq^2 bytes).
* loss head: TRL 1.16 never materialises batch x seq x vocab logits, and projects only the tokens that
  carry a label (on the CPU too: engine/trl_compat.py). Its chunked log-prob buffer is min(labelled,
  4096) x 32768 at compute bytes, whatever the vocabulary (seven fp32 tiles of min(labelled, 4096) x
  min(vocab, 32768) more in the torch fallback off CUDA), and its backward holds an fp32 gradient of
  the hidden states (4h per labelled token). Without a labelled count every token is assumed.
* peak = weights + optimizer + max(activations + head + the head's own gradients, gradients):
  gradients are allocated while activations are freed. With checkpointing, a layer's activations
  return only when backward reaches it, after the head's buffers are freed, so the larger of the two
  counts. Runtime overhead (CUDA context, cuBLAS
  workspaces; 0.75 GiB by default) comes on top and is not counted by torch's allocator statistics.
* strategies with N processes: DDP replicates everything and adds gradient buckets (one more copy
  of the gradients); ZeRO-2 shards gradients and optimizer states by N; ZeRO-3 and FSDP shard
  weights, gradients and optimizer states by N and gather one layer at a time (x2 for prefetch).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunedeck.engine.methods import METHODS
from tunedeck.engine.model.shape import Arch, arch_of, input_slot
from tunedeck.engine.recipe import Recipe, allowed
from tunedeck.engine.units import GIB, fmt_bytes

Device = Literal["cuda", "cpu"]  # what the estimate plans for (``tunedeck estimate --device``)

CUDA_OVERHEAD_GIB = 0.75
HEAD_TOKEN_CHUNK = 4096  # trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE
HEAD_VOCAB_CHUNK = 32768  # trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE


# --------------------------------------------------------------------------- precision


@dataclass
class Precision:
    """Bytes per element of each kind of tensor, as the worker would set them up on ``device``."""

    device: str
    weight_dtype: str
    weight: int  # bytes of unquantized weights
    autocast: bool  # bf16 mixed precision (train.bf16)
    quant: str | None  # nf4, fp4, int8 or None
    double_quant: bool
    residual: int  # hidden states between layers (R)
    linear_out: int  # outputs of the linear layers (O)
    sdpa: int  # what SDPA keeps (S)
    lora: int  # LoRA parameters
    matmul: int  # compute dtype of matmuls

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def precision_of(recipe: Recipe, device: str) -> Precision:
    """Bytes per kind of tensor on ``device``, with the dtype and autocast training would use (tunedeck.engine.model.loading.precision)."""
    from tunedeck.engine.model.loading import precision

    name, autocast = precision(recipe, device)
    weight = _BYTES[name]
    a = recipe.adapter
    quant = "int8" if a.load_in_8bit else (a.bnb_4bit_quant_type if a.kind == "qlora" else None)
    compute = a.bnb_4bit_compute_dtype if a.bnb_4bit_compute_dtype != "auto" else name
    if quant:
        residual = 4  # prepare_model_for_kbit_training keeps norms and embeddings in fp32
        # bitsandbytes 4-bit returns the input's dtype; LLM.int8 returns bf16/fp16 under autocast
        linear_out = 2 if quant == "int8" and autocast else residual
        lora = 2  # TRL casts the adapter of a quantized model to bf16
        matmul = 2 if autocast else (_BYTES[compute] if quant != "int8" else 2)
    else:
        residual = weight
        linear_out = 2 if autocast else weight
        lora = 4  # PEFT upcasts bf16/fp16 adapters to fp32
        matmul = 2 if autocast else weight
    return Precision(
        device=device,
        weight_dtype=name,
        weight=weight,
        autocast=bool(autocast),
        quant=quant,
        double_quant=bool(a.bnb_4bit_use_double_quant) if quant in ("nf4", "fp4") else False,
        residual=residual,
        linear_out=linear_out,
        sdpa=2 if autocast else residual,
        lora=lora,
        matmul=matmul,
    )


# --------------------------------------------------------------------------- the breakdown


@dataclass
class Breakdown:
    """Bytes per device for one strategy."""

    strategy: str
    num_processes: int
    weights: float
    adapter_weights: float
    gradients: float
    optimizer: float
    activations: float
    loss_head: float
    transient: float  # dequantized weights, DoRA's weight norm, FSDP's gathered layers
    overhead: float
    peak: float  # what torch's allocator would report as max allocated
    total: float  # peak + overhead: what the device must have

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: (round(v) if isinstance(v, float) else v) for k, v in d.items()} | {
            "total_gib": round(self.total / GIB, 3),
            "peak_gib": round(self.peak / GIB, 3),
        }


@dataclass
class Estimate:
    recipe: str
    device: str
    arch: Arch
    precision: Precision
    kind: str
    method: str
    batch: int
    seq: int
    gradient_checkpointing: bool
    params: Any  # tunedeck.engine.model.adapters.ParamMath
    strategy: str
    num_processes: int
    breakdown: Breakdown
    strategies: dict[str, Breakdown]
    activations_without_checkpointing: float
    activations_with_checkpointing: float
    per_token_layer_bytes: float
    notes: list[str] = field(default_factory=list)
    max_batch: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "device": self.device,
            "model": dataclasses.asdict(self.arch),
            "precision": self.precision.to_dict(),
            "kind": self.kind,
            "method": self.method,
            "batch": self.batch,
            "seq": self.seq,
            "gradient_checkpointing": self.gradient_checkpointing,
            "params": self.params.to_dict(),
            "strategy": self.strategy,
            "num_processes": self.num_processes,
            "memory": self.breakdown.to_dict(),
            "strategies": {k: v.to_dict() for k, v in self.strategies.items()},
            "activations": {
                "without_checkpointing": round(self.activations_without_checkpointing),
                "with_checkpointing": round(self.activations_with_checkpointing),
                "per_token_per_layer": round(self.per_token_layer_bytes, 1),
            },
            "max_batch": self.max_batch,
            "notes": self.notes,
        }


def _lora_groups(recipe: Recipe, model) -> list:
    from tunedeck.engine.model.adapters import discover_targets, resolve_target_modules

    if recipe.adapter.kind == "full":
        return []
    return resolve_target_modules(recipe.adapter.target_modules, discover_targets(model))


def layer_activation_bytes(arch: Arch, prec: Precision, recipe: Recipe, groups: list) -> tuple[float, float]:
    """(bytes per token, fixed bytes) one decoder layer keeps for backward; see the module docstring."""
    a = recipe.adapter
    h, i, q, kv = arch.hidden, arch.intermediate, arch.q_dim, arch.kv_dim
    full = a.kind == "full"
    per_token = 2 * (4 * h + 4)  # RMSNorms: fp32 copy of the input, rsqrt
    per_token += prec.sdpa * (2 * q + 2 * kv) + 4 * arch.heads  # SDPA: q, k, v, output, log-sum-exp
    per_token += (3 if arch.gated else 1) * i * prec.linear_out  # MLP: gate, act, up (or the activation's input)
    x_bytes = {"attn_in": prec.residual, "attn_out": prec.sdpa, "mlp_in": prec.residual, "mlp_out": prec.linear_out}
    width = {"attn_in": h, "attn_out": q, "mlp_in": h, "mlp_out": i}
    kept_anyway = {"attn_out"}  # SDPA keeps its output, which o_proj reads
    fixed = 0.0
    if full:
        per_token += 2 * h * prec.residual  # the norms' weights train: their normalised inputs are kept
        for slot, n in arch.slots.items():
            if x_bytes[slot] != prec.matmul:  # autocast casts the input once per linear
                per_token += n * width[slot] * prec.matmul
            elif slot not in kept_anyway:
                per_token += width[slot] * x_bytes[slot]
    else:
        kept = 2 if prec.autocast else prec.lora
        per_slot: dict[str, list] = {}
        for g in groups:
            per_slot.setdefault(input_slot(g, h), []).append(g)
        for slot, gs in per_slot.items():
            n = sum(max(1, round(g.count / arch.layers)) for g in gs)
            x = x_bytes[slot]
            if prec.autocast:
                copy = not (x == 2 and prec.lora == 2)
            else:
                copy = x != prec.lora
            if a.lora_dropout > 0:  # dropout's output is a copy, and its mask is kept (bool on CUDA)
                mask = 1 if prec.device == "cuda" else (x if prec.quant and prec.autocast else prec.lora)
                per_token += n * width[slot] * (kept + mask)
            elif copy:
                per_token += n * width[slot] * kept
            elif slot not in kept_anyway:
                per_token += width[slot] * x
            per_token += n * a.r * kept  # A's output, which B reads
            if a.kind == "dora":  # the base and LoRA outputs, for the magnitude's gradient; the weight norm
                outs = sum(max(1, round(g.count / arch.layers)) * g.shape[0] for g in gs)
                per_token += outs * (prec.linear_out + kept)
                fixed += 3 * outs * 4
        if prec.autocast and prec.lora == 4:  # fp32 adapters cast to bf16 once per forward, kept for backward
            fixed += sum(g.count * a.r * (g.shape[0] + g.shape[1]) for g in groups) / arch.layers * 2
    if prec.autocast and not prec.quant and prec.weight == 4:
        fixed += arch.linear_params / arch.layers * 2  # bf16 copies of the fp32 weights
    return per_token, fixed


def _head_bytes(arch: Arch, prec: Precision, tokens: int, head_trains: bool) -> float:
    rows = min(tokens, HEAD_TOKEN_CHUNK)
    compute = 2 if prec.autocast else prec.residual  # the autocast dtype, else the hidden states' dtype
    # the tile buffer is allocated HEAD_VOCAB_CHUNK wide whatever the vocabulary; the fp32 gradient of the hidden states
    out = rows * HEAD_VOCAB_CHUNK * compute + tokens * arch.hidden * 4
    if prec.device != "cuda":
        out += 7 * rows * min(arch.vocab, HEAD_VOCAB_CHUNK) * 4  # the torch fallback's fp32 temporaries per tile
    out += min(tokens, HEAD_TOKEN_CHUNK) * arch.hidden * compute  # the token chunk cast to the compute dtype
    if head_trains:
        head = arch.vocab * arch.hidden
        out += head * (4 + prec.weight)  # fp32 gradient accumulator, then its cast
    return out


def _weights_bytes(arch: Arch, prec: Precision) -> float:
    other = arch.params - arch.linear_params
    if prec.quant in ("nf4", "fp4"):
        bits = 4 + (0.127 if prec.double_quant else 0.5)
        return arch.linear_params * bits / 8 + other * 4
    if prec.quant == "int8":
        return arch.linear_params + arch.linear_rows * 4 + other * 4
    return arch.params * prec.weight


def _strategy_breakdown(
    strategy: str, n: int, parts: dict[str, float], largest_layer_bytes: float, overhead: float, deepspeed_mixed: bool
) -> Breakdown:
    w, aw, g, opt, act, head, tr, backward, trainable = (
        parts[k] for k in ("weights", "adapter", "grads", "optim", "acts", "head", "transient", "backward", "trainable")
    )
    if strategy in ("zero2", "zero3") and deepspeed_mixed:
        opt = trainable * 12  # fp32 master + two fp32 states
    if strategy == "ddp":
        extra_grads = g  # DDP's gradient buckets
    else:
        extra_grads = 0.0
    if strategy in ("zero2", "zero3", "fsdp"):
        g, opt = g / n, opt / n
    if strategy in ("zero3", "fsdp"):
        w, aw = w / n, aw / n
        tr += 2 * largest_layer_bytes  # the gathered layer, and the next one prefetched
    peak = w + aw + opt + extra_grads + max(backward + tr, g)
    return Breakdown(strategy, n, w, aw, g, opt, act, head, tr, overhead, peak, peak + overhead)


@dataclass
class _Activations:
    """What the decoder keeps for backward over one step, with and without gradient checkpointing."""

    per_token: float  # one decoder layer, per token
    one_layer: float  # one decoder layer, for the step's tokens
    plain: float
    checkpointed: float
    checkpointing: bool

    @property
    def kept(self) -> float:
        return self.checkpointed if self.checkpointing else self.plain

    def at_backward(self, head: float, first_grads: float) -> float:
        """The start of backward: every kept activation, the loss head's buffers and the first gradients. With
        checkpointing, a layer's activations come back only when backward reaches it, after the head's are gone."""
        if self.checkpointing:
            return self.checkpointed - self.one_layer + max(head + first_grads, self.one_layer)
        return self.plain + head + first_grads


def _activations(arch: Arch, prec: Precision, recipe: Recipe, groups: list, seqs: int, seq: int) -> _Activations:
    """Activations of ``seqs`` sequences of ``seq`` tokens: every trained layer's, and what lies beyond the layers."""
    a, t = recipe.adapter, recipe.train
    tokens = seqs * seq
    per_token, fixed = layer_activation_bytes(arch, prec, recipe, groups)
    trained_layers = arch.layers
    if a.kind == "full" and a.freeze_all_but_last_n_layers and not t.gradient_checkpointing:
        trained_layers = a.freeze_all_but_last_n_layers  # frozen layers below keep nothing for backward
    final_norm = 4 * arch.hidden + 4 + (arch.hidden * prec.residual if a.kind == "full" else 0)
    outside = tokens * (final_norm + arch.hidden * prec.residual) + seqs * seq * seq  # + head input, mask
    plain = trained_layers * (per_token * tokens + fixed) + outside
    checkpointed = arch.layers * tokens * arch.hidden * prec.residual + per_token * tokens + fixed + outside
    return _Activations(per_token, per_token * tokens + fixed, plain, checkpointed, t.gradient_checkpointing)


def _adapter_bytes(prec: Precision, kind: str, pm, groups: list) -> tuple[float, float]:
    """(bytes of the adapter's weights, bytes per trainable parameter)."""
    if kind == "full":
        return 0.0, prec.weight
    # LoRA at its dtype; DoRA magnitudes stay fp32; modules_to_save copies at the base dtype (bf16 when quantized)
    base_dtype = 2 if prec.quant else prec.weight
    magnitudes = sum(g.count * g.shape[0] for g in groups) if kind == "dora" else 0
    adapter_weights = (pm.adapter_params - magnitudes) * prec.lora + magnitudes * 4 + pm.extra_trainable * base_dtype
    return adapter_weights, adapter_weights / max(pm.trainable, 1)


def _first_gradients(arch: Arch, prec: Precision, recipe: Recipe, model) -> float:
    """Gradients full fine-tuning allocates before backward reaches the layers: the head's and the final norm's."""
    from tunedeck.engine.model.loading import trainable_after_freeze

    a = recipe.adapter
    if a.kind != "full":
        return 0.0
    if a.freeze_all_but_last_n_layers:
        keep = trainable_after_freeze(model, a.freeze_all_but_last_n_layers)
        if not any(n.endswith("lm_head.weight") for n in keep):
            return arch.final_norm_params * prec.weight
    return (arch.head_params + arch.final_norm_params) * prec.weight


def _transient_bytes(arch: Arch, prec: Precision, kind: str, groups: list) -> float:
    transient = 0.0
    if prec.quant:
        transient += arch.largest_linear * prec.matmul  # one weight dequantized for its matmul
    if kind == "dora":
        # the weight norm: an identity through A and B, W + BA, all fp32
        transient += max((g.shape[1] ** 2 + 3 * g.shape[0] * g.shape[1] for g in groups), default=0) * 4
    return transient


def _breakdowns(
    recipe: Recipe, arch: Arch, prec: Precision, parts: dict[str, float], overhead: float, n: int | None, chosen: str
) -> tuple[dict[str, Breakdown], Breakdown]:
    """Every strategy's breakdown (multi-process ones on at least 2 processes), and the chosen one's on ``n``."""
    layer_bytes = arch.layer_params * (prec.weight if not prec.quant else 0.6)
    mixed = prec.autocast and prec.weight == 2
    n_default = n or recipe.launch.num_processes
    n_multi = max(n_default, 2)
    strategies = {
        s: _strategy_breakdown(s, 1 if s == "single" else n_multi, parts, layer_bytes, overhead, mixed)
        for s in allowed("launch.strategy")
    }
    breakdown = _strategy_breakdown(
        chosen, 1 if chosen == "single" else max(n_default, 1), parts, layer_bytes, overhead, mixed
    )
    return strategies, breakdown


def _method_notes(recipe: Recipe) -> list[str]:
    name = recipe.method.name
    spec = METHODS[name]
    notes = []
    if spec.paired:
        notes.append(f"{name}: chosen and rejected run together, so activations count 2 x batch sequences")
    if spec.online or spec.reference:
        notes.append(f"{name}: generation and reference passes are not modelled; --probe measures them")
    if name == "ppo":
        notes.append("ppo: the critic is a second adapter like the policy's (with full: on a frozen copy of the model)")
    return notes


def _setup_notes(prec: Precision, strategy: str, device: str, kind: str) -> list[str]:
    notes = []
    if prec.quant in ("nf4", "fp4") and strategy in ("fsdp", "zero3"):
        notes.append("sharding a 4-bit base needs bnb_4bit_quant_storage set to the compute dtype")
    if device == "cpu":
        notes.append(
            "cpu: float32 unless model.dtype says otherwise, no mixed precision; --device cuda plans for a GPU"
        )
    if kind == "dora":
        notes.append("DoRA keeps the base and LoRA outputs of every target for its magnitude gradient")
    return notes


def estimate(
    recipe: Recipe,
    *,
    device: Device | None = None,
    batch: int | None = None,
    seq: int | None = None,
    num_processes: int | None = None,
    strategy: str | None = None,
    overhead_gib: float | None = None,
    model=None,
    source: str = "",
    labelled: int | None = None,
) -> Estimate:
    """Memory per device for this recipe, from the config alone (no weights are loaded).

    ``labelled``: the tokens of a step that carry a label (the loss head projects only those onto the vocabulary;
    default: every token, an upper bound when prompts are masked). ``tunedeck estimate --probe`` passes the count."""
    from tunedeck.engine.model.adapters import parameter_math
    from tunedeck.engine.model.loading import meta_model

    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model if model is not None else meta_model(recipe)
    arch = arch_of(model)
    prec = precision_of(recipe, device)
    a, t = recipe.adapter, recipe.train
    batch = batch or t.per_device_train_batch_size
    seq = seq or t.max_length
    seqs_per_step = batch * (2 if METHODS[recipe.method.name].paired else 1)
    tokens = seqs_per_step * seq
    pm = parameter_math(recipe, model)
    groups = _lora_groups(recipe, model)

    adapter_weights, trainable_bytes = _adapter_bytes(prec, a.kind, pm, groups)
    acts = _activations(arch, prec, recipe, groups, seqs_per_step, seq)
    head_trains = a.kind == "full" and not arch.tied or bool(a.modules_to_save and "lm_head" in a.modules_to_save)
    head = _head_bytes(arch, prec, tokens if labelled is None else min(labelled, tokens), head_trains)
    overhead = (overhead_gib if overhead_gib is not None else (CUDA_OVERHEAD_GIB if device == "cuda" else 0.0)) * GIB
    parts = dict(
        weights=_weights_bytes(arch, prec), adapter=adapter_weights, grads=pm.trainable * trainable_bytes,
        optim=2 * pm.trainable * trainable_bytes, acts=acts.kept, head=head,
        transient=_transient_bytes(arch, prec, a.kind, groups),
        backward=acts.at_backward(head, _first_gradients(arch, prec, recipe, model)), trainable=pm.trainable,
    )  # fmt: skip
    chosen = strategy or recipe.launch.strategy
    strategies, breakdown = _breakdowns(recipe, arch, prec, parts, overhead, num_processes, chosen)
    return Estimate(
        recipe=source,
        device=device,
        arch=arch,
        precision=prec,
        kind=a.kind,
        method=recipe.method.name,
        batch=batch,
        seq=seq,
        gradient_checkpointing=t.gradient_checkpointing,
        params=pm,
        strategy=chosen,
        num_processes=breakdown.num_processes,
        breakdown=breakdown,
        strategies=strategies,
        activations_without_checkpointing=acts.plain,
        activations_with_checkpointing=acts.checkpointed,
        per_token_layer_bytes=acts.per_token,
        notes=_method_notes(recipe) + _setup_notes(prec, chosen, device, a.kind) + pm.notes,
    )


def estimate_lines(est: Estimate) -> list[str]:
    """The parameter math, the memory per device and the notes, as the Adapter screen and ``tunedeck estimate`` show
    them (short lines: the screen's pane is 38 columns wide in an 80-column terminal)."""
    from tunedeck.engine.model.adapters import parameter_lines

    b = est.breakdown
    sharded = "" if b.strategy == "single" else f", {b.strategy} x {b.num_processes}"
    lines = [
        *parameter_lines(est.params),
        "",
        f"memory per device ({est.device}, batch {est.batch} x seq {est.seq}{sharded}):",
        f"  weights {fmt_bytes(b.weights)}  adapter {fmt_bytes(b.adapter_weights)}",
        f"  grads {fmt_bytes(b.gradients)}  optimizer {fmt_bytes(b.optimizer)}",
        f"  activations {fmt_bytes(b.activations)}  head {fmt_bytes(b.loss_head)}",
        f"  total {fmt_bytes(b.total)} (peak {fmt_bytes(b.peak)} + overhead)",
    ]
    return lines + [f"note: {n}" for n in est.notes if n not in est.params.notes]


def max_batch_that_fits(recipe: Recipe, budget_bytes: float, cap: int = 4096, **kwargs) -> int:
    """The largest per-device batch whose estimated total fits in ``budget_bytes`` (0 when none does)."""

    def fits(b: int) -> bool:
        return estimate(recipe, batch=b, **kwargs).breakdown.total <= budget_bytes

    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= cap and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, cap + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def device_budget(device: str) -> tuple[float, str]:
    """(bytes, what they are): the GPU's total memory, or the host's available RAM."""
    if device == "cuda":
        import torch

        free, total = torch.cuda.mem_get_info()
        return float(total), f"{torch.cuda.get_device_name()} total memory"
    return float(_meminfo("MemAvailable")), "available host RAM"


def _meminfo(key: str) -> int:
    text = Path("/proc/meminfo").read_text()
    return int(re.search(rf"{key}:\s+(\d+)", text).group(1)) * 1024
