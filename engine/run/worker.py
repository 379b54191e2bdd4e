"""``python -m tunedeck.engine.run.worker RUN_DIR [--resume]``: the training process, one per run.

It owns nothing but its run directory: it reads recipe.yaml and writes events.jsonl,
status.json, checkpoints/ and adapter/ (or model/). SIGTERM asks for a checkpoint at the next
step boundary and a clean exit with state ``stopped``.

Under ``accelerate launch`` (engine/run/supervisor.py) one worker runs per rank: rank 0 alone writes
events, status and checkpoint renames; every rank logs to worker-rank<N>.log and keeps its
heartbeat in ranks/rank<N>.json; a failure is left to the supervisor, which names the rank.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

from tunedeck.engine.run.events import StepEvent, check_kind
from tunedeck.engine.run.rundir import RunDir


def _fsync_tree(path: Path) -> None:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with p.open("rb") as f:
                os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hint(exc: BaseException, recipe=None) -> str:
    """What to do about a failure, with the recipe's own numbers where they matter."""
    text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in text.lower():
        t = recipe.train if recipe is not None else None
        now = (
            f" (now per_device_train_batch_size={t.per_device_train_batch_size}, max_length={t.max_length}, "
            f"gradient_checkpointing={t.gradient_checkpointing}, adapter.kind={recipe.adapter.kind})"
            if t
            else ""
        )
        return (
            "out of memory: halve train.per_device_train_batch_size (raise gradient_accumulation_steps to keep "
            "the effective batch), lower train.max_length, set train.gradient_checkpointing: true, "
            f"or use adapter.kind: qlora{now}; tunedeck estimate recipe.yaml --probe shows what fits"
        )
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "the disk is full: free space in the runs folder, or lower train.save_total_limit, then tunedeck resume"
    from tunedeck.engine.data import DataError

    if isinstance(exc, DataError):
        return "tunedeck data inspect PATH lists every bad row with its line and field"
    if isinstance(exc, FloatingPointError):
        return "the loss diverged: lower train.learning_rate or train.max_grad_norm, and check the data"
    return "see the traceback tail; worker.log in the run folder has the whole log"


def _fault(point: str, step: int) -> None:
    """Crash injection for the tests: TUNEDECK_FAULT=<point>@<step>[:rank<N>] SIGKILLs this process (rank N's) there."""
    spec, _, rank = os.environ.get("TUNEDECK_FAULT", "").partition(":")
    if spec == f"{point}@{step}" and rank in ("", f"rank{_rank()[0]}"):
        os.kill(os.getpid(), signal.SIGKILL)


def _rank() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside a distributed launch."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class FollowerRunDir(RunDir):
    """The run directory as ranks other than 0 see it: they read it, and never write events or status."""

    def append_event(self, kind, **fields):
        check_kind(kind)  # the same refusal rank 0 gives
        return {"kind": kind, **fields}

    def write_status(self, **fields):
        return fields


class RankProbe:
    """What this rank trains on: rows seen, and a digest of each row of its first optimizer step."""

    FIRST_ROWS = 64

    def __init__(self) -> None:
        self.step = 0
        self.rows_seen = 0
        self.first_batch: list[str] = []

    def __call__(self, module, args, kwargs) -> None:  # a forward pre-hook (with_kwargs=True)
        import torch

        ids = kwargs.get("input_ids", args[0] if args else None)
        if not module.training or not torch.is_grad_enabled() or not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            return  # eval, reference and generation forwards are not training rows
        mask = kwargs.get("attention_mask")
        if kwargs.get("past_key_values") is not None or (mask is not None and mask.shape != ids.shape):
            return  # a generation forward (GRPO/RLOO/PPO rollouts), not a training batch
        self.rows_seen += ids.shape[0]
        if self.step == 0 and len(self.first_batch) < self.FIRST_ROWS:
            import hashlib

            for i in range(ids.shape[0]):
                row = ids[i][mask[i].bool()] if mask is not None and mask.dim() == 2 else ids[i]
                self.first_batch.append(hashlib.sha1(row.cpu().numpy().tobytes()).hexdigest()[:12])


