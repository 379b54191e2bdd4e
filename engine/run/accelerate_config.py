"""accelerate's config for a run of many processes (DDP, FSDP, DeepSpeed ZeRO; one or many machines), and
whether this machine can launch it. Written to RUN_DIR/accelerate_config.yaml when the run is created."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from tunedeck.engine.recipe import Recipe, RecipeError
from tunedeck.engine.run.rundir import RunDir

DISTRIBUTED_TYPES = {"ddp": "MULTI_GPU", "fsdp": "FSDP", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED"}


def nvidia_gpus() -> int:
    """How many NVIDIA GPUs NVML sees here (no torch import)."""
    from tunedeck.engine.gpu import sample_gpus

    return len(sample_gpus())


def accelerate_config(recipe: Recipe, use_cpu: bool | None = None) -> dict[str, Any]:
    """The recipe's launch section in accelerate's own config schema (what ``accelerate config`` writes)."""
    launch, train = recipe.launch, recipe.train
    if use_cpu is None:
        use_cpu = nvidia_gpus() == 0
    port = launch.main_process_port
    if port is None:  # across machines every launcher must agree; on one machine 0 picks a free port
        port = 29500 if launch.num_machines > 1 else 0
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": DISTRIBUTED_TYPES[launch.strategy],
        "mixed_precision": launch.mixed_precision,
        "use_cpu": use_cpu,
        "debug": False,
        "num_processes": launch.num_processes,
        "num_machines": launch.num_machines,
        "machine_rank": launch.machine_rank,
        "main_process_port": port,
        "rdzv_backend": "static",
        "gpu_ids": "all",
        "main_training_function": "main",
        "enable_cpu_affinity": False,
        "downcast_bf16": "no",
    }
    if launch.main_process_ip:
        config["main_process_ip"] = launch.main_process_ip
    if launch.strategy == "fsdp":
        # PEFT's recommended FSDP settings; the Trainer adds PEFT's wrap policy (LoRA layers wrapped apart)
        # and, for QLoRA, a mixed-precision policy in the 4-bit storage dtype.
        config["fsdp_config"] = {
            "fsdp_version": 1,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_sharding_strategy": "FULL_SHARD",
            "fsdp_backward_prefetch": "BACKWARD_PRE",
            "fsdp_forward_prefetch": False,
            "fsdp_offload_params": launch.offload_params,
            "fsdp_state_dict_type": "FULL_STATE_DICT",  # the final adapter/model is one ordinary file set
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_sync_module_states": True,
            "fsdp_use_orig_params": recipe.adapter.kind == "full",  # partly frozen layers need it
            "fsdp_activation_checkpointing": False,  # train.gradient_checkpointing does it through the Trainer
        }
    elif launch.strategy in ("zero2", "zero3"):
        stage = int(launch.strategy[-1])
        config["deepspeed_config"] = {
            "zero_stage": stage,
            "offload_optimizer_device": "cpu" if launch.offload_optimizer else "none",
            "offload_param_device": "cpu" if launch.offload_params else "none",
            "gradient_accumulation_steps": train.gradient_accumulation_steps,
            "gradient_clipping": train.max_grad_norm,
            "zero3_init_flag": stage == 3,
            "zero3_save_16bit_model": stage == 3,
            "deepspeed_multinode_launcher": "standard",  # one accelerate launcher per machine (SLURM, by hand)
        }
    return config


def write_accelerate_config(run: RunDir, recipe: Recipe) -> Path:
    import yaml

    run.accelerate_config.write_text(yaml.safe_dump(accelerate_config(recipe), sort_keys=False), encoding="utf-8")
    return run.accelerate_config


def check_launchable(recipe: Recipe) -> None:
    """What this machine lacks for the recipe's strategy, as a RecipeError naming launch.strategy."""
    strategy = recipe.launch.strategy
    if strategy in ("zero2", "zero3") and importlib.util.find_spec("deepspeed") is None:
        raise RecipeError(
            "launch.strategy", f"{strategy} needs DeepSpeed, which is not installed: pip install 'tunedeck[deepspeed]'"
        )
    if strategy in ("fsdp", "zero2", "zero3") and nvidia_gpus() == 0:
        raise RecipeError(
            "launch.strategy",
            f"{strategy} needs NVIDIA GPUs and this machine has none; on CPU use ddp (gloo) or single",
        )
