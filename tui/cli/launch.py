"""``tunedeck launch-script``: a cluster job script that starts one accelerate launcher per node."""

from __future__ import annotations

from pathlib import Path

from tunedeck.engine.recipe import allowed


def cmd_launch_script(args) -> int:
    from tunedeck.engine.recipe import load_recipe
    from tunedeck.engine.run.slurm import slurm_script

    recipe_path = Path(args.recipe).resolve()
    strategy = args.strategy or load_recipe(recipe_path, args.set).launch.strategy
    if strategy == "single":
        strategy = "ddp"  # one process per GPU: a full copy each
    overrides = [*args.set, f"launch.strategy={strategy}"]
    total = args.nodes * args.gpus_per_node
    # Refuse now what the job would refuse later; the real address of machine 0 is known only in the job.
    load_recipe(recipe_path, [*overrides, f"launch.num_machines={args.nodes}", f"launch.num_processes={total}",
                              "launch.main_process_ip=machine-0"])  # fmt: skip
    out = Path(args.output or recipe_path.with_name(f"{recipe_path.stem}.sbatch")).resolve()
    out.write_text(
        slurm_script(recipe_path, args.nodes, args.gpus_per_node, overrides, job_name=args.job_name,
                     time_limit=args.time, partition=args.partition, port=args.port),  # fmt: skip
        encoding="utf-8",
    )
    out.chmod(0o755)
    print(f"wrote {out}: {args.nodes} node(s) x {args.gpus_per_node} GPU(s), {strategy}, {total} processes")
    print(f"submit it with: sbatch {out}")
    return 0


def add_launch_commands(sub) -> None:
    sp = sub.add_parser("launch-script", help="write a cluster job script: one accelerate launcher per node")
    sp.add_argument("recipe")
    sp.add_argument("--slurm", action="store_true", required=True, help="an sbatch script (the kind supported)")
    sp.add_argument("--nodes", type=int, default=2, help="machines (default: 2)")
    sp.add_argument("--gpus-per-node", type=int, default=8, help="GPUs, so processes, per machine (default: 8)")
    sp.add_argument("--strategy", choices=allowed("launch.strategy"), help="default: the recipe's (single: ddp)")
    sp.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a recipe field")
    sp.add_argument("--output", "-o", help="where to write it (default: RECIPE.sbatch beside the recipe)")
    sp.add_argument("--job-name", default="tunedeck")
    sp.add_argument("--time", help="SLURM time limit, e.g. 24:00:00")
    sp.add_argument("--partition", help="SLURM partition")
    sp.add_argument("--port", type=int, default=29500, help="rendezvous port on machine 0 (default: 29500)")
    sp.set_defaults(func=cmd_launch_script)

