"""The memory probe: a few real training steps with the worker's own trainer, peak memory measured and set
beside tunedeck.engine.model.estimate's figure for the same batch (``tunedeck estimate --probe``)."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunedeck.engine.model.estimate import device_budget, estimate
from tunedeck.engine.recipe import Recipe
from tunedeck.engine.units import GIB


def _rss() -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def _hwm() -> int:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def _release_free_memory() -> None:
    """Hand memory freed by Python and torch back to the OS, so the next RSS growth is real growth."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_hwm() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _tensor_meter_class():
    """A TorchDispatchMode counting the bytes of live tensor storages: CUDA's max_memory_allocated, on any device."""
    import weakref

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_map_only
    from torch.utils.weak import WeakIdKeyDictionary

    class TensorMeter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.seen = WeakIdKeyDictionary()
            self.current = 0
            self.peak = 0

        def _free(self, n: int) -> None:
            self.current -= n

        def track(self, t) -> None:
            if t.device.type == "meta" or not isinstance(t, torch.Tensor):
                return
            try:
                st = t.untyped_storage()
            except (NotImplementedError, RuntimeError):
                return
            if st in self.seen:
                return
            n = st.nbytes()
            self.seen[st] = weakref.finalize(st, self._free, n)
            self.current += n
            self.peak = max(self.peak, self.current)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            tree_map_only(torch.Tensor, self.track, out)
            return out

    return TensorMeter


def _probe_recipe(recipe: Recipe, data_file: Path, runs_dir: Path, batch: int, steps: int) -> Recipe:
    r = dataclasses.replace(recipe)
    r.data = dataclasses.replace(recipe.data, train=str(data_file), eval=None, eval_size=0.0)
    r.train = dataclasses.replace(
        recipe.train,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        max_steps=steps,
        save_steps=10**9,
        logging_steps=1,
        report_to="none",
        runs_dir=str(runs_dir),
    )
    return r


def _subset(recipe: Recipe, rows: int, path: Path) -> Path:
    from tunedeck.engine.data import load_rows

    ds = load_rows(recipe.data.train)
    ds = ds.shuffle(seed=recipe.train.seed).select(range(min(rows, len(ds))))
    ds.to_json(str(path), lines=True, force_ascii=False)
    return path


def _run_steps(recipe: Recipe, workdir: Path, device: str) -> dict[str, Any]:
    """Build the worker's trainer for ``recipe``, run its steps, and measure peak memory.

    ``peak`` counts live tensor bytes (torch.cuda.max_memory_allocated on CUDA, a dispatch-mode
    count of tensor storages elsewhere); ``rss_peak`` is the process's peak RSS growth (CPU only).
    """
    import torch

    from tunedeck.engine.methods.common import build_trainer
    from tunedeck.engine.run.rundir import RunDir

    run = RunDir(Path(tempfile.mkdtemp(prefix="probe-", dir=workdir)))
    run.checkpoints.mkdir()
    shapes: list[tuple[int, ...]] = []
    cuda = device == "cuda"
    trainer = None
    try:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            start = torch.cuda.memory_allocated()
        else:
            _release_free_memory()
            _reset_hwm()
            start = _rss()
        trainer = build_trainer(recipe, run, [])
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)  # the probe's caller owns stdout (--json)
        trainer.remove_callback(ProgressCallback)
        embeddings = trainer.model.get_input_embeddings()
        hook = embeddings.register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))

        def count_labelled(module, args, kwargs) -> None:  # next-token labels the loss head projects
            labels = kwargs.get("labels")
            if labels is not None and labels.dim() == 2:
                labelled.append(int((labels[:, 1:] != -100).sum()))

        labelled: list[int] = []
        label_hook = trainer.model.register_forward_pre_hook(count_labelled, with_kwargs=True)
        t0 = time.time()
        if cuda:
            weights = torch.cuda.memory_allocated() - start
            torch.cuda.reset_peak_memory_stats()
            with contextlib.redirect_stdout(sys.stderr):
                trainer.train()
            torch.cuda.synchronize()
            peak, rss_peak = torch.cuda.max_memory_allocated() - start, None
            reserved = torch.cuda.max_memory_reserved()
        else:
            meter = _tensor_meter_class()()
            for t in [*trainer.model.parameters(), *trainer.model.buffers()]:
                meter.track(t)
            weights = meter.current
            with meter, contextlib.redirect_stdout(sys.stderr):
                trainer.train()
            peak, rss_peak, reserved = meter.peak, _hwm() - start, None
        seconds = time.time() - t0
        hook.remove()
        label_hook.remove()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    finally:
        del trainer
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    train_shapes = [s for s in shapes if len(s) == 2]
    return {
        "weights": weights,
        "peak": peak,
        "rss_peak": rss_peak,
        "reserved_peak": reserved,
        "seconds": round(seconds, 2),
        "max_seq": max((s[1] for s in train_shapes), default=0),
        "max_labelled": max(labelled, default=None),
        "losses": losses,
    }


