"""Adapters: target-module discovery, the PEFT config for an adapter kind, parameter math, adapter saving.

LoRA (Hu et al., 2021): a frozen weight W0 of shape d x k (d = out_features,
k = in_features) is adapted by B (d x r) times A (r x k), so each target adds r(d + k) trainable
parameters next to d*k frozen ones. DoRA adds a magnitude vector of d per target. Everything
here that only needs shapes runs on the meta device: no weights are loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tunedeck.engine.model.loading import meta_model, quantization_config, trainable_after_freeze
from tunedeck.engine.recipe import TARGET_PRESETS, Recipe, RecipeError

# --------------------------------------------------------------------------- target discovery


ATTENTION_PARENTS = ("attn", "attention")
MLP_PARENTS = ("mlp", "feed_forward", "ffn", "experts")
ATTENTION_NAMES = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "qkv_proj",
    "query",
    "key",
    "value",
    "out_proj",
    "c_attn",
    "wqkv",
)
MLP_NAMES = ("gate_proj", "up_proj", "down_proj", "gate_up_proj", "fc1", "fc2", "c_fc", "w1", "w2", "w3")


@dataclass
class TargetGroup:
    """All linear modules that share a name: what ``target_modules`` can select."""

    name: str  # the name to put in target_modules (a leaf name, or parent.leaf where roles differ)
    role: str  # attention, mlp, head or other
    count: int
    shape: tuple[int, int]  # (out, in) = (d, k) of the first module
    params: int  # weight parameters over all modules of the group
    shapes: dict[tuple[int, int], int] = field(default_factory=dict)  # shape -> count, when they differ
    paths: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "count": self.count,
            "shape": list(self.shape),
            "params": self.params,
            "shapes": {f"{d}x{k}": n for (d, k), n in self.shapes.items()},
        }


def _linear_modules(model) -> list[tuple[str, tuple[int, int]]]:
    """(path, (out, in)) of every linear layer: nn.Linear and GPT-2 style Conv1D."""
    import torch
    from transformers.pytorch_utils import Conv1D

    found = []
    for path, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            found.append((path, (module.out_features, module.in_features)))
        elif isinstance(module, Conv1D):
            found.append((path, (module.nf, module.weight.shape[0])))
    return found


def _output_embedding_path(model) -> str | None:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        return None
    return next((p for p, m in model.named_modules() if m is head), None)


def _role(path: str, head_path: str | None) -> str:
    if path == head_path:
        return "head"
    parts = path.lower().split(".")
    parents, leaf = parts[:-1], parts[-1]
    if any(any(a in p for a in ATTENTION_PARENTS) for p in parents):
        return "attention"
    if any(p in MLP_PARENTS for p in parents):
        return "mlp"
    if leaf in ATTENTION_NAMES:
        return "attention"
    if leaf in MLP_NAMES:
        return "mlp"
    return "other"


def discover_targets(model) -> list[TargetGroup]:
    """Every linear module name of ``model`` with its count and (out, in) shape, in model order."""
    head_path = _output_embedding_path(model)
    modules = [(p, s, _role(p, head_path)) for p, s in _linear_modules(model)]
    roles_by_leaf: dict[str, set[str]] = {}
    for path, _, role in modules:
        roles_by_leaf.setdefault(path.rsplit(".", 1)[-1], set()).add(role)
    groups: dict[str, TargetGroup] = {}
    for path, shape, role in modules:
        leaf = path.rsplit(".", 1)[-1]
        key = leaf if len(roles_by_leaf[leaf]) == 1 else ".".join(path.split(".")[-2:])
        g = groups.get(key)
        if g is None:
            g = groups[key] = TargetGroup(key, role, 0, shape, 0)
        g.count += 1
        g.params += shape[0] * shape[1]
        g.shapes[shape] = g.shapes.get(shape, 0) + 1
        g.paths.append(path)
    return list(groups.values())


def _suffix_match(path: str, name: str) -> bool:
    return path == name or path.endswith("." + name)


def resolve_target_modules(target_modules: list[str] | str, groups: list[TargetGroup]) -> list[TargetGroup]:
    """The groups a ``target_modules`` setting selects; a wrong name raises RecipeError listing the valid ones."""
    valid = [g.name for g in groups if g.role != "head"]
    if target_modules == "all-linear":  # as PEFT: every linear layer except the output head
        return [g for g in groups if g.role != "head"]
    if target_modules in ("attention", "mlp"):
        chosen = [g for g in groups if g.role == target_modules]
        if not chosen:
            raise RecipeError(
                "adapter.target_modules",
                f"this model has no {target_modules} linear layers that tunedeck recognises; "
                f"list them by name from: {', '.join(valid)}",
            )
        return chosen
    if isinstance(target_modules, str):  # a regex, matched against full module paths as PEFT does
        try:
            pattern = re.compile(target_modules)
        except re.error as e:
            raise RecipeError("adapter.target_modules", f"not a valid regex {target_modules!r}: {e}") from None
        chosen = [g for g in groups if any(pattern.fullmatch(p) for p in g.paths)]
        if not chosen:
            raise RecipeError(
                "adapter.target_modules",
                f"the regex {target_modules!r} matches no linear module; valid names: {', '.join(valid)}",
            )
        return chosen
    chosen, unknown = [], []
    for name in target_modules:
        hit = [g for g in groups if any(_suffix_match(p, name) for p in g.paths)]
        if not hit:
            unknown.append(name)
        chosen += [g for g in hit if g not in chosen]
    if unknown:
        raise RecipeError(
            "adapter.target_modules",
            f"no linear module named {', '.join(map(repr, unknown))} in this model; valid names: {', '.join(valid)} "
            f"(or a preset: {', '.join(TARGET_PRESETS)})",
        )
    return chosen


def _peft_targets(target_modules: list[str] | str, groups: list[TargetGroup]) -> list[str] | str:
    """What LoraConfig.target_modules gets: PEFT's own all-linear, a regex as is, or explicit names."""
    if target_modules == "all-linear" or (isinstance(target_modules, str) and target_modules not in TARGET_PRESETS):
        return target_modules
    return [g.name for g in resolve_target_modules(target_modules, groups)]


