"""``python -m engine.worker RUN_DIR [--resume]``: the training process, one per run.

It owns nothing but its run directory: it reads recipe.yaml and writes events.jsonl,
status.json, checkpoints/ and adapter/ (or model/). SIGTERM asks for a checkpoint at the next
step boundary and a clean exit with state ``stopped``.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

from engine.runs import RunDir


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


def _hint(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in text.lower():
        return "out of memory: lower train.per_device_train_batch_size or train.max_length, set train.gradient_checkpointing: true, or use adapter.kind: qlora"
    if isinstance(exc, OSError) and exc.errno == 28:
        return "the disk is full: free space in the runs folder or lower train.save_total_limit"
    return "see the traceback tail; worker.log in the run folder has the whole log"


def make_callback(run: RunDir, save_total_limit: int):
    """A TrainerCallback that turns Trainer events into run-directory events."""
    from transformers import TrainerCallback

    class RunEventsCallback(TrainerCallback):
        def __init__(self) -> None:
            self.stop_requested = False
            self.nonfinite_loss: float | None = None
            self._last = (time.time(), None)  # (time, num_tokens) at the previous log

        def on_train_begin(self, args, state, control, **kwargs):
            run.write_status(state="running", step=state.global_step, max_steps=state.max_steps)
            run.append_event("train_begin", step=state.global_step, max_steps=state.max_steps)

        def on_step_end(self, args, state, control, **kwargs):
            if self.stop_requested:
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            if any(k.startswith("eval_") for k in logs):
                run.append_event("eval", step=state.global_step, **logs)
                return
            if "loss" not in logs:
                return
            now, tokens = time.time(), logs.get("num_tokens")
            last_time, last_tokens = self._last
            tokens_per_s = None
            if tokens is not None and last_tokens is not None and now > last_time:
                tokens_per_s = (tokens - last_tokens) / (now - last_time)
            self._last = (now, tokens)
            loss = float(logs.pop("loss"))
            event = dict(
                step=state.global_step,
                max_steps=state.max_steps,
                loss=loss,
                lr=logs.pop("learning_rate", None),
                grad_norm=logs.pop("grad_norm", None),
                tokens_per_s=tokens_per_s,
                **logs,
            )
            run.append_event("step", **event)
            run.write_status(step=state.global_step, max_steps=state.max_steps, loss=loss)
            from engine.gpu import sample_gpus

            gpus = sample_gpus()
            if gpus:
                run.append_event("gpu", step=state.global_step, devices=gpus)
            if not math.isfinite(loss):
                self.nonfinite_loss = loss
                control.should_training_stop = True

        def on_save(self, args, state, control, **kwargs):
            src = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if not src.is_dir():
                return
            _fsync_tree(src)
            dst = run.checkpoints / f"step-{state.global_step:06d}"
            if dst.exists():
                shutil.rmtree(dst)
            os.replace(src, dst)
            (dst / "COMPLETE").write_text(str(state.global_step))
            _fsync_tree(dst)
            for old in run.complete_checkpoints()[:-save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
            run.append_event("checkpoint", step=state.global_step, path=str(dst))

    return RunEventsCallback()


def _save_final(trainer, run: RunDir, recipe) -> Path:
    target = run.model if recipe.adapter.kind == "full" else run.adapter
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(tmp, safe_serialization=True)
    trainer.processing_class.save_pretrained(tmp)
    _fsync_tree(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def run_worker(run: RunDir, resume: bool = False) -> int:
    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(run.path / "tensorboard"))
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    run.write_status(state="starting", pid=os.getpid(), pgid=os.getpgid(0), started=time.time())
    run.append_event("started", pid=os.getpid(), resume=resume)
    callback = None

    def request_stop(signum, frame):
        if callback is not None:
            callback.stop_requested = True
        run.write_status(state="stopping")
        run.append_event("stopping", signal=signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        from engine.methods import build_trainer
        from engine.recipe import load_recipe

        recipe = load_recipe(run.recipe_path)
        run.checkpoints.mkdir(exist_ok=True)
        for partial in run.checkpoints.glob("checkpoint-*"):  # a save killed half-way: never resumed from
            shutil.rmtree(partial, ignore_errors=True)
        callback = make_callback(run, recipe.train.save_total_limit)
        trainer = build_trainer(recipe, run, [callback])
        checkpoints = run.complete_checkpoints()
        resume_from = str(checkpoints[-1]) if resume and checkpoints else None
        if resume_from:
            run.append_event("resumed", checkpoint=resume_from)
        trainer.train(resume_from_checkpoint=resume_from)
        step = trainer.state.global_step
        if callback.nonfinite_loss is not None:
            raise FloatingPointError(
                f"loss became {callback.nonfinite_loss} at step {step}: lower train.learning_rate "
                "or check the data for empty or corrupt rows"
            )
        if callback.stop_requested:
            run.append_event("stopped", step=step)
            run.write_status(state="stopped", step=step, ended=time.time())
            return 0
        target = _save_final(trainer, run, recipe)
        run.append_event("finished", step=step, output=str(target))
        run.write_status(state="finished", step=step, ended=time.time(), output=str(target))
        return 0
    except BaseException as exc:  # noqa: BLE001 - every failure becomes an event and a state
        tb = traceback.format_exc()
        print(tb, file=sys.stderr, flush=True)
        error = f"{type(exc).__name__}: {exc}"
        run.append_event("failed", error=error, hint=_hint(exc), traceback=tb.splitlines()[-15:])
        run.write_status(state="failed", error=error, ended=time.time())
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m engine.worker RUN_DIR [--resume]", file=sys.stderr)
        return 2
    return run_worker(RunDir(Path(argv[0]).resolve()), resume="--resume" in argv)


if __name__ == "__main__":
    sys.exit(main())
