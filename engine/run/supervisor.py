"""The supervisor of a run of many processes: one per machine, around accelerate's launcher.

A run with ``launch.num_processes > 1`` (or FSDP / DeepSpeed, or several machines) is started as
``python -m tunedeck.engine.run.supervisor RUN_DIR``: a small supervisor, detached like a single worker, that
runs ``accelerate launch --config_file RUN_DIR/accelerate_config.yaml -m tunedeck.engine.run.worker RUN_DIR``
and waits. Rank 0 writes events and status as a single worker would; every rank writes
``ranks/rank<N>.json`` and logs to ``worker-rank<N>.log``. When the launcher fails, the
supervisor names the rank that died first (torch elastic's root cause) and writes ``failed``.
"""

from __future__ import annotations

import argparse
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

from tunedeck.engine.run.accelerate_config import write_accelerate_config
from tunedeck.engine.run.rundir import TERMINAL_STATES, RunDir, pid_alive

# Seconds torch elastic gives ranks to exit after a peer died or the launcher was signalled, then SIGKILL.
SHUTDOWN_TIMEOUT_S = 120
ROOT_CAUSE = re.compile(
    r"Root Cause \(first observed failure\):\s*\[\d+\]:.*?rank\s*:\s*(\d+) \(local_rank: \d+\)\s*"
    r"exitcode\s*:\s*(-?\d+) \(pid: \d+\)[ \t]*(\S*)",
    re.S,
)


def launcher_command(run: RunDir, resume: bool = False, machine_rank: int | None = None, main_ip: str | None = None):
    """``accelerate launch`` (as a module of this interpreter) of the worker with the run's config."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(run.accelerate_config)]
    if machine_rank is not None:
        cmd += ["--machine_rank", str(machine_rank)]
    if main_ip:
        cmd += ["--main_process_ip", main_ip]
    return [*cmd, "-m", "tunedeck.engine.run.worker", str(run.path), *(["--resume"] if resume else [])]


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
    from tunedeck.engine.recipe import load_recipe

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
        run.append_event(
            "finished", step=None, note=f"machine {machine}: ranks exited cleanly; machine 0 saves the model"
        )
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m tunedeck.engine.run.supervisor", description="supervise a run's accelerate launcher")
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