def probe(
    recipe: Recipe,
    *,
    steps: int = 3,
    search: bool = True,
    cap: int | None = None,
    progress: Callable[[str], None] = lambda m: None,
) -> dict[str, Any]:
    """Run ``steps`` real training steps with the worker's own trainer and measure peak memory.

    On CUDA the figure is torch.cuda.max_memory_allocated (the CUDA context is not in it). On CPU
    it is the growth of the process's peak RSS, so it includes allocator caching and Python
    objects; "fits" on CPU means fits in the host RAM available now. With ``search``, batch sizes
    1, 2, 4, ... (up to ``cap``: 64 on CPU, 1024 on CUDA) run 2 steps each until one does not fit.
    """
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    cap = cap or (1024 if device == "cuda" else 64)
    batch = recipe.train.per_device_train_batch_size
    budget, budget_what = device_budget(device)
    result: dict[str, Any] = {"device": device, "steps": steps, "budget_bytes": int(budget), "budget": budget_what}
    with tempfile.TemporaryDirectory(prefix="tunedeck-probe-") as tmp:
        workdir = Path(tmp)
        rows = max(batch, cap if search else 0, 1) * steps
        data = _subset(recipe, rows, workdir / "probe.jsonl")
        sizes = sorted({batch} | ({2**k for k in range(int(math.log2(cap)) + 1)} if search else set()))
        if device != "cuda":
            progress("probe: warming up (one step at batch 1, not reported)")
            _run_steps(_probe_recipe(recipe, data, workdir, 1, 1), workdir, device)  # lazy initialisation
        runs: list[dict[str, Any]] = []
        largest = 0
        for b in sizes:
            if search and b != batch and estimate(recipe, device=device, batch=b).breakdown.peak > budget:
                runs.append({"batch": b, "fits": False, "skipped": "the estimate alone exceeds the budget"})
                break
            n_steps = steps if b == batch else 2
            progress(f"probe: batch {b}, {n_steps} steps on {device}")
            try:
                m = _run_steps(_probe_recipe(recipe, data, workdir, b, n_steps), workdir, device)
            except torch.OutOfMemoryError:
                runs.append({"batch": b, "fits": False, "error": "out of memory"})
                break
            fits = m["rss_peak"] is None or m["rss_peak"] < budget
            est = estimate(recipe, device=device, batch=b, seq=m["max_seq"] or None, labelled=m["max_labelled"])
            row = {
                "batch": b,
                "seq": m["max_seq"],
                "labelled": m["max_labelled"],
                "fits": fits,
                "measured_peak": m["peak"],
                "estimate_peak": round(est.breakdown.peak),
                "ratio": round(est.breakdown.peak / m["peak"], 3) if m["peak"] else None,
                "measured_weights": m["weights"],
                "estimate_weights": round(est.breakdown.weights + est.breakdown.adapter_weights),
                "rss_peak": m["rss_peak"],
                "reserved_peak": m["reserved_peak"],
                "seconds": m["seconds"],
                "losses": m["losses"],
            }
            runs.append(row)
            if not fits:
                break
            largest = b
        result["runs"] = runs
        result["recipe_batch"] = next((r for r in runs if r["batch"] == batch), None)
        result["largest_batch_that_fits"] = largest
        result["search_cap"] = cap if search else None
        if device == "cuda":
            result["note"] = "cuda: measured = torch.cuda.max_memory_allocated; the CUDA context comes on top"
        else:
            result["note"] = (
                "cpu: measured = peak bytes of live tensors (what max_memory_allocated counts on CUDA); "
                f"'fits' means the process's peak RSS growth fits in {budget_what} ({budget / GIB:.1f} GiB)"
                + (f", searched up to batch {cap}" if search else "")
            )
    return result