def resolve_modules_to_save(names: list[str] | None, model) -> list[str] | None:
    """Check each name matches a module of the model; the error lists the embedding and head names."""
    if not names:
        return None
    paths = [p for p, _ in model.named_modules() if p]
    unknown = [n for n in names if not any(_suffix_match(p, n) for p in paths)]
    if unknown:
        suggestions = []
        for getter in ("get_input_embeddings", "get_output_embeddings"):
            module = getattr(model, getter)() if hasattr(model, getter) else None
            path = next((p for p, m in model.named_modules() if m is module), None) if module is not None else None
            if path:
                suggestions.append(path.rsplit(".", 1)[-1])
        raise RecipeError(
            "adapter.modules_to_save",
            f"no module named {', '.join(map(repr, unknown))} in this model; the usual ones here: {', '.join(suggestions)}",
        )
    return list(names)


# --------------------------------------------------------------------------- the PEFT config


def peft_config(recipe: Recipe, model=None):
    """The LoraConfig for lora/qlora/dora (rsLoRA, PiSSA, LoftQ, modules_to_save), or None for full fine-tuning.

    Presets and names are checked against the model (the meta-device copy when ``model`` is None).
    """
    if recipe.adapter.kind == "full":
        return None
    from peft import LoraConfig

    a = recipe.adapter
    model = model if model is not None else meta_model(recipe)
    groups = discover_targets(model)
    targets = _peft_targets(a.target_modules, groups)
    resolve_target_modules(a.target_modules, groups)  # raises, naming the valid modules, on a wrong name
    kwargs: dict[str, Any] = {}
    if a.init_lora_weights == "loftq":
        import torch
        from peft import LoftQConfig

        if not torch.cuda.is_available():
            raise RecipeError(
                "adapter.init_lora_weights",
                "loftq needs a CUDA GPU (PEFT runs its quantization on cuda); on this machine use true, gaussian, "
                "pissa or olora",
            )
        kwargs["loftq_config"] = LoftQConfig(loftq_bits=a.loftq_bits, loftq_iter=a.loftq_iter)
    if isinstance(a.init_lora_weights, str) and a.init_lora_weights.startswith("pissa") and quantization_config(recipe):
        raise RecipeError(
            "adapter.init_lora_weights",
            "PiSSA needs the base in full precision (it rewrites W0 = W - BA): use kind lora or dora without "
            "load_in_8bit, or init_lora_weights: true with qlora",
        )
    return LoraConfig(
        r=a.r,
        lora_alpha=a.lora_alpha,
        lora_dropout=a.lora_dropout,
        target_modules=targets,
        bias=a.bias,
        use_dora=a.kind == "dora",
        use_rslora=a.use_rslora,
        init_lora_weights=a.init_lora_weights,
        modules_to_save=resolve_modules_to_save(a.modules_to_save, model),
        task_type="CAUSAL_LM",
        **kwargs,
    )


# --------------------------------------------------------------------------- parameter math


def lora_counts(d: int, k: int, r: int, dora: bool = False) -> tuple[int, int]:
    """(frozen, trainable) for one d x k weight: d*k against r(d + k), plus d for DoRA's magnitude."""
    return d * k, r * (d + k) + (d if dora else 0)


@dataclass
class TargetMath:
    name: str
    count: int
    d: int
    k: int
    frozen: int  # over all modules of the group
    trainable: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.frozen if self.frozen else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "percent": round(self.percent, 4)}


@dataclass
class ParamMath:
    """Trainable against total parameters, counted as PEFT counts them (get_nb_trainable_parameters)."""

    kind: str
    r: int
    rows: list[TargetMath]
    base_params: int  # the model itself
    adapter_params: int  # LoRA A and B (and DoRA magnitudes) over all targets
    extra_trainable: int  # modules_to_save copies and trained biases
    trainable: int
    total: int  # base + adapter + modules_to_save copies
    notes: list[str] = field(default_factory=list)

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "rows"}
        return {**d, "rows": [r.to_dict() for r in self.rows], "percent": round(self.percent, 4)}


