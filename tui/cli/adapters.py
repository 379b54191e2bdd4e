"""``tunedeck estimate RECIPE`` and ``tunedeck adapter targets RECIPE``: the Adapter screen's headless twins.

``add_adapter_commands(sub)`` registers both on tunedeck.tui.cli.main's subparsers; ``python -m tunedeck.tui.cli.adapters``
runs them on their own. Heavy libraries load inside the commands.
"""

from __future__ import annotations

import json
import sys
from typing import get_args

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _load(args):
    from tunedeck.engine.recipe import load_recipe

    return load_recipe(args.recipe, args.set)


def _guarded(command):
    """Bad input (recipe, model path) is a usage error with a message, never a traceback."""

    def run(args) -> int:
        from tunedeck.engine.model.loading import ModelLoadError
        from tunedeck.engine.recipe import RecipeError

        try:
            return command(args)
        except (RecipeError, ModelLoadError, FileNotFoundError) as e:
            _err(str(e))
            return EXIT_USAGE

    run.__name__ = command.__name__
    return run


# --------------------------------------------------------------------------- adapter targets


@_guarded
def cmd_adapter_targets(args) -> int:
    from tunedeck.engine.model.adapters import discover_targets, parameter_lines, parameter_math, resolve_target_modules
    from tunedeck.engine.model.loading import meta_model

    recipe = _load(args)
    model = meta_model(recipe)
    groups = discover_targets(model)
    chosen = (
        {g.name for g in resolve_target_modules(recipe.adapter.target_modules, groups)}
        if recipe.adapter.kind != "full"
        else set()
    )
    pm = parameter_math(recipe, model)
    if args.json:
        out = {
            "model": recipe.model.name_or_path,
            "target_modules": recipe.adapter.target_modules,
            "linear_modules": [g.to_dict() | {"selected": g.name in chosen} for g in groups],
            "presets": {
                "all-linear": [g.name for g in groups if g.role != "head"],
                "attention": [g.name for g in groups if g.role == "attention"],
                "mlp": [g.name for g in groups if g.role == "mlp"],
            },
            "params": pm.to_dict(),
        }
        print(json.dumps(out, indent=2))
        return EXIT_OK
    print(
        f"linear modules of {recipe.model.name_or_path} (selected by target_modules={recipe.adapter.target_modules!r}: *)"
    )
    print(f"  {'name':<16} {'role':<10} {'count':>5}  {'shape (out x in)':<18} {'params':>14}")
    for g in groups:
        shape = f"{g.shape[0]} x {g.shape[1]}" + (" (varies)" if len(g.shapes) > 1 else "")
        mark = "*" if g.name in chosen else " "
        print(f"{mark} {g.name:<16} {g.role:<10} {g.count:>5}  {shape:<18} {g.params:>14,}")
    print("presets: all-linear (every linear but the head), attention, mlp; or a list of names, or a regex")
    print()
    print("\n".join(parameter_lines(pm)))
    return EXIT_OK


# --------------------------------------------------------------------------- estimate


def _fmt(n: float) -> str:
    from tunedeck.engine.units import fmt_bytes

    return fmt_bytes(n) if n else "0"


def _estimate_text(est, budget: tuple[float, str] | None) -> list[str]:
    from tunedeck.engine.model.estimate import estimate_lines

    a, p = est.arch, est.precision
    mixed = "bf16 mixed precision" if p.autocast else "no mixed precision"
    quant = {"nf4": "4-bit NF4", "fp4": "4-bit FP4", "int8": "8-bit"}.get(p.quant or "", "")
    lines = [
        f"recipe   {est.recipe}",
        f"model    {a.architecture} ({a.model_type}): {a.params:,} params, {a.layers} layers, hidden {a.hidden}, "
        f"intermediate {a.intermediate}, {a.heads} heads ({a.kv_heads} kv), vocab {a.vocab}",
        f"device   {est.device}: weights {quant + (' + ' if quant else '')}{p.weight_dtype}, {mixed}",
        f"train    {est.method}, {est.kind}, batch {est.batch} x {est.seq} tokens, gradient checkpointing "
        f"{'on' if est.gradient_checkpointing else 'off'}",
        "",
        *estimate_lines(est),
        "",
        f"total per device by strategy ({est.strategies['ddp'].num_processes} processes where sharded or replicated):",
        "  " + "  ".join(f"{s:>10}" for s in est.strategies),
        "  " + "  ".join(f"{_fmt(b.total):>10}" for b in est.strategies.values()),
    ]
    if est.max_batch is not None and budget is not None:
        mb = est.max_batch
        got = f"{mb['batch']}" + ("+" if mb["batch"] >= mb["cap"] else "")
        lines.append(f"largest batch that fits in {_fmt(budget[0])} ({budget[1]}): {got} (estimate)")
    return lines


