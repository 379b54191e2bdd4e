"""The run lifecycle: run directory, typed events, preflight, launch, worker, supervisor, slurm."""
