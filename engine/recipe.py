"""The typed Recipe: everything a run needs, read from and written to YAML.

Field names follow TRL/PEFT/transformers where those libraries have one, so settings can be
pasted across. Every error names the field path (``adapter.r``) and the file it came from.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from tunedeck.engine.data.formats import FORMATS
from tunedeck.engine.methods import METHODS

GGUF_TYPES = (
    "F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1",
    "Q4_0", "IQ4_NL", "IQ4_XS", "Q3_K_L", "Q3_K_M", "Q3_K_S", "IQ3_M", "IQ3_S", "IQ3_XS", "IQ3_XXS",
    "Q2_K", "Q2_K_S", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S",
)  # fmt: skip
# llama.cpp refuses these without an importance matrix; the export computes one from the run's data.
GGUF_IMATRIX_TYPES = ("IQ3_XS", "IQ3_XXS", "Q2_K_S", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S")
HF_QUANT_METHODS = ("gptq", "awq")


class RecipeError(ValueError):
    """A recipe problem, always naming the field (and the file when there is one)."""

    def __init__(self, field_path: str, message: str, source: str | None = None):
        self.field_path = field_path
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field_path}: {message}")


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


@dataclass
class ModelArgs:
    name_or_path: str = ""
    trust_remote_code: bool = False
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    revision: str | None = None


DATA_FORMATS = Literal[("auto", *FORMATS)]  # auto: detected from the rows; tunedeck.engine.data.formats defines the formats


@dataclass
class MixArgs:
    """A general-purpose dataset mixed in (the usual mitigation for catastrophic forgetting)."""

    path: str = ""
    ratio: float = 0.1  # share of the final training set
    format: DATA_FORMATS = "auto"
    columns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.path:
            raise RecipeError("data.mix[].path", "is required (a dataset file, folder or Hub id)")
        if not 0 < self.ratio < 1:
            raise RecipeError("data.mix[].ratio", f"must be between 0 and 1, got {self.ratio}")


@dataclass
class DataArgs:
    train: str = ""
    eval: str | None = None
    eval_size: float = 0.0  # held out of train when no eval file is given
    format: DATA_FORMATS = "auto"
    columns: dict[str, str] = field(default_factory=dict)  # format field -> your column, e.g. {instruction: question}
    mix: list[MixArgs] = field(default_factory=list)


@dataclass
class TemplateArgs:
    name: str = "model"  # "model" (the tokenizer's own), a built-in name, or a .jinja file
    train_on_reasoning: bool = True  # assistant reasoning (reasoning_content / <think> blocks) carries loss


TARGET_PRESETS = ("all-linear", "attention", "mlp")
INIT_LORA_WEIGHTS = ("gaussian", "pissa", "olora", "orthogonal", "loftq")  # plus true, false, pissa_niter_<n>


@dataclass
class AdapterArgs:
    """How the base is adapted. Names are PEFT's (LoraConfig) and transformers' (BitsAndBytesConfig).

    kind: lora, qlora (LoRA on a 4-bit base), dora (weight-decomposed LoRA) or full.
    target_modules: a preset (all-linear, attention, mlp), a list of module names, or a regex.
    """

    kind: Literal["lora", "qlora", "dora", "full"] = "lora"
    r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"
    bias: Literal["none", "all", "lora_only"] = "none"
    use_rslora: bool = False  # scale by lora_alpha / sqrt(r) instead of lora_alpha / r
    init_lora_weights: bool | str = True  # true, false, gaussian, pissa, pissa_niter_<n>, olora, orthogonal, loftq
    loftq_bits: Literal[2, 4, 8] = 4  # with init_lora_weights: loftq
    loftq_iter: int = 1
    modules_to_save: list[str] | str | None = None  # trained in full beside the adapter, e.g. [embed_tokens, lm_head]
    load_in_8bit: bool = False  # lora/dora on an 8-bit (LLM.int8) base
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"  # qlora
    bnb_4bit_use_double_quant: bool = True  # qlora: quantize the quantization constants too
    bnb_4bit_compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # qlora; auto: model.dtype
    freeze_all_but_last_n_layers: int | None = None  # full: train only the last N decoder layers (and the head)

    def __post_init__(self) -> None:
        lora_kind = self.kind != "full"
        if self.r <= 0:
            raise RecipeError("adapter.r", f"must be a positive integer, got {self.r}")
        if self.lora_alpha <= 0:
            raise RecipeError("adapter.lora_alpha", f"must be positive, got {self.lora_alpha}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise RecipeError("adapter.lora_dropout", f"must be in [0, 1), got {self.lora_dropout}")
        if isinstance(self.target_modules, str):
            name = self.target_modules.strip()
            is_regex = any(c in name for c in "*()[]|\\^$?+")
            self.target_modules = name if name in TARGET_PRESETS or is_regex else [name]
        if isinstance(self.target_modules, list) and not [m for m in self.target_modules if m.strip()]:
            raise RecipeError("adapter.target_modules", f"is empty; use a preset ({', '.join(TARGET_PRESETS)}) or names")
        if isinstance(self.modules_to_save, str):
            self.modules_to_save = [self.modules_to_save] if self.modules_to_save.strip() else None
        init = self.init_lora_weights
        if isinstance(init, str):
            import re

            if init.lower() in ("true", "false"):
                self.init_lora_weights = init = init.lower() == "true"
            elif init not in INIT_LORA_WEIGHTS and not re.fullmatch(r"pissa_niter_\d+", init):
                raise RecipeError(
                    "adapter.init_lora_weights",
                    f"unknown initialisation {init!r}; choose from true, false, {', '.join(INIT_LORA_WEIGHTS)}, "
                    "pissa_niter_<n>",
                )
        if init == "loftq" and self.kind == "qlora":
            raise RecipeError(
                "adapter.init_lora_weights",
                "loftq quantizes the base itself: use kind lora (or dora) with init_lora_weights: loftq, not qlora",
            )
        if self.loftq_iter < 1:
            raise RecipeError("adapter.loftq_iter", f"must be at least 1, got {self.loftq_iter}")
        if self.load_in_8bit and self.kind in ("qlora", "full"):
            what = "qlora already loads the base in 4-bit" if self.kind == "qlora" else "8-bit weights cannot be trained"
            raise RecipeError("adapter.load_in_8bit", f"not with kind {self.kind}: {what}; use kind lora or dora")
        if self.freeze_all_but_last_n_layers is not None:
            if self.kind != "full":
                raise RecipeError("adapter.freeze_all_but_last_n_layers", "only applies to kind: full")
            if self.freeze_all_but_last_n_layers < 1:
                raise RecipeError(
                    "adapter.freeze_all_but_last_n_layers", f"must be at least 1, got {self.freeze_all_but_last_n_layers}"
                )
        if not lora_kind:
            for name, default in (("use_rslora", False), ("init_lora_weights", True), ("modules_to_save", None)):
                if getattr(self, name) != default:
                    raise RecipeError(f"adapter.{name}", "is a LoRA setting; it does nothing with kind: full")


@dataclass
class MethodArgs:
    """The alignment method and its own settings (TRL's argument names; None: TRL's default)."""

    name: Literal[tuple(METHODS)] = "sft"  # a key of tunedeck.engine.methods.METHODS
    assistant_only_loss: bool = True  # sft: train on assistant tokens only
    beta: float | None = None  # dpo/orpo/simpo/kto temperature; grpo/rloo KL coefficient to the reference
    loss_type: list[str] | str | None = None  # dpo: sigmoid, ipo, hinge, ...; kto: kto, apo_zero_unpaired
    simpo_gamma: float | None = None  # simpo: target reward margin
    cpo_alpha: float | None = None  # simpo: weight of the NLL term (0: pure SimPO)
    desirable_weight: float | None = None  # kto
    undesirable_weight: float | None = None  # kto
    center_rewards_coefficient: float | None = None  # reward
    # grpo / rloo / ppo: rewards are Python functions ("module:function") or reward runs/models (paths)
    reward_funcs: list[str] = field(default_factory=list)
    num_generations: int = 4
    max_completion_length: int = 32
    temperature: float = 1.0
    # ppo (names as in TRL's former PPOConfig); max_completion_length is the response length
    num_ppo_epochs: int = 4  # passes over each rollout batch
    num_mini_batches: int = 1  # optimizer steps per pass (x gradient_accumulation_steps micro-batches each)
    kl_coef: float = 0.05  # per-token KL penalty to the reference, subtracted from the reward
    kl_estimator: Literal["k1", "k3"] = "k1"
    cliprange: float = 0.2  # policy ratio clip
    cliprange_value: float = 0.2  # value clip around the rollout values
    vf_coef: float = 0.1  # value loss weight
    gamma: float = 1.0  # discount
    lam: float = 0.95  # GAE lambda
    whiten_rewards: bool = False
    missing_eos_penalty: float | None = None  # subtracted from the score of responses that never end

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise RecipeError("method.name", f"must be one of {', '.join(METHODS)}; got {self.name!r}")
        spec = METHODS[self.name]
        for f in dataclasses.fields(self):
            if f.name != "name" and f.name not in spec.settings and getattr(self, f.name) != _default(f):
                raise RecipeError(
                    f"method.{f.name}",
                    f"does not apply to method {self.name} (its settings: {', '.join(spec.settings) or 'none'}); "
                    "remove it or choose a method that uses it",
                )
        for name in ("num_ppo_epochs", "num_mini_batches"):
            if getattr(self, name) < 1:
                raise RecipeError(f"method.{name}", f"must be at least 1, got {getattr(self, name)}")
        for name in ("gamma", "lam"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise RecipeError(f"method.{name}", f"must be between 0 and 1, got {getattr(self, name)}")
        for name in ("cliprange", "cliprange_value"):
            if getattr(self, name) <= 0:
                raise RecipeError(f"method.{name}", f"must be positive, got {getattr(self, name)}")
        if spec.online and not self.reward_funcs:
            raise RecipeError(
                "method.reward_funcs",
                f"{self.name} needs at least one reward: a Python function 'module:function' or a reward run folder",
            )
        if self.num_generations < 2:
            raise RecipeError("method.num_generations", "must be at least 2 (advantages compare generations)")


@dataclass
class TrainArgs:
    runs_dir: str = "runs"
    max_steps: int = -1
    num_train_epochs: float = 1.0
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-4
    lr_scheduler_type: str = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 1024
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int = 2
    seed: int = 42
    gradient_checkpointing: bool = False
    bf16: bool | None = None  # None: bf16 where the device supports it fast (CUDA), else fp32
    report_to: list[str] | str = "none"
    # The worker yields to the UI on a shared box: it lowers its priority by `nice` (0-19) and, on one machine, runs
    # torch on `torch_threads` threads (0: all cores but one where there is more than one, so the TUI keeps a core).
    nice: int = 10
    torch_threads: int = 0

    def __post_init__(self) -> None:
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "logging_steps", "save_steps"):
            if getattr(self, name) <= 0:
                raise RecipeError(f"train.{name}", f"must be a positive integer, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise RecipeError("train.learning_rate", f"must be positive, got {self.learning_rate}")
        if self.max_steps == 0:
            raise RecipeError("train.max_steps", "must be positive, or -1 to train for num_train_epochs")
        if not 0 <= self.nice <= 19:
            raise RecipeError("train.nice", f"must be 0 (the UI's priority) to 19 (lowest), got {self.nice}")
        if self.torch_threads < 0:
            raise RecipeError("train.torch_threads", f"must be 0 (all cores but one) or a thread count, got {self.torch_threads}")


@dataclass
class ExportArgs:
    """What ``tunedeck export`` writes, and how much it checks. Every GGUF gets a fidelity report."""

    quant: list[str] = field(default_factory=lambda: ["F16", "Q8_0", "Q4_K_M"])
    pre_tokenizer: str | None = None  # llama.cpp pre-tokenizer name when the converter does not know ours
    fix_metadata: bool = False  # write the HF chat template / EOS / BOS flags into the GGUF instead of failing parity
    imatrix: Literal["auto", "always", "never"] = "auto"  # auto: only for the types llama.cpp requires it for
    adapter: bool = True  # also copy the PEFT adapter (safetensors + tokenizer) to export/adapter
    max_shard_size: str = "2GB"  # merged safetensors shard size (transformers' max_shard_size)
    modelfile: bool = True  # an Ollama Modelfile beside each GGUF
    checks: Literal["quick", "full", "none"] = "quick"  # how much each file is verified (engine/export/checks.py)
    fidelity_texts: int = 32  # held-out texts for perplexity, top-1 agreement and KL against the HF model
    eval_rows: int = 100  # eval-set rows for task accuracy per file (0: skip)
    calibration_rows: int = 128  # training rows for the importance matrix and GPTQ/AWQ
    hf_quant: list[str] = field(default_factory=list)  # gptq, awq: 4-bit HF exports (pip install tunedeck[gptq])
    hf_quant_bits: int = 4
    hf_quant_group_size: int = 128

    def __post_init__(self) -> None:
        self.quant = [normalize_quant(q, "export.quant") for q in self.quant]
        self.hf_quant = [m.strip().lower() for m in self.hf_quant]
        for i, m in enumerate(self.hf_quant):
            if m not in HF_QUANT_METHODS:
                raise RecipeError(f"export.hf_quant[{i}]", f"unknown method {m!r}; choose from {', '.join(HF_QUANT_METHODS)}")
        for name in ("fidelity_texts", "eval_rows", "calibration_rows"):
            if getattr(self, name) < 0:
                raise RecipeError(f"export.{name}", f"must be 0 or more, got {getattr(self, name)}")
        if self.hf_quant_bits not in (2, 3, 4, 8):
            raise RecipeError("export.hf_quant_bits", f"must be 2, 3, 4 or 8, got {self.hf_quant_bits}")
        if self.hf_quant_group_size != -1 and self.hf_quant_group_size <= 0:
            raise RecipeError("export.hf_quant_group_size", f"must be positive or -1, got {self.hf_quant_group_size}")


@dataclass
class LaunchArgs:
    """How many processes train, on how many machines, and how they share the model (accelerate's names).

    strategy: single (one process), ddp (a full copy per GPU), fsdp (PyTorch FSDP: weights, gradients
    and optimizer state sharded), zero2 / zero3 (DeepSpeed ZeRO: optimizer state and gradients, and
    with zero3 the weights too, sharded; pip install 'tunedeck[deepspeed]').
    num_processes counts all processes on all machines, as in accelerate's config.
    """

    num_processes: int = 1
    strategy: Literal["single", "ddp", "fsdp", "zero2", "zero3"] = "single"
    offload_optimizer: bool = False  # zero2/zero3: optimizer state in CPU RAM
    offload_params: bool = False  # zero3: weights in CPU RAM; fsdp: weights, gradients and optimizer state
    num_machines: int = 1
    machine_rank: int = 0  # this machine's place, 0 .. num_machines-1; 0 hosts rank 0 and writes the run
    main_process_ip: str | None = None  # the address of machine 0 (needed with num_machines > 1)
    main_process_port: int | None = None  # None: 29500 across machines, a free port on one machine
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"  # accelerate's; train.bf16 must not contradict it

    def __post_init__(self) -> None:
        for name in ("num_processes", "num_machines"):
            if getattr(self, name) < 1:
                raise RecipeError(f"launch.{name}", f"must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.machine_rank < self.num_machines:
            raise RecipeError(
                "launch.machine_rank", f"must be between 0 and num_machines-1 ({self.num_machines - 1}), got {self.machine_rank}"
            )
        if self.num_processes % self.num_machines:
            raise RecipeError(
                "launch.num_processes",
                f"counts the processes of all machines: {self.num_processes} does not split evenly over "
                f"{self.num_machines} machines (e.g. 2 machines x 4 GPUs: num_processes 8)",
            )
        if self.strategy == "single" and (self.num_processes > 1 or self.num_machines > 1):
            raise RecipeError(
                "launch.strategy",
                f"single runs one process; with {self.num_processes} processes on {self.num_machines} machine(s) "
                "choose ddp (a full copy per GPU), fsdp, zero2 or zero3",
            )
        if self.strategy == "ddp" and self.num_processes < 2:
            raise RecipeError("launch.num_processes", "ddp needs at least 2 processes (one per GPU); or use strategy single")
        if self.num_machines > 1 and not self.main_process_ip:
            raise RecipeError("launch.main_process_ip", "is required with num_machines > 1: the address of machine_rank 0")
        if self.main_process_port is not None and not 0 <= self.main_process_port <= 65535:
            raise RecipeError("launch.main_process_port", f"must be a TCP port (0-65535), got {self.main_process_port}")
        if self.offload_optimizer and self.strategy not in ("zero2", "zero3"):
            fix = "set launch.offload_params: true (FSDP offloads all three together)" if self.strategy == "fsdp" else (
                "use strategy zero2 or zero3")  # fmt: skip
            raise RecipeError("launch.offload_optimizer", f"needs DeepSpeed ZeRO; {fix}")
        if self.offload_params and self.strategy not in ("zero3", "fsdp"):
            raise RecipeError(
                "launch.offload_params", f"only zero3 and fsdp shard the weights (strategy is {self.strategy}); use one of them"
            )

    @property
    def distributed(self) -> bool:
        """True when the run goes through ``accelerate launch`` (more than one process, or a sharding strategy)."""
        return self.num_processes > 1 or self.num_machines > 1 or self.strategy != "single"


@dataclass
class Recipe:
    model: ModelArgs = field(default_factory=ModelArgs)
    data: DataArgs = field(default_factory=DataArgs)
    template: TemplateArgs = field(default_factory=TemplateArgs)
    adapter: AdapterArgs = field(default_factory=AdapterArgs)
    method: MethodArgs = field(default_factory=MethodArgs)
    train: TrainArgs = field(default_factory=TrainArgs)
    export: ExportArgs = field(default_factory=ExportArgs)
    launch: LaunchArgs = field(default_factory=LaunchArgs)

    def __post_init__(self) -> None:
        if not self.model.name_or_path:
            raise RecipeError("model.name_or_path", "is required (a local model folder or a Hub id)")
        if not self.data.train:
            raise RecipeError("data.train", "is required (a dataset file, folder or Hub id)")
        check_launch(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_yaml(), encoding="utf-8")


def check_launch(recipe: Recipe) -> None:
    """What the launch section cannot do with the rest of the recipe."""
    launch, adapter = recipe.launch, recipe.adapter
    sharded = launch.strategy in ("fsdp", "zero3")
    if sharded and adapter.load_in_8bit:
        raise RecipeError("adapter.load_in_8bit", f"8-bit weights cannot be sharded by {launch.strategy}; use kind qlora")
    if sharded and adapter.kind == "qlora" and "auto" == adapter.bnb_4bit_compute_dtype == recipe.model.dtype:
        raise RecipeError(
            "adapter.bnb_4bit_compute_dtype",
            f"qlora under {launch.strategy} stores the 4-bit weights in the compute dtype so they can be sharded: "
            "set it (bfloat16 on Ampere or newer, else float16)",
        )
    bf16 = recipe.train.bf16
    if (launch.mixed_precision == "bf16" and bf16 is False) or (launch.mixed_precision == "fp16" and bf16):
        raise RecipeError(
            "launch.mixed_precision", f"{launch.mixed_precision} contradicts train.bf16: {str(bf16).lower()}; set one of them"
        )


def normalize_quant(name: str, field_path: str = "quant") -> str:
    """Canonical spelling of a GGUF type (f16 -> F16, q4_k_m -> Q4_K_M)."""
    canon = name.strip().upper()
    if canon not in GGUF_TYPES:
        raise RecipeError(field_path, f"unknown GGUF type {name!r}; choose from {', '.join(GGUF_TYPES)}")
    return canon


@functools.cache
def allowed(field_path: str) -> tuple[str, ...]:
    """The values a field takes, as typed on a command line: a Literal's, or true/false for a bool; () for any other.

    ``allowed("launch.strategy")``. argparse choices and the TUI's pick-one fields read them here, from the types
    (as TRL's HfArgumentParser does), so a value added to a Literal reaches every front end."""
    section, name = field_path.split(".")
    tp = typing.get_type_hints(typing.get_type_hints(Recipe)[section])[name]
    if get_origin(tp) in (typing.Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        tp = options[0] if len(options) == 1 else tp
    if get_origin(tp) is Literal:
        return tuple(str(v) for v in get_args(tp))
    return ("true", "false") if tp is bool else ()


# --------------------------------------------------------------------------- building from dicts


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check/convert one value against a type hint, raising RecipeError naming ``path``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, path)
            except RecipeError:
                pass
        raise RecipeError(path, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            raise RecipeError(path, f"must be one of {', '.join(map(str, get_args(tp)))}; got {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(path, f"expected a mapping, got {value!r}")
        value_tp = get_args(tp)[1]
        return {str(k): _coerce(v, value_tp, f"{path}.{k}") for k, v in value.items()}
    if origin is list:
        (item_tp,) = get_args(tp)
        if isinstance(value, str) and "," in value:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise RecipeError(path, f"expected a list, got {value!r}")
        return [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise RecipeError(path, f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise RecipeError(path, f"expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "2e-4" as a string
            except ValueError:
                pass
        raise RecipeError(path, f"expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise RecipeError(path, f"expected a string, got {value!r}")
    return value


def _type_name(tp: Any) -> str:
    args = [a for a in get_args(tp) if a is not type(None)]
    return " or ".join(getattr(a, "__name__", str(a)) for a in args) or str(tp)


def _build(cls: type, data: Any, path: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(path or "recipe", f"expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        key = unknown[0]
        where = f"{path}.{key}" if path else str(key)
        raise RecipeError(where, f"unknown field; valid fields here: {', '.join(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{path}.{k}" if path else k) for k, v in data.items()}
    return cls(**kwargs)


def recipe_from_dict(data: dict[str, Any], source: str | None = None) -> Recipe:
    try:
        return _build(Recipe, data, "")
    except RecipeError as e:
        if source and not e.source:
            raise RecipeError(e.field_path, str(e).split(": ", 1)[1], source) from None
        raise


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set a.b=value`` strings (values parsed as YAML) to a raw recipe dict."""
    import yaml

    for item in overrides:
        if "=" not in item:
            raise RecipeError(item, "an override must look like section.field=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(key, f"{part} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return data


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe file; relative data/model paths are resolved against the file's folder."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError("recipe", "file not found", str(path)) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise RecipeError("recipe", f"not valid YAML: {e}", str(path)) from None
    if not isinstance(data, dict):
        raise RecipeError("recipe", "must be a mapping of sections (model, data, ...)", str(path))
    data = apply_overrides(data, overrides or [])
    recipe = recipe_from_dict(data, str(path))
    return resolve_paths(recipe, path.parent)


def resolve_paths(recipe: Recipe, base: Path) -> Recipe:
    """Make local paths absolute so the run directory's copy works from anywhere."""

    def local(p: str | None) -> str | None:
        if not p:
            return p
        path, mark, entry = p.rpartition("#") if "dataset_info.json#" in p else (p, "", "")  # LLaMA-Factory entry
        candidate = Path(path).expanduser()
        if not candidate.is_absolute():
            candidate = base / candidate
        return str(candidate.resolve()) + mark + entry if candidate.exists() else p

    recipe.model.name_or_path = local(recipe.model.name_or_path) or ""
    recipe.data.train = local(recipe.data.train) or ""
    recipe.data.eval = local(recipe.data.eval)
    for m in recipe.data.mix:
        m.path = local(m.path) or m.path
    runs = Path(recipe.train.runs_dir).expanduser()
    recipe.train.runs_dir = str(runs if runs.is_absolute() else (base / runs).resolve())
    return recipe
