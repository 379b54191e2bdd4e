"""Many processes, many machines: accelerate's config, the launcher's supervisor, SLURM scripts.

A run with ``launch.num_processes > 1`` (or FSDP / DeepSpeed, or several machines) is started as
``python -m engine.distributed RUN_DIR``: a small supervisor, detached like a single worker, that
runs ``accelerate launch --config_file RUN_DIR/accelerate_config.yaml -m engine.worker RUN_DIR``
and waits. Rank 0 writes events and status as a single worker would; every rank writes
``ranks/rank<N>.json`` and logs to ``worker-rank<N>.log``. When the launcher fails, the
supervisor names the rank that died first (torch elastic's root cause) and writes ``failed``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from engine.recipe import Recipe, RecipeError
from engine.runs import TERMINAL_STATES, RunDir, pid_alive

DISTRIBUTED_TYPES = {"ddp": "MULTI_GPU", "fsdp": "FSDP", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED"}
# Seconds torch elastic gives ranks to exit after a peer died or the launcher was signalled, then SIGKILL.
SHUTDOWN_TIMEOUT_S = 120
ROOT_CAUSE = re.compile(
    r"Root Cause \(first observed failure\):\s*\[\d+\]:.*?rank\s*:\s*(\d+) \(local_rank: \d+\)\s*"
    r"exitcode\s*:\s*(-?\d+) \(pid: \d+\)[ \t]*(\S*)",
    re.S,
)


def nvidia_gpus() -> int:
    """How many NVIDIA GPUs NVML sees here (no torch import)."""
    from engine.gpu import sample_gpus

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


def launcher_command(run: RunDir, resume: bool = False, machine_rank: int | None = None, main_ip: str | None = None):
    """``accelerate launch`` (as a module of this interpreter) of the worker with the run's config."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(run.accelerate_config)]
    if machine_rank is not None:
        cmd += ["--machine_rank", str(machine_rank)]
    if main_ip:
        cmd += ["--main_process_ip", main_ip]
    return [*cmd, "-m", "engine.worker", str(run.path), *(["--resume"] if resume else [])]


def launcher_env(use_cpu: bool) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT_S)}
    if use_cpu:
        # accelerate's multi-GPU launcher does not pass use_cpu on: without this every rank on a CPU-only
        # machine trains alone (ParallelMode.NOT_PARALLEL) instead of joining a gloo process group.
        env["ACCELERATE_USE_CPU"] = "true"
    return env


def tail(path: Path, lines: int = 15) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def root_cause(launcher_output: str) -> tuple[int, int, str] | None:
    """(rank, exit code, signal name) of the first rank that failed, from torch elastic's report."""
    found = ROOT_CAUSE.findall(launcher_output)
    if not found:
        return None
    rank, code, sig = found[-1]
    return int(rank), int(code), sig.strip("()") if sig.startswith("(") else ""


def _exit_words(code: int, sig: str) -> str:
    if code < 0:
        try:
            return f"signal {sig or signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def failure_event(run: RunDir, returncode: int, launcher_log: Path) -> dict[str, Any]:
    """The ``failed`` event for a launcher that exited ``returncode``: which rank died, how, and its log tail."""
    cause = root_cause(launcher_log.read_text(errors="replace") if launcher_log.exists() else "")
    if cause is None:
        lines = tail(launcher_log)
        return dict(
            error=f"accelerate launch exited with code {returncode} before any rank reported",
            hint=f"see {launcher_log.name} in the run folder (the launcher's own output)",
            traceback=lines,
        )
    rank, code, sig = cause
    info = next((r for r in run.read_ranks() if r.get("rank") == rank), {})
    how = _exit_words(code, sig)
    error = f"rank {rank} exited with {how}"
    if info.get("error"):
        error += f": {info['error']}"
    hint = info.get("hint") or (
        f"rank {rank} was killed ({how}): the kernel's OOM killer (dmesg), a job limit or kill -9; "
        f"worker-rank{rank}.log has its last words"
        if code < 0
        else f"worker-rank{rank}.log in the run folder has the traceback"
    )
    return dict(error=error, hint=hint, rank=rank, exitcode=code, traceback=tail(run.rank_log(rank)))


def supervise(run: RunDir, resume: bool = False, machine_rank: int | None = None, main_ip: str | None = None,
              shared: bool = False) -> int:  # fmt: skip
    """Run the accelerate launcher for this machine and turn how it ended into the run's state.

    The supervisor owns the run's status (pid, final state) unless ``shared`` and this is not machine 0
    (SLURM: one run folder on a shared filesystem, written by machine 0 only).
    """
    from engine.recipe import load_recipe

    recipe = load_recipe(run.recipe_path)
    machine = recipe.launch.machine_rank if machine_rank is None else machine_rank
    owner = machine == 0 or not shared
    stop = {"requested": False}

    def on_signal(signum, frame):  # the ranks get their own SIGTERM (stop_run); we stay to record the end
        stop["requested"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    config = run.accelerate_config if run.accelerate_config.exists() else write_accelerate_config(run, recipe)
    import yaml

    use_cpu = bool(yaml.safe_load(config.read_text()).get("use_cpu"))
    log = run.log_path if owner else run.path / f"launcher-machine{machine}.log"
    cmd = launcher_command(run, resume, machine_rank, main_ip)
    if owner and resume:
        for stale in run.ranks_dir.glob("rank*.json") if run.ranks_dir.is_dir() else []:
            stale.unlink(missing_ok=True)  # heartbeats of the earlier attempt
    if owner:
        run.write_status(state="starting", pid=os.getpid(), pgid=os.getpgid(0), host=socket.gethostname(), error=None,
                         ended=None, launcher="accelerate", num_processes=recipe.launch.num_processes)  # fmt: skip
        run.append_event("launched", command=shlex.join(cmd), machine_rank=machine,
                         num_processes=recipe.launch.num_processes, num_machines=recipe.launch.num_machines,
                         strategy=recipe.launch.strategy, host=socket.gethostname())  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=run.path,
                                env=launcher_env(use_cpu))  # fmt: skip
        returncode = proc.wait()
    print(f"accelerate launch exited with {returncode}", flush=True)
    if not owner or run.read_status().get("state") in TERMINAL_STATES:
        return 0 if returncode == 0 else 1  # rank 0 recorded how it ended (finished / stopped)
    if returncode == 0 and machine != 0:  # by hand on another machine: rank 0 lives (and writes) elsewhere
        run.append_event("finished", step=None, note=f"machine {machine}: ranks exited cleanly; machine 0 saves the model")
        run.write_status(state="finished", ended=time.time())
        return 0
    if stop["requested"] and returncode != 0:  # stopped before rank 0 could say so (e.g. while loading)
        run.append_event("stopped", step=run.read_status().get("step"))
        run.write_status(state="stopped", ended=time.time())
        return 0
    event = failure_event(run, returncode, log)
    run.append_event("failed", **event)
    run.write_status(state="failed", error=event["error"], hint=event["hint"], ended=time.time())
    return 1


