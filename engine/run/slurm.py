"""SLURM: an sbatch script that runs one supervisor (tunedeck.engine.run.supervisor) per node on one shared run folder."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from tunedeck.engine.recipe import RecipeError, load_recipe
from tunedeck.engine.run.launch import create_run
from tunedeck.engine.run.preflight import PreflightError
from tunedeck.engine.run.rundir import RunDir


def slurm_script(recipe_path: Path, nodes: int, gpus_per_node: int, overrides: list[str], job_name: str = "tunedeck",
                 time_limit: str | None = None, partition: str | None = None, port: int = 29500) -> str:  # fmt: skip
    """An sbatch script: one accelerate launcher per node, machine_rank from SLURM_NODEID, machine 0 as rendezvous."""
    python = sys.executable
    sets = [*overrides, f"launch.num_machines={nodes}", f"launch.num_processes={nodes * gpus_per_node}",
            f"launch.main_process_port={port}"]  # fmt: skip
    prepare = " ".join(
        [shlex.quote(python), "-m", "tunedeck.engine.run.slurm", "prepare", shlex.quote(str(recipe_path))]
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
        f'{shlex.quote(python)} -m tunedeck.engine.run.supervisor "$RUN_DIR" --shared '
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
    from tunedeck.engine.run.preflight import preflight

    checked = preflight(load_recipe(recipe_path, overrides), lambda m: print(m, file=sys.stderr, flush=True))
    recipe = checked.recipe
    run = create_run(recipe)  # writes the accelerate config (num_processes > 1 or num_machines > 1)
    for note in checked.notes:
        run.append_event("warning", message=note)
    run.write_status(state="starting", method=recipe.method.name, started=time.time())
    return run


def main(argv: list[str] | None = None) -> int:
    """``python -m tunedeck.engine.run.slurm prepare RECIPE [--set k=v ...]``: print the new run folder (the script runs it)."""
    p = argparse.ArgumentParser(prog="python -m tunedeck.engine.run.slurm")
    p.add_argument("command", choices=["prepare"])
    p.add_argument("recipe")
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        print(prepare_run(args.recipe, args.set).path)
    except (RecipeError, PreflightError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