def _memory() -> dict:
    """This rank's device and memory: CUDA allocated/peak/total, or the process's RSS on CPU."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        i = torch.cuda.current_device()
        return dict(
            device=f"cuda:{i}",
            memory_mib=torch.cuda.memory_allocated(i) / 2**20,
            peak_mib=torch.cuda.max_memory_allocated(i) / 2**20,
            total_mib=torch.cuda.get_device_properties(i).total_memory / 2**20,
        )
    import resource

    import psutil

    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return dict(device="cpu", memory_mib=psutil.Process().memory_info().rss / 2**20, peak_mib=peak_kib / 1024)


def _any_rank(flag: bool, device) -> bool:
    """True on every rank when ``flag`` is true on any: all ranks stop at the same step."""
    import torch
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _tokens_per_s(last: tuple[float, float | None], now: float, tokens: float | None) -> float | None:
    """Throughput since the previous log: ``last`` is its (time, num_tokens); None without token counts."""
    last_time, last_tokens = last
    if tokens is not None and last_tokens is not None and now > last_time:
        return (tokens - last_tokens) / (now - last_time)
    return None


def _step_event(state, logs: dict, tokens_per_s: float | None) -> StepEvent:
    """The ``step`` event's fields from one Trainer log holding a loss: step, max_steps, loss, lr, grad_norm,
    tokens_per_s, then the log's other metrics as they are (``logs`` loses loss, learning_rate and grad_norm)."""
    loss = float(logs.pop("loss"))
    return StepEvent(
        step=state.global_step,
        max_steps=state.max_steps,
        loss=loss,
        lr=logs.pop("learning_rate", None),
        grad_norm=logs.pop("grad_norm", None),
        tokens_per_s=tokens_per_s,
        **logs,
    )


def _nonfinite(loss: float, grad_norm) -> float | None:
    """The loss when it is not finite, else the gradient norm when that is a float and not finite, else None."""
    if not math.isfinite(loss):
        return loss
    if isinstance(grad_norm, float) and not math.isfinite(grad_norm):
        return grad_norm
    return None


def _sample_gpus(run: RunDir, step: int) -> None:
    """A ``gpu`` event with every GPU's figures; none on a machine without one."""
    from tunedeck.engine.gpu import sample_gpus

    gpus = sample_gpus()
    if gpus:
        run.append_event("gpu", step=step, devices=gpus)


def _promote_checkpoint(run: RunDir, src: Path, step: int, save_total_limit: int) -> Path:
    """The Trainer's checkpoint-N made durable as checkpoints/step-N with its COMPLETE marker (rank 0); the oldest
    complete ones beyond ``save_total_limit`` removed. Returns the new checkpoint's folder."""
    _fault("save", step)  # a kill here leaves a partial, unmarked checkpoint-N
    _fsync_tree(src)
    dst = run.checkpoints / f"step-{step:06d}"
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(src, dst)
    (dst / "COMPLETE").write_text(str(step))
    _fsync_tree(dst)
    for old in run.complete_checkpoints()[:-save_total_limit]:
        shutil.rmtree(old, ignore_errors=True)
    return dst