def _probe_text(result: dict) -> list[str]:
    cpu = result["device"] != "cuda"
    lines = ["", f"probe: real training steps with the worker's trainer on {result['device']}"]
    lines.append(
        f"  {'batch':>5} {'seq':>5} {'measured peak':>14} {'estimate':>11} {'est/meas':>9} "
        + (f"{'peak RSS growth':>16} " if cpu else "")
        + f"{'fits':>5}  losses"
    )
    for r in result["runs"]:
        if "measured_peak" not in r:
            lines.append(
                f"  {r['batch']:>5} {'':>5} {'':>14} {'':>11} {'':>9} {'no':>5}  {r.get('error') or r.get('skipped')}"
            )
            continue
        losses = ", ".join(f"{x:.3f}" for x in r["losses"])
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        rss = f"{_fmt(r['rss_peak']):>16} " if cpu else ""
        lines.append(
            f"  {r['batch']:>5} {r['seq']:>5} {_fmt(r['measured_peak']):>14} {_fmt(r['estimate_peak']):>11} "
            f"{ratio:>9} {rss}{'yes' if r['fits'] else 'no':>5}  {losses}"
        )
    cap = result.get("search_cap")
    largest = result["largest_batch_that_fits"]
    if cap:
        suffix = f" (searched powers of two up to {cap})" + (": the cap, not a limit" if largest >= cap else "")
        lines.append(f"largest batch that fits: {largest}{suffix}")
    lines.append(result["note"])
    return lines


@_guarded
def cmd_estimate(args) -> int:
    from tunedeck.engine.model.estimate import GIB, device_budget, estimate, max_batch_that_fits

    recipe = _load(args)
    device = None if args.device == "auto" else args.device
    if args.probe:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    kwargs = dict(
        device=device, num_processes=args.num_processes, strategy=args.strategy, overhead_gib=args.overhead_gib
    )
    est = estimate(recipe, batch=args.batch, seq=args.seq, source=args.recipe, **kwargs)
    budget = None
    if args.memory_gib:
        budget = (args.memory_gib * GIB, "--memory-gib")
    elif est.device == "cuda":
        try:
            budget = device_budget("cuda")
        except Exception:  # noqa: BLE001 - planning for a GPU from a machine without one
            budget = None
    else:
        budget = device_budget("cpu")
    if budget is not None:
        cap = 4096
        kwargs["device"] = est.device
        best = max_batch_that_fits(recipe, budget[0], cap=cap, seq=args.seq, **kwargs)
        est.max_batch = {"batch": best, "cap": cap, "budget_bytes": int(budget[0]), "budget": budget[1]}
    probe_result = None
    if args.probe:
        from tunedeck.engine.model.memory_probe import probe

        if args.batch:
            recipe.train.per_device_train_batch_size = args.batch
        progress = (lambda m: print(m, file=sys.stderr, flush=True)) if not args.quiet else (lambda m: None)
        try:
            probe_result = probe(
                recipe, steps=args.probe_steps, search=not args.no_search, cap=args.search_cap, progress=progress
            )
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 - a failed probe is reported, with what to do
            _err(f"the probe failed: {type(e).__name__}: {e}")
            return EXIT_FAILED
    if args.json:
        out = est.to_dict()
        if probe_result is not None:
            out["probe"] = probe_result
        print(json.dumps(out, indent=2, default=str))
        return EXIT_OK
    lines = _estimate_text(est, budget)
    if probe_result is not None:
        lines += _probe_text(probe_result)
    print("\n".join(lines))
    return EXIT_OK


# --------------------------------------------------------------------------- registration


def add_adapter_commands(sub) -> None:
    """Register ``estimate`` and ``adapter targets`` on tunedeck's subparsers."""
    from tunedeck.engine.model.estimate import Device
    from tunedeck.engine.recipe import allowed

    sp = sub.add_parser(
        "estimate", help="training memory per GPU for a recipe, from its model config (no weights loaded)"
    )
    sp.add_argument("recipe")
    sp.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a recipe field")
    sp.add_argument("--json", action="store_true", help="one JSON object, every strategy included")
    sp.add_argument(
        "--device",
        choices=("auto", *get_args(Device)),
        default="auto",
        help="plan for this device (default: this machine's)",
    )
    sp.add_argument("--batch", type=int, help="per-device batch (default: train.per_device_train_batch_size)")
    sp.add_argument("--seq", type=int, help="tokens per sequence (default: train.max_length)")
    sp.add_argument(
        "--num-processes", type=int, help="processes (GPUs) for ddp/fsdp/zero (default: launch.num_processes)"
    )
    sp.add_argument("--strategy", choices=allowed("launch.strategy"), help="default: launch.strategy")
    sp.add_argument("--overhead-gib", type=float, help="runtime overhead per device (default: 0.75 on CUDA, 0 on CPU)")
    sp.add_argument(
        "--memory-gib", type=float, help="memory per device for the largest-batch answer (default: this machine's)"
    )
    sp.add_argument("--probe", action="store_true", help="also run real steps and measure peak memory")
    sp.add_argument("--probe-steps", type=int, default=3)
    sp.add_argument("--no-search", action="store_true", help="with --probe: only the recipe's batch size")
    sp.add_argument(
        "--search-cap", type=int, help="with --probe: largest batch tried (default 64 on CPU, 1024 on CUDA)"
    )
    sp.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sp.set_defaults(func=cmd_estimate)

    sp = sub.add_parser("adapter", help="adapter tools: target modules and parameter math")
    asub = sp.add_subparsers(dest="adapter_command", metavar="{targets}")
    asub.required = True
    tp = asub.add_parser("targets", help="the model's linear modules, what target_modules selects, LoRA parameter math")
    tp.add_argument("recipe")
    tp.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a recipe field")
    tp.add_argument("--json", action="store_true")
    tp.set_defaults(func=cmd_adapter_targets)