def parameter_lines(pm: ParamMath) -> list[str]:
    """Trainable against total, then each target group (count, d x k, r(d + k) added): the lines ``tunedeck adapter
    targets``, ``tunedeck estimate`` and the Adapter screen show."""
    lines = [f"trainable {pm.trainable:,} of {pm.total:,} ({pm.percent:.3f}%)", f"base {pm.base_params:,}"]
    lines += [f"  {row.name:<10} x{row.count:<3} {row.d}x{row.k}  +{row.trainable:,}" for row in pm.rows]
    return lines + [f"note: {n}" for n in pm.notes]


def _numel(model, predicate=lambda name, p: True) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if predicate(name, p))


def parameter_math(recipe: Recipe, model=None) -> ParamMath:
    """The LoRA parameter count for this recipe's model: per target d*k frozen, r(d + k) trainable."""
    a = recipe.adapter
    model = model if model is not None else meta_model(recipe)
    base = _numel(model)
    notes: list[str] = []
    if a.kind == "full":
        if a.freeze_all_but_last_n_layers:
            keep = trainable_after_freeze(model, a.freeze_all_but_last_n_layers)
            trainable = _numel(model, lambda name, p: name in keep)
            notes.append(
                f"only the last {a.freeze_all_but_last_n_layers} decoder layers, the final norm and an untied head train"
            )
        else:
            trainable = base
        return ParamMath(a.kind, 0, [], base, 0, 0, trainable, base, notes)
    groups = discover_targets(model)
    chosen = resolve_target_modules(a.target_modules, groups)
    dora = a.kind == "dora"
    rows = []
    for g in chosen:
        frozen = trainable = 0
        for (d, k), n in g.shapes.items():
            f, t = lora_counts(d, k, a.r, dora)
            frozen += f * n
            trainable += t * n
        rows.append(TargetMath(g.name, g.count, g.shape[0], g.shape[1], frozen, trainable))
    adapter = sum(r.trainable for r in rows)
    if dora:
        notes.append("DoRA adds a magnitude vector of d per target: r(d + k) + d")
    extra = 0
    copies = 0
    for name in resolve_modules_to_save(a.modules_to_save, model) or []:
        for path, module in model.named_modules():
            if path and _suffix_match(path, name):
                n = sum(p.numel() for p in module.parameters())
                extra += n
                copies += n
    if copies:
        notes.append("modules_to_save train a full copy of each module; the copy counts in the total too")
    if a.bias != "none":
        paths = {p for g in chosen for p in g.paths}
        for name, p in model.named_parameters():
            if name.endswith(".bias") and (a.bias == "all" or name[: -len(".bias")] in paths):
                extra += p.numel()
    if a.use_rslora:
        notes.append(f"rsLoRA scales updates by lora_alpha/sqrt(r) = {a.lora_alpha / a.r**0.5:.3g} (not lora_alpha/r)")
    trainable = adapter + extra
    return ParamMath(a.kind, a.r, rows, base, adapter, extra, trainable, base + adapter + copies, notes)


# --------------------------------------------------------------------------- PiSSA / OLoRA: saving for the original base


INITIAL_ADAPTER = "adapter-init"  # in the run folder: the adapter as initialised, before any step


def converts_on_save(recipe: Recipe) -> bool:
    """PiSSA and OLoRA rewrite the base (W0 - BA); their adapter is only right for the original base once converted."""
    init = recipe.adapter.init_lora_weights
    return recipe.adapter.kind != "full" and isinstance(init, str) and (init.startswith("pissa") or init == "olora")


def adapter_callbacks(recipe: Recipe, run) -> list:
    """TrainerCallbacks this adapter needs in the worker: PiSSA/OLoRA keep their initial adapter (for save_adapter)."""
    if not converts_on_save(recipe):
        return []
    from transformers import TrainerCallback

    class SaveInitialAdapter(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            path = run.path / INITIAL_ADAPTER
            if state.global_step > 0 or path.exists() or model is None or not hasattr(model, "peft_config"):
                return  # a resumed run keeps the adapter of its first start
            if not state.is_world_process_zero:
                return  # under accelerate launch: rank 0 writes it (the ranks start identical)
            save_initial_adapter(model, path)

    return [SaveInitialAdapter()]


def save_initial_adapter(model, path) -> None:
    """Save the adapter as initialised, marked as a plain (zero-delta) LoRA, as PEFT's conversion expects."""
    config = model.peft_config["default"]
    init = config.init_lora_weights
    config.init_lora_weights = True
    try:
        model.save_pretrained(str(path), safe_serialization=True)
    finally:
        config.init_lora_weights = init


def save_adapter(model, target, run=None) -> None:
    """What the worker saves: a PiSSA/OLoRA adapter is converted to a LoRA (rank 2r) for the original base."""
    from pathlib import Path

    initial = Path(run.path) / INITIAL_ADAPTER if run is not None else None
    if initial is not None and initial.is_dir() and hasattr(model, "peft_config"):
        model.save_pretrained(
            str(target), safe_serialization=True, path_initial_model_for_weight_conversion=str(initial)
        )
    else:
        model.save_pretrained(str(target), safe_serialization=True)