def local_rank_pids(run: RunDir) -> list[int]:
    """Live rank processes of this run on this machine (their heartbeats carry pid and host)."""
    host = socket.gethostname()
    return [r["pid"] for r in run.read_ranks() if r.get("host") == host and pid_alive(r.get("pid"))]


# --------------------------------------------------------------------------- SLURM


def slurm_script(recipe_path: Path, nodes: int, gpus_per_node: int, overrides: list[str], job_name: str = "tunedeck",
                 time_limit: str | None = None, partition: str | None = None, port: int = 29500) -> str:  # fmt: skip
    """An sbatch script: one accelerate launcher per node, machine_rank from SLURM_NODEID, machine 0 as rendezvous."""
    python = sys.executable
    sets = [*overrides, f"launch.num_machines={nodes}", f"launch.num_processes={nodes * gpus_per_node}",
            f"launch.main_process_port={port}"]  # fmt: skip
    prepare = " ".join(
        [shlex.quote(python), "-m", "engine.distributed", "prepare", shlex.quote(str(recipe_path))]
        + [f"--set {shlex.quote(s)}" for s in sets]
    )
    directives = [
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={gpus_per_node}",
        f"#SBATCH --cpus-per-task={max(4, 8 * gpus_per_node)}",
        f"#SBATCH --output={job_name}-%j.out",
    ]
    if time_limit:
        directives.append(f"#SBATCH --time={time_limit}")
    if partition:
        directives.append(f"#SBATCH --partition={partition}")
    node_cmd = (
        f"{shlex.quote(python)} -m engine.distributed \"$RUN_DIR\" --shared "
        '--machine-rank "$SLURM_NODEID" --main-process-ip "$MAIN_IP"'
    )
    return "\n".join(
        [
            "#!/bin/bash",
            f"# Written by tunedeck launch-script for {recipe_path}: {nodes} node(s) x {gpus_per_node} GPU(s).",
            *directives,
            "set -euo pipefail",
            "",
            "# Machine 0 (the first host of the allocation) is the rendezvous point for every launcher.",
            'MAIN_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)',
            "export MAIN_IP",
            "# One run folder (on the shared filesystem) for every node; only machine 0 writes its events.",
            f'RUN_DIR=$({prepare} --set "launch.main_process_ip=$MAIN_IP")',
            "export RUN_DIR",
            'echo "tunedeck run: $RUN_DIR (follow it with: tunedeck attach $RUN_DIR)"',
            "",
            "# One accelerate launcher per node; each starts its node's GPUs as ranks.",
            f"srun --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c {shlex.quote(node_cmd)}",
            "",
        ]
    )


def prepare_run(recipe_path: str, overrides: list[str]) -> RunDir:
    """A run folder with the resolved recipe and accelerate config, no process started (for SLURM)."""
    from engine.launch import create_run
    from engine.recipe import load_recipe

    recipe = load_recipe(recipe_path, overrides)
    run = create_run(recipe)
    write_accelerate_config(run, recipe)
    run.write_status(state="starting", method=recipe.method.name, started=time.time())
    return run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["prepare"]:
        p = argparse.ArgumentParser(prog="python -m engine.distributed prepare")
        p.add_argument("recipe")
        p.add_argument("--set", action="append", default=[])
        args = p.parse_args(argv[1:])
        try:
            print(prepare_run(args.recipe, args.set).path)
        except RecipeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    p = argparse.ArgumentParser(prog="python -m engine.distributed", description="supervise a run's accelerate launcher")
    p.add_argument("run_dir")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--machine-rank", type=int)
    p.add_argument("--main-process-ip")
    p.add_argument("--shared", action="store_true", help="the run folder is shared by all machines (SLURM)")
    args = p.parse_args(argv)
    run = RunDir(Path(args.run_dir).resolve())
    try:
        return supervise(run, args.resume, args.machine_rank, args.main_process_ip, args.shared)
    except Exception as exc:  # before or around the launcher: still a state, not a silent crash
        import traceback

        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"
        run.append_event("failed", error=error, hint="see worker.log in the run folder", traceback=[])
        run.write_status(state="failed", error=error, hint="see worker.log in the run folder", ended=time.time())
        return 1


if __name__ == "__main__":
    sys.exit(main())