def make_callback(run: RunDir, save_total_limit: int, stop: threading.Event, probe: RankProbe | None = None):
    """A TrainerCallback that turns Trainer events into run-directory events (rank 0) and heartbeats (every rank)."""
    from transformers import TrainerCallback

    rank, world = _rank()
    probe = probe or RankProbe()

    class RunEventsCallback(TrainerCallback):
        def __init__(self) -> None:
            self.nonfinite_loss: float | None = None
            self._last = (time.time(), None)  # (time, num_tokens) at the previous log
            self._beat = 0.0

        def heartbeat(self, state, phase: str, force: bool = False) -> None:
            """ranks/rank<N>.json at most once a second: step, memory and the rows this rank trained on."""
            if not force and time.time() - self._beat < 1.0:
                return
            self._beat = time.time()
            run.write_rank(
                rank, world_size=world, pid=os.getpid(), host=socket.gethostname(), state=phase,
                step=state.global_step, max_steps=state.max_steps, rows_seen=probe.rows_seen,
                first_batch=probe.first_batch, **_memory(),
            )  # fmt: skip

        def on_train_begin(self, args, state, control, **kwargs):
            run.write_status(state="running", step=state.global_step, max_steps=state.max_steps)
            run.append_event("train_begin", step=state.global_step, max_steps=state.max_steps, world_size=world)
            self.heartbeat(state, "running", force=True)

        def on_step_end(self, args, state, control, **kwargs):
            _fault("step", state.global_step)
            probe.step = state.global_step
            stopping = stop.is_set() if world == 1 else _any_rank(stop.is_set(), args.device)
            if stopping:
                stop.set()
                control.should_save = True
                control.should_training_stop = True
            self.heartbeat(state, "running", force=state.global_step == 1)

        def on_train_end(self, args, state, control, **kwargs):
            self.heartbeat(state, "stopping" if stop.is_set() else "trained", force=True)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            if any(k.startswith("eval_") for k in logs):
                run.append_event("eval", step=state.global_step, **logs)
                return
            if "loss" not in logs:
                return
            now, tokens = time.time(), logs.get("num_tokens")
            tokens_per_s = _tokens_per_s(self._last, now, tokens)
            self._last = (now, tokens)
            event = _step_event(state, logs, tokens_per_s)
            run.append_event("step", **event)
            run.write_status(step=state.global_step, max_steps=state.max_steps, loss=event["loss"])
            _sample_gpus(run, state.global_step)
            nonfinite = _nonfinite(event["loss"], event["grad_norm"])
            if nonfinite is not None:
                self.nonfinite_loss = nonfinite
                control.should_training_stop = True

        def on_save(self, args, state, control, **kwargs):
            src = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if world > 1:
                import torch.distributed as dist

                dist.barrier()  # every rank has written its part (RNG state) before rank 0 renames
            if rank != 0 or not src.is_dir():
                return
            dst = _promote_checkpoint(run, src, state.global_step, save_total_limit)
            run.append_event("checkpoint", step=state.global_step, path=str(dst))

    return RunEventsCallback()


