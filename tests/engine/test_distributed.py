"""The launch section, the accelerate configs it becomes (read back by accelerate's own parsers), SLURM scripts."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tunedeck.engine.recipe import RecipeError, recipe_from_dict
from tunedeck.engine.run.accelerate_config import accelerate_config, check_launchable, nvidia_gpus
from tunedeck.engine.run.rundir import RunDir
from tunedeck.engine.run.supervisor import launcher_command, root_cause


def recipe(launch: dict | None = None, **sections):
    return recipe_from_dict({"model": {"name_or_path": "m"}, "data": {"train": "d.jsonl"}, "launch": launch or {}, **sections})


@pytest.mark.parametrize(
    ("launch", "sections", "field", "words"),
    [
        ({"num_processes": 0}, {}, "launch.num_processes", "at least 1"),
        ({"num_machines": 2, "machine_rank": 2, "num_processes": 4, "strategy": "ddp", "main_process_ip": "10.0.0.1"},
         {}, "launch.machine_rank", "between 0 and num_machines-1 (1)"),
        ({"num_machines": 2, "num_processes": 3, "strategy": "ddp", "main_process_ip": "10.0.0.1"}, {},
         "launch.num_processes", "does not split evenly"),
        ({"num_processes": 2}, {}, "launch.strategy", "single runs one process"),
        ({"num_processes": 1, "strategy": "ddp"}, {}, "launch.num_processes", "ddp needs at least 2"),
        ({"num_machines": 2, "num_processes": 2, "strategy": "ddp"}, {}, "launch.main_process_ip", "machine_rank 0"),
        ({"num_processes": 2, "strategy": "ddp", "main_process_port": 70000}, {}, "launch.main_process_port", "TCP port"),
        ({"num_processes": 2, "strategy": "fsdp", "offload_optimizer": True}, {}, "launch.offload_optimizer",
         "offload_params: true"),
        ({"num_processes": 2, "strategy": "ddp", "offload_optimizer": True}, {}, "launch.offload_optimizer", "zero2 or zero3"),
        ({"num_processes": 2, "strategy": "zero2", "offload_params": True}, {}, "launch.offload_params", "zero3 and fsdp"),
        ({"num_processes": 2, "strategy": "fsdp"}, {"adapter": {"load_in_8bit": True}}, "adapter.load_in_8bit",
         "cannot be sharded"),
        ({"num_processes": 2, "strategy": "zero3"}, {"adapter": {"kind": "qlora"}}, "adapter.bnb_4bit_compute_dtype",
         "stores the 4-bit weights"),
        ({"num_processes": 2, "strategy": "ddp", "mixed_precision": "bf16"}, {"train": {"bf16": False}},
         "launch.mixed_precision", "contradicts train.bf16: false"),
    ],
)  # fmt: skip
def test_bad_launch_sections_are_refused_naming_the_field(launch, sections, field, words):
    with pytest.raises(RecipeError) as e:
        recipe(launch, **sections)
    assert e.value.field_path == field and words in str(e.value)


def test_single_stays_off_accelerate_and_the_rest_goes_through_it():
    assert not recipe().launch.distributed
    assert recipe({"num_processes": 2, "strategy": "ddp"}).launch.distributed
    assert recipe({"strategy": "zero3", "offload_params": True}).launch.distributed  # one GPU, ZeRO-3 offload
    qlora = recipe({"num_processes": 2, "strategy": "fsdp"}, adapter={"kind": "qlora", "bnb_4bit_compute_dtype": "bfloat16"})
    assert qlora.adapter.kind == "qlora"


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="DeepSpeed is installed here")
def test_zero_without_deepspeed_says_how_to_install_it():
    with pytest.raises(RecipeError) as e:
        check_launchable(recipe({"num_processes": 2, "strategy": "zero2"}))
    assert e.value.field_path == "launch.strategy" and "pip install 'tunedeck[deepspeed]'" in str(e.value)


@pytest.mark.skipif(nvidia_gpus() > 0, reason="this machine has NVIDIA GPUs")
def test_fsdp_on_a_machine_without_gpus_is_refused_before_launch():
    with pytest.raises(RecipeError) as e:
        check_launchable(recipe({"num_processes": 2, "strategy": "fsdp"}))
    assert "needs NVIDIA GPUs" in str(e.value) and "ddp (gloo)" in str(e.value)
    check_launchable(recipe({"num_processes": 2, "strategy": "ddp"}))  # gloo DDP runs on CPU


def parsed_by_accelerate(tmp_path: Path, config: dict):
    """The config file as ``accelerate launch --config_file`` reads it: its args and the environment of each rank."""
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    path = tmp_path / "accelerate_config.yaml"
    path.write_text(yaml.safe_dump(config))
    ClusterConfig.from_yaml_file(str(path))  # raises on any key accelerate does not know
    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "tunedeck.engine.run.worker", "RUN"])
    args, defaults, _ = _validate_launch_command(args)
    if args.use_deepspeed:
        # launch_command() sets this before calling the DeepSpeed launcher
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    return args, env


def test_ddp_config_is_accelerates_multi_gpu_launch(tmp_path):
    config = accelerate_config(recipe({"num_processes": 2, "strategy": "ddp"}), use_cpu=True)
    args, env = parsed_by_accelerate(tmp_path, config)
    assert args.multi_gpu and not args.use_fsdp and not args.use_deepspeed
    assert args.nproc_per_node == "2" and env["ACCELERATE_MIXED_PRECISION"] == "no"
    assert config["use_cpu"] is True and config["main_process_port"] == 0  # one machine: a free port


def test_two_machine_config_rendezvous_at_machine_0(tmp_path):
    launch = {"num_processes": 8, "strategy": "ddp", "num_machines": 2, "machine_rank": 1, "main_process_ip": "10.1.2.3"}
    args, _ = parsed_by_accelerate(tmp_path, accelerate_config(recipe(launch), use_cpu=False))
    assert (args.nnodes, args.node_rank, args.nproc_per_node) == ("2", 1, "4")
    assert (args.rdzv_backend, args.rdzv_endpoint) == ("static", "10.1.2.3:29500")


@pytest.mark.parametrize("offload", [False, True])
def test_fsdp_config_becomes_the_fsdp_plugin(tmp_path, offload):
    from accelerate.utils import FullyShardedDataParallelPlugin, patch_environment

    config = accelerate_config(recipe({"num_processes": 4, "strategy": "fsdp", "offload_params": offload}), use_cpu=False)
    args, env = parsed_by_accelerate(tmp_path, config)
    assert args.use_fsdp and env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "1"
    assert env["FSDP_SYNC_MODULE_STATES"] == env["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "true"
    # Those two make the plugin ask for the current CUDA device, which a CPU machine has not: checked above.
    env.update(FSDP_SYNC_MODULE_STATES="false", FSDP_CPU_RAM_EFFICIENT_LOADING="false")
    with patch_environment(**{k: v for k, v in env.items() if k.startswith(("FSDP_", "ACCELERATE_"))}):
        plugin = FullyShardedDataParallelPlugin()
    assert plugin.sharding_strategy.name == "FULL_SHARD"
    assert plugin.cpu_offload.offload_params is offload
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"
    assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"


@pytest.mark.parametrize(
    ("strategy", "offload_optimizer", "offload_params"),
    [("zero2", False, False), ("zero2", True, False), ("zero3", False, False), ("zero3", True, True)],
)
def test_deepspeed_config_becomes_the_deepspeed_plugin(tmp_path, strategy, offload_optimizer, offload_params):
    from accelerate.utils import DeepSpeedPlugin, patch_environment

    r = recipe(
        {"num_processes": 4, "strategy": strategy, "offload_optimizer": offload_optimizer, "offload_params": offload_params},
        train={"gradient_accumulation_steps": 4, "max_grad_norm": 0.5},
    )
    args, env = parsed_by_accelerate(tmp_path, accelerate_config(r, use_cpu=False))
    assert args.use_deepspeed and env["ACCELERATE_USE_DEEPSPEED"] == "true"
    with patch_environment(**{k: v for k, v in env.items() if k.startswith("ACCELERATE_")}):
        plugin = DeepSpeedPlugin()
    zero = plugin.deepspeed_config["zero_optimization"]
    assert zero["stage"] == plugin.zero_stage == int(strategy[-1])
    assert zero["offload_optimizer"]["device"] == ("cpu" if offload_optimizer else "none")
    assert zero["offload_param"]["device"] == ("cpu" if offload_params else "none")
    assert plugin.deepspeed_config["gradient_accumulation_steps"] == 4 and plugin.gradient_clipping == 0.5
    assert plugin.zero3_init_flag is (strategy == "zero3")
    assert zero["stage3_gather_16bit_weights_on_model_save"] is (strategy == "zero3")  # a loadable final model


def test_launcher_runs_the_worker_module_under_accelerate_with_the_runs_config(tmp_path):
    run = RunDir(tmp_path)
    cmd = launcher_command(run, resume=True, machine_rank=1, main_ip="node-a")
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--config_file") + 1] == str(tmp_path / "accelerate_config.yaml")
    assert cmd[cmd.index("--machine_rank") + 1] == "1" and cmd[cmd.index("--main_process_ip") + 1] == "node-a"
    assert cmd[-4:] == ["-m", "tunedeck.engine.run.worker", str(tmp_path), "--resume"]


def test_the_failed_rank_is_read_from_torch_elastics_own_report():
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    rank1 = ProcessFailure(local_rank=1, pid=4242, exitcode=-9, error_file="/nonexistent")
    rank1.timestamp -= 1  # died first
    rank0 = ProcessFailure(local_rank=0, pid=4241, exitcode=-15, error_file="/nonexistent")
    report = ChildFailedError("tunedeck.engine.run.worker", {0: rank0, 1: rank1}).format_msg()
    assert root_cause(f"warnings...\n{report}\naccelerate launch exited with 1") == (1, -9, "SIGKILL")
    assert root_cause("Traceback ... ConnectionError: port in use") is None


def test_slurm_script_starts_one_launcher_per_node(tmp_path):
    from tunedeck.engine.run.slurm import slurm_script

    script = slurm_script(tmp_path / "recipe.yaml", 2, 4, ["train.max_steps=50"], time_limit="02:00:00")
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=4", "#SBATCH --time=02:00:00"):
        assert line in script
    assert 'MAIN_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)' in script
    assert "launch.num_machines=2" in script and "launch.num_processes=8" in script
    [srun] = [line for line in script.splitlines() if line.startswith("srun ")]
    assert "--ntasks-per-node=1" in srun and '--machine-rank "$SLURM_NODEID"' in srun and '"$MAIN_IP"' in srun


def test_slurm_script_runs_on_a_fake_allocation(tmp_path, demo_assets):
    """The script itself under bash: stand-ins for scontrol/srun only (no cluster here); the run folder is real, and
    the preflight ran on the first node before it (a recipe it refuses starts nothing)."""
    (tmp_path / "ws").mkdir()
    recipe_path = tmp_path / "ws" / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump({"model": {"name_or_path": str(demo_assets.base)},
                                           "data": {"train": str(demo_assets.sft)}}))  # fmt: skip
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text('#!/bin/bash\nprintf "gpu-a\\ngpu-b\\n"\n')
    (bin_dir / "srun").write_text('#!/bin/bash\nprintf "%s\\n" "$@" > "$SRUN_ARGS"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    proc = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui.cli.main", "launch-script", "--slurm", str(recipe_path), "--nodes", "2", "--gpus-per-node", "2"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    script = recipe_path.with_name("recipe.sbatch")
    assert f"wrote {script}" in proc.stdout and "ddp, 4 processes" in proc.stdout
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "gpu-[a-b]",
           "SRUN_ARGS": str(tmp_path / "srun.args"), "PYTHONPATH": str(Path(__file__).parents[2])}  # fmt: skip
    job = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert job.returncode == 0, job.stderr
    run_dir = Path(job.stdout.split("tunedeck run: ")[1].split(" ")[0])
    config = yaml.safe_load((run_dir / "accelerate_config.yaml").read_text())
    assert (config["num_machines"], config["num_processes"], config["main_process_ip"]) == (2, 4, "gpu-a")
    srun_args = (tmp_path / "srun.args").read_text().splitlines()
    assert srun_args[-2] == "-c" and '-m tunedeck.engine.run.supervisor "$RUN_DIR" --shared' in srun_args[-1]


def test_a_rank_that_raised_fails_the_run_with_its_own_error_and_hint(tmp_path):
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from tunedeck.engine.run.supervisor import failure_event

    run = RunDir(tmp_path)
    run.write_rank(0, pid=1, state="failed", error="DataError: data.jsonl:3: messages: empty",
                   hint="tunedeck data inspect PATH lists every bad row")  # fmt: skip
    run.rank_log(0).write_text("Traceback (most recent call last):\n  ...\nDataError: data.jsonl:3: messages: empty\n")
    report = ChildFailedError("tunedeck.engine.run.worker", {0: ProcessFailure(local_rank=0, pid=1, exitcode=1, error_file="/none")})
    run.log_path.write_text(report.format_msg() + "\naccelerate launch exited with 1\n")
    event = failure_event(run, 1, run.log_path)
    assert event["error"] == "rank 0 exited with code 1: DataError: data.jsonl:3: messages: empty"
    assert event["hint"].startswith("tunedeck data inspect") and event["rank"] == 0
    assert event["traceback"][-1] == "DataError: data.jsonl:3: messages: empty"

    run.log_path.write_text("ConnectionError: Tried to launch distributed communication on port 29500\n")
    event = failure_event(run, 1, run.log_path)  # the launcher died before any rank
    assert "before any rank reported" in event["error"] and "port 29500" in event["traceback"][-1]
