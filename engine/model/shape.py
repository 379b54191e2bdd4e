"""The shape of a causal LM as the memory estimate (tunedeck.engine.model.estimate) needs it, read from its meta-device copy."""

from __future__ import annotations

from dataclasses import dataclass

ATTN_OUT_NAMES = ("o_proj", "out_proj", "dense", "c_proj", "wo")


@dataclass
class Arch:
    """What the estimate needs from a model, read from its meta-device copy."""

    model_type: str
    architecture: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    params: int
    linear_params: int  # quantizable: every linear except the output head
    linear_rows: int  # out_features summed over those linears (8-bit keeps one fp32 scale per row)
    largest_linear: int
    layer_params: int  # the largest decoder layer
    head_params: int  # the output head (0 when tied)
    final_norm_params: int
    slots: dict[str, int]  # linears per layer feeding from: attn_in, attn_out, mlp_in, mlp_out

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def gated(self) -> bool:
        return self.slots.get("mlp_in", 0) >= 2


def input_slot(group, hidden: int) -> str:
    """Where a linear reads its input from: attn_in, attn_out, mlp_in or mlp_out."""
    leaf = group.name.rsplit(".", 1)[-1]
    if group.role == "attention":
        return "attn_out" if leaf in ATTN_OUT_NAMES else "attn_in"
    if group.role == "mlp":
        return "mlp_out" if group.shape[0] == hidden else "mlp_in"
    return "attn_in"


def _per_layer_mean(config, key: str, default: int) -> int:
    """``config.<key>``, or its mean over the layers where the config varies per layer (Gemma 4's sliding and global
    attention layers have different head sizes; transformers then refuses the global attribute)."""
    per_layer = getattr(config, "per_layer_config", None)
    if per_layer:
        values = [getattr(layer, key, None) for layer in per_layer]
        if all(values):
            return round(sum(values) / len(values))
    return getattr(config, key, None) or default


def arch_of(model) -> Arch:
    """Read the shapes the formulas need from a (meta-device) causal LM."""
    from tunedeck.engine.model.adapters import discover_targets
    from tunedeck.engine.model.loading import decoder_layers

    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    h = config.hidden_size
    heads = config.num_attention_heads
    head_dim = _per_layer_mean(config, "head_dim", h // heads)
    groups = discover_targets(model)
    layers = config.num_hidden_layers
    body = [g for g in groups if g.role != "head"]
    head = [g for g in groups if g.role == "head"]
    slots: dict[str, int] = {}
    for g in body:
        slots[input_slot(g, h)] = slots.get(input_slot(g, h), 0) + max(1, round(g.count / layers))
    _, blocks = decoder_layers(model)
    layer_params = max(sum(p.numel() for p in b.parameters()) for b in blocks)
    params = sum(p.numel() for p in model.parameters())
    names = [n for n, _ in model.named_parameters()]
    norm = getattr(getattr(model, model.base_model_prefix, model), "norm", None)
    tied = bool(getattr(config, "tie_word_embeddings", False)) and not any(n.endswith("lm_head.weight") for n in names)
    return Arch(
        model_type=getattr(config, "model_type", "?"),
        architecture=type(model).__name__,
        hidden=h,
        intermediate=getattr(config, "intermediate_size", None) or 4 * h,
        layers=layers,
        heads=heads,
        kv_heads=_per_layer_mean(config, "num_key_value_heads", heads),
        head_dim=head_dim,
        vocab=config.vocab_size,
        tied=tied,
        params=params,
        linear_params=sum(g.params for g in body),
        linear_rows=sum(g.shape[0] * g.count for g in body),
        largest_linear=max((g.shape[0] * g.shape[1] for g in body), default=0),
        layer_params=layer_params,
        head_params=0 if tied else sum(g.params for g in head),
        final_norm_params=sum(p.numel() for p in norm.parameters()) if norm is not None else h,
        slots=slots,
    )