def _save_final(trainer, run: RunDir, recipe) -> Path:
    target = run.model if recipe.adapter.kind == "full" else run.adapter
    tmp = target.with_name(f".{target.name}.tmp")
    rank, world = _rank()
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    if world > 1:
        trainer.accelerator.wait_for_everyone()
    if world > 1 and recipe.launch.strategy in ("fsdp", "zero3"):
        trainer.save_model(str(tmp))  # every rank hands over its shard; rank 0 writes
    elif rank == 0:
        from tunedeck.engine.model.adapters import save_adapter

        save_adapter(trainer.model, tmp, run)  # PiSSA/OLoRA: converted to a plain LoRA for the original base
    if rank != 0:
        return target
    trainer.processing_class.save_pretrained(tmp)
    _fsync_tree(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def yield_to_the_ui(train, world: int) -> dict:
    """Lower this process's priority by ``train.nice`` and, on one machine, leave a core to the UI: torch threads =
    ``train.torch_threads``, or all available cores but one. Said in worker.log; returns what was set."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    niceness = os.nice(train.nice) if train.nice else os.nice(0)
    threads = torch.get_num_threads()
    headless = int(os.environ.get("TUNEDECK_TORCH_THREADS") or 0)  # a machine with no UI to leave a core for (CI)
    if train.torch_threads:
        threads = train.torch_threads
    elif world == 1 and headless:
        threads = headless
    elif world == 1:  # under accelerate every rank shares the cores already (OMP_NUM_THREADS)
        threads = max(1, cores - 1)
    torch.set_num_threads(threads)
    why = ("train.torch_threads" if train.torch_threads else "TUNEDECK_TORCH_THREADS" if world == 1 and headless
           else "all cores but one, for the UI" if world == 1 else "the launcher's")  # fmt: skip
    print(f"tunedeck worker: nice {niceness} (train.nice), torch threads {threads} of {cores} cores ({why})", flush=True)
    return {"nice": niceness, "threads": threads, "cores": cores}


def run_worker(run: RunDir, resume: bool = False) -> int:
    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(run.path / "tensorboard"))
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    rank, world = _rank()
    if rank != 0:
        run = FollowerRunDir(run.path)
    if world == 1:  # under accelerate the supervisor owns pid and pgid (engine/run/supervisor.py)
        run.write_status(state="starting", pid=os.getpid(), pgid=os.getpgid(0), error=None, ended=None)
    run.write_rank(rank, world_size=world, pid=os.getpid(), host=socket.gethostname(), state="starting", step=0)
    run.append_event("started", pid=os.getpid(), resume=resume, world_size=world)
    stop = threading.Event()

    def request_stop(signum, frame):
        if not stop.is_set():
            stop.set()
            run.write_status(state="stopping", stop_requested=time.time())
            run.append_event("stopping", signal=signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    recipe = None
    try:
        from tunedeck.engine.methods.common import build_trainer
        from tunedeck.engine.recipe import load_recipe

        recipe = load_recipe(run.recipe_path)
        yield_to_the_ui(recipe.train, world)
        run.checkpoints.mkdir(exist_ok=True)
        for partial in run.checkpoints.glob("checkpoint-*") if rank == 0 else []:  # a save killed half-way
            shutil.rmtree(partial, ignore_errors=True)
        probe = RankProbe()
        callback = make_callback(run, recipe.train.save_total_limit, stop, probe)
        from tunedeck.engine.model.adapters import adapter_callbacks
        from tunedeck.engine.model.loading import model_summary

        trainer = build_trainer(recipe, run, [callback, *adapter_callbacks(recipe, run)])
        trainer.model.register_forward_pre_hook(probe, with_kwargs=True)
        run.append_event("model", adapter=recipe.adapter.kind, **model_summary(trainer.model))
        checkpoints = run.complete_checkpoints()
        resume_from = str(checkpoints[-1]) if resume and checkpoints else None
        if resume and not resume_from:
            run.append_event("resumed", checkpoint=None, note="no complete checkpoint: starting at step 0")
        if resume_from:
            run.append_event("resumed", checkpoint=resume_from)
        if not stop.is_set():
            trainer.train(resume_from_checkpoint=resume_from)
        step = trainer.state.global_step
        if callback.nonfinite_loss is not None:
            raise FloatingPointError(
                f"loss (or its gradient) became {callback.nonfinite_loss} at step {step}; training stopped. "
                "Lower train.learning_rate or check the data for empty or corrupt rows"
            )
        if stop.is_set():
            run.write_rank(rank, world_size=world, pid=os.getpid(), host=socket.gethostname(), state="stopped", step=step)
            run.append_event("stopped", step=step)
            run.write_status(state="stopped", step=step, ended=time.time())
            return 0
        target = _save_final(trainer, run, recipe)
        run.write_rank(rank, world_size=world, pid=os.getpid(), host=socket.gethostname(), state="finished",
                       step=step, rows_seen=probe.rows_seen, first_batch=probe.first_batch, **_memory())  # fmt: skip
        run.append_event("finished", step=step, output=str(target))
        run.write_status(state="finished", step=step, ended=time.time(), output=str(target))
        return 0
    except BaseException as exc:  # noqa: BLE001 - every failure becomes an event and a state
        tb = traceback.format_exc()
        print(tb, file=sys.stderr, flush=True)
        error = f"{type(exc).__name__}: {exc}"
        hint = _hint(exc, recipe)
        if world > 1:  # the supervisor writes `failed`, naming the rank that died first
            run.write_rank(rank, world_size=world, pid=os.getpid(), host=socket.gethostname(), state="failed",
                           error=error, hint=hint, traceback=tb.splitlines()[-15:])  # fmt: skip
            return 1
        try:
            run.append_event("failed", error=error, hint=hint, traceback=tb.splitlines()[-15:])
            run.write_status(state="failed", error=error, hint=hint, ended=time.time())
        except OSError:  # the disk may be the thing that is full: worker.log still has it
            print(f"could not record the failure: {error}", file=sys.stderr, flush=True)
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m tunedeck.engine.run.worker RUN_DIR [--resume]", file=sys.stderr)
        return 2
    run = RunDir(Path(argv[0]).resolve())
    rank, world = _rank()
    if world > 1:  # every rank its own log; the launcher's output stays in worker.log
        fd = os.open(run.rank_log(rank), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        print(f"tunedeck worker: rank {rank} of {world}, pid {os.getpid()}, host {socket.gethostname()}", flush=True)
    return run_worker(run, resume="--resume" in argv)


if __name__ == "__main__":
    sys.exit(main())
