"""``tunedeck data inspect`` and ``tunedeck template render|list``: see the data and the loss mask before training.

``add_data_commands(sub)`` registers the commands on ``tunedeck``'s subparsers; ``main(argv)`` runs
them standalone (``python -m tunedeck.tui.cli.data data inspect FILE``). Heavy libraries (datasets,
transformers) are imported inside the commands that need them. Exit codes: 0 all rows valid,
1 some rows invalid (or the loss mask trains nothing), 2 unreadable input or bad usage.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from tunedeck.engine.recipe import allowed

EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2
FIRST_PAGE_END = "checking all rows"  # printed (and flushed) right after the first page; bench/ waits for it
MARK_OPEN, MARK_CLOSE = "[[", "]]"


class UsageError(Exception):
    """Bad input the user can fix: printed as ``error: …``, exit 2."""


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 160))


def _one_line(text: str, limit: int) -> str:
    text = " ".join(str(text).split("\n")).replace("\t", " ")
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _summarize(row: dict) -> str:
    """A normalized row as one line: ``user: … │ assistant: …``."""

    def msgs(value: Any) -> str:
        if isinstance(value, list):
            return " │ ".join(f"{m['role']}: {m['content']}" for m in value)
        return str(value)

    if "messages" in row:
        return msgs(row["messages"])
    if "text" in row:
        return row["text"]
    parts = [f"{k}: {msgs(row[k])}" for k in ("prompt", "completion", "chosen", "rejected") if k in row]
    if "label" in row:
        parts.append(f"label: {str(row['label']).lower()}")
    return " │ ".join(parts)


# --------------------------------------------------------------------------- data inspect


def _recipe_defaults(args) -> None:
    """Fill unset options from ``--recipe``: data.*, model, template, max_length, seed."""
    if not args.recipe:
        return
    from tunedeck.engine.recipe import load_recipe

    try:
        recipe = load_recipe(args.recipe)
    except ValueError as e:  # RecipeError names the field and the file
        raise UsageError(str(e)) from None
    data = recipe.data
    base = Path(args.recipe).resolve().parent
    args.path = args.path or data.train
    from tunedeck.engine.model.gguf_import import is_gguf_source

    name = recipe.model.name_or_path
    if not args.model and (Path(name).is_dir() or is_gguf_source(name)):  # a Hub id would need the network
        args.model = recipe.model.name_or_path
    args.template = args.template or recipe.template.name
    args.max_length = args.max_length or recipe.train.max_length
    args.seed = recipe.train.seed if args.seed is None else args.seed
    if args.format == "auto":
        args.format = getattr(data, "format", None) or "auto"
    if not args.column and getattr(data, "columns", None):
        args.columns = dict(data.columns)
    if not args.mix and getattr(data, "mix", None):
        import dataclasses

        from tunedeck.engine.data.mix import as_mix_sources

        def local(src):
            candidate = base / Path(src.path).expanduser()
            return dataclasses.replace(src, path=str(candidate)) if candidate.exists() else src

        args.mix_sources = [local(s) for s in as_mix_sources(data.mix)]


def _print_first_page(report, out) -> None:
    files = f" ({len(report.files)} files)" if len(report.files) > 1 else ""
    print(f"{report.source}{files}", file=out)
    if report.candidates and len(report.candidates) > 1:
        others = ", ".join(f"{f} {c:.0%}" for f, c in report.candidates[1:])
        alt = f"; also fits: {others}"
    else:
        alt = ""
    how = (
        f"confidence {report.confidence:.0%} of the first {report.detected_from} rows{alt}"
        if report.detected_from
        else "given"
    )
    print(f"format: {report.format}  ({how})  → trains as: {'/'.join(report.trl_columns)}", file=out)
    for note in report.notes:
        print(f"read: {note}", file=out)
    if report.columns:
        print("columns: " + ", ".join(f"{k} ← {v}" for k, v in report.columns.items()), file=out)
    if report.preview:
        print("first rows:", file=out)
        width = _width()
        for p in report.preview:
            label = p.where.short()
            if p.errors:
                text = "✗ " + "; ".join(f"{e.field + ': ' if e.field else ''}{e.reason}" for e in p.errors)
            else:
                text = _summarize(p.row)
            print(f"  {label:<11} {_one_line(text, width - 15)}", file=out)
    print(f"{FIRST_PAGE_END}…", file=out, flush=True)


def _token_section(args, report, result: dict) -> list[str]:
    """Token-length stats over a sample and the loss-mask check; returns problems that fail the command."""
    from tunedeck.engine.data.stats import length_stats
    from tunedeck.engine.model.loading import load_chat_tokenizer
    from tunedeck.engine.templates.check import check_trainable
    from tunedeck.engine.templates.drops import count_dropped
    from tunedeck.engine.templates.render import TemplateRefused
    from tunedeck.engine.templates.views import token_lengths

    try:
        tokenizer, template = load_chat_tokenizer(args.model, args.template or "model")
    except ValueError as e:
        raise UsageError(str(e)) from None
    # A row the template refuses ("System role not supported") is reported with its FILE:LINE; the rest go on.
    sample, lengths, refused = [], [], []
    for where, row in report.sample:
        try:
            [n] = token_lengths(tokenizer, [row], template)
        except TemplateRefused as e:
            refused.append({"where": str(where), "error": str(e)})
            continue
        sample.append((where, row))
        lengths.append(n)
    result["template_refused"] = {"count": len(refused), "rows": refused[:10]}
    result["template_drops"] = {"checked_rows": len(sample), "kinds": count_dropped(tokenizer, sample, template)}
    rows = [row for _, row in sample]
    if not rows:
        raise UsageError(f"template {args.template or 'model'!r} refuses every sampled row, e.g. {refused[0]['where']}: "
                         f"{refused[0]['error']}")  # fmt: skip
    stats = length_stats(lengths, args.max_length)
    over = [str(where) for (where, _), n in zip(sample, lengths, strict=True) if n > args.max_length]
    stats.update(
        max_length=args.max_length,
        sampled=len(report.sample),
        rendered=len(rows),  # the sampled rows the template did not refuse: the figures above are theirs
        of=report.valid,
        exact=len(report.sample) == report.valid,
        over_max_length_rows=over[:10],
    )
    result["tokens"] = stats
    result["template"] = args.template or "model"
    mask: dict[str, Any] = {"checked_rows": min(len(rows), 64), "warnings": [], "error": None}
    try:
        mask["warnings"] = check_trainable(tokenizer, rows, template, max_length=args.max_length)
    except ValueError as e:
        mask["error"] = str(e)
    result["mask"] = mask
    return [mask["error"]] if mask["error"] else []


def _print_tail(args, report, result: dict, out) -> None:
    from tunedeck.engine.templates.drops import drops_line

    print(
        f"rows {report.rows:,}   valid {report.valid:,}   invalid {report.invalid:,}   duplicates {report.duplicates:,}",
        file=out,
    )
    if report.errors:
        kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(report.error_kinds.items(), key=lambda kv: -kv[1]))
        shown = report.errors[: args.show_errors]
        print(f"errors (first {len(shown)} of {sum(report.error_kinds.values()):,}; by kind: {kinds}):", file=out)
        for e in shown:
            print(f"  {e}", file=out)
    if report.duplicate_examples:
        ex = "; ".join(f"{a} = {b}" for a, b in report.duplicate_examples[:3])
        print(f"duplicates (identical rows): {ex}", file=out)
    if report.labels:
        print(f"labels: {report.labels.get('true', 0):,} desirable (true), {report.labels.get('false', 0):,} "
              "undesirable (false)", file=out)  # fmt: skip
    for w in report.warnings:
        print(f"warning: {w}", file=out)
    tokens = result.get("tokens")
    if tokens:
        scope = (
            f"all {tokens['sampled']:,} valid rows"
            if tokens["exact"]
            else f"a sample of {tokens['sampled']:,} of {tokens['of']:,} valid rows"
        )
        print(
            f"tokens ({scope}; template {result['template']}): min {tokens['min']}  mean {tokens['mean']}  "
            f"p50 {tokens['p50']}  p95 {tokens['p95']}  max {tokens['max']}",
            file=out,
        )
        over = f"   e.g. {', '.join(tokens['over_max_length_rows'][:3])}" if tokens["over_max_length_rows"] else ""
        what = "rows" if tokens["exact"] else "sampled rows"
        print(f"over max_length {tokens['max_length']}: {tokens['over_max_length']:,} {what}{over}", file=out)
        refused = result.get("template_refused") or {}
        if refused.get("count"):
            print(f"template refuses {refused['count']:,} {what}:", file=out)
            for r in refused["rows"][:3]:
                print(f"  {r['where']}: {r['error']}", file=out)
        drops = drops_line((result.get("template_drops") or {}).get("kinds") or {})
        if drops:
            print(drops, file=out)
        mask = result["mask"]
        if mask["error"]:
            print(f"loss mask: FAILS: {mask['error']}", file=out)
        else:
            ok = "ok" if not mask["warnings"] else f"{len(mask['warnings'])} warning(s)"
            print(f"loss mask (first {mask['checked_rows']} rows): {ok}", file=out)
        for w in mask["warnings"]:
            print(f"  warning: {w}", file=out)
    mix = result.get("mix")
    if mix:
        print(f"mix (seed {mix['seed']}), {mix['total']:,} rows:", file=out)
        name_w = min(max(len(s["source"]) for s in mix["sources"]), 60)
        print(f"  {'source':<{name_w}}  {'format':<17} {'available':>10} {'rows':>9} {'share':>6}", file=out)
        for s in mix["sources"]:
            rep = "  (repeats)" if s["repeated"] else ""
            name = _one_line(s["source"], name_w)
            print(
                f"  {name:<{name_w}}  {s['format'] or '?':<17} {s['available']:>10,} {s['rows']:>9,} {s['share']:>6.0%}{rep}",
                file=out,
            )
        for p in mix["incompatible"]:
            print(f"  error: {p}", file=out)
        for w in mix["warnings"]:
            print(f"  warning: {w}", file=out)
        for e in mix["errors"][: args.show_errors]:
            print(f"  {e}", file=out)


def _rows_read(rows: int) -> None:
    """The count of rows read so far, on one terminal line (stderr), for files that take a while."""
    print(f"\r{rows:,} rows read", end="", file=sys.stderr, flush=True)


def cmd_data_inspect(args) -> int:
    from tunedeck.engine.data import DataError, inspect_data
    from tunedeck.engine.data.formats import parse_columns
    from tunedeck.engine.data.mix import as_mix_sources, parse_mix_arg

    out = sys.stdout
    try:
        args.columns = parse_columns(args.column) if args.column else None
        args.mix_sources = as_mix_sources([parse_mix_arg(m) for m in args.mix]) if args.mix else []
        _recipe_defaults(args)
        if not args.path:
            raise UsageError("give a dataset PATH (or --recipe FILE)")
        if args.seed is None:
            args.seed = 0
        if args.max_length is None:
            args.max_length = 1024
        on_preview = None if args.json else (lambda r: _print_first_page(r, out))
        _quiet_if_needed(args.path)
        report = inspect_data(
            args.path,
            fmt=args.format,
            columns=args.columns,
            split=args.split,
            seed=args.seed,
            sample_size=args.sample if args.model else 0,
            max_errors=max(args.max_errors, args.show_errors),
            on_preview=on_preview,
            on_rows=_rows_read if sys.stderr.isatty() else None,
        )
        if sys.stderr.isatty():
            print(file=sys.stderr)  # end the rows-read line
        result = report.to_dict()
        failures = []
        if args.model:
            failures += _token_section(args, report, result)
        if args.mix_sources:
            from tunedeck.engine.data.mix import inspect_mix

            mix = inspect_mix(report, args.mix_sources, args.seed, args.split)
            result["mix"] = {**mix, "errors": [e.to_dict() for e in mix["errors"]]}
            failures += mix["incompatible"]
    except (DataError, UsageError) as e:
        return _unreadable(str(e), args.json)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        if args.mix_sources:
            result["mix"]["errors"] = mix["errors"]
        _print_tail(args, report, result, out)
    invalid = report.invalid + (result.get("mix") or {}).get("invalid", 0)
    return EXIT_INVALID if invalid or failures else EXIT_OK


def _quiet_if_needed(path: str) -> None:
    """Silence datasets' progress bars when it will be used (not for JSON Lines, to keep startup fast)."""
    if not str(path).lower().endswith((".jsonl", ".json", ".txt")):
        from tunedeck.engine.data.load import quiet_datasets

        quiet_datasets()


def _unreadable(message: str, as_json: bool) -> int:
    _err(message)
    if as_json:
        print(json.dumps({"error": message}))
    return EXIT_UNREADABLE


# --------------------------------------------------------------------------- template render / list


def _styled(view, color: bool) -> str:
    """The rendered text with trained spans between [[ ]] (and green when the terminal has colour)."""
    out, run, state = [], [], False

    def flush() -> None:
        if not run:
            return
        text = "".join(run)
        if state:
            out.append(f"\x1b[1;32m{MARK_OPEN}{text}{MARK_CLOSE}\x1b[0m" if color else f"{MARK_OPEN}{text}{MARK_CLOSE}")
        else:
            out.append(f"\x1b[2m{text}\x1b[0m" if color else text)
        run.clear()

    for piece, trained in zip(view.pieces, view.trained, strict=True):
        if trained != state:
            flush()
            state = trained
        run.append(piece)
    flush()
    return "".join(out)


def _print_render_json(args, fmt: str, where, views, drops, warnings: list[str]) -> None:
    """``template render --json``: the row's text, per-token {id, text, trained}, the mask and what the template drops."""
    seqs = [{"name": v.name, "text": v.text, "tokens": v.tokens()} for v in views]
    print(
        json.dumps(
            {
                "source": args.data,
                "row": args.row,
                "where": str(where),
                "format": fmt,
                "template": args.template,
                "text": views[0].text,
                "tokens": views[0].tokens(),
                "total": sum(len(v.ids) for v in views),
                "trained": sum(sum(v.trained) for v in views),
                "sequences": seqs,
                "mask": {"how": views[0].how, "notes": views[0].notes},
                "drops": [{"kind": d.kind, "message": d.message, "name": d.name} for d in drops],
                "warnings": warnings,
            },
            indent=2,
        )
    )


def cmd_template_render(args) -> int:
    from tunedeck.engine.data import DataError
    from tunedeck.engine.data.formats import parse_columns
    from tunedeck.engine.data.inspect import read_row
    from tunedeck.engine.model.loading import load_chat_tokenizer
    from tunedeck.engine.templates.check import check_trainable
    from tunedeck.engine.templates.drops import dropped_parts, row_drops_line
    from tunedeck.engine.templates.render import TemplateRefused
    from tunedeck.engine.templates.views import token_views

    try:
        _quiet_if_needed(args.data)
        columns = parse_columns(args.column) if args.column else None
        fmt, where, row, errors = read_row(args.data, args.row, fmt=args.format, columns=columns, split=args.split)
    except (DataError, UsageError) as e:
        return _unreadable(str(e), args.json)
    if errors:
        if args.json:
            print(json.dumps({"row": args.row, "format": fmt, "errors": [e.to_dict() for e in errors]}, indent=2))
        for e in errors:
            _err(f"row {args.row} is invalid: {e}")
        return EXIT_INVALID
    try:
        tokenizer, template = load_chat_tokenizer(args.model, args.template)
        views = token_views(tokenizer, row, template, assistant_only_loss=not args.full_loss)
        drops = dropped_parts(tokenizer, row, template)
    except TemplateRefused as e:
        return _unreadable(f"row {args.row}: template {args.template!r} refuses it: {e}", args.json)
    except ValueError as e:
        return _unreadable(str(e), args.json)
    except Exception as e:  # jinja2 TemplateError / SecurityError from the sandbox
        return _unreadable(
            f"rendering row {args.row} with template {args.template!r} failed: {type(e).__name__}: {e}", args.json
        )
    try:
        warnings = check_trainable(
            tokenizer, [row], template, max_length=args.max_length, assistant_only_loss=not args.full_loss
        )
        failure = None
    except ValueError as e:
        warnings, failure = [], str(e)
    if failure:
        warnings = [failure]
    if args.json:
        _print_render_json(args, fmt, where, views, drops, warnings)
        return EXIT_INVALID if failure else EXIT_OK
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    total, trained = sum(len(v.ids) for v in views), sum(sum(v.trained) for v in views)
    print(f"{where} ({fmt}) · template {args.template} · {total} tokens, {trained} trained")
    for v in views:
        if len(views) > 1:
            print(f"--- {v.name}")
        print(_styled(v, color))
    print(f"--- {MARK_OPEN}…{MARK_CLOSE}: trained tokens (they carry the loss); the rest is context")
    if views[0].how in ("prefixes", "rewritten"):
        print("mask: derived by rendering growing prefixes (the template has no {% generation %} markers)")
    for note in views[0].notes:
        print(f"mask: {note}")
    if drops:
        print(row_drops_line(drops))
    for w in warnings:
        print(f"warning: {w}")
    return EXIT_INVALID if failure else EXIT_OK


def cmd_template_list(args) -> int:
    from tunedeck.engine.templates.specs import TEMPLATES

    for name, spec in TEMPLATES.items():
        source = (f"{spec.llama_cpp}'s own template" if spec.llama_cpp
                  else f"written from {spec.documented}" if spec.documented
                  else "a format (no model's own)")  # fmt: skip
        print(f"{name:<13} {source}; ends turns with {spec.end_of_turn or 'the eos_token'}")
    print("model         the tokenizer's own chat template (the default);  PATH.jinja  a custom template file")
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def _data_options(sp, required_format: bool = False) -> None:
    sp.add_argument("--format", default="auto", choices=allowed("data.format"), help="the rows' format (default: detect)")
    sp.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="read a format field from your column, e.g. instruction=question (repeatable)",
    )
    sp.add_argument("--split", default="train", help="split of a dataset folder or Hub id (default: train)")


def add_data_commands(sub) -> None:
    """Register ``data inspect`` and ``template render|list`` on ``tunedeck``'s subparsers."""
    data = sub.add_parser("data", help="inspect and validate a dataset")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    sp = data_sub.add_parser(
        "inspect",
        help="format, every invalid row, duplicates, token lengths and the mix, before training",
        description="Exit status: 0 all rows valid, 1 some rows invalid (or the loss mask trains nothing), "
        "2 the data cannot be read.",
    )
    sp.add_argument("path", nargs="?", help="a .jsonl/.json/.csv/.tsv/.parquet/.arrow file, a folder, or a Hub id")
    _data_options(sp)
    sp.add_argument("--model", help="a model folder (or Hub id): adds token-length stats and a loss-mask check")
    sp.add_argument("--template", help="chat template: model (default), a built-in name, or a .jinja file")
    sp.add_argument("--max-length", type=int, help="count rows longer than this many tokens (default 1024)")
    sp.add_argument(
        "--mix", action="append", default=[], metavar="PATH=RATIO", help="mix in a dataset at this share (repeatable)"
    )
    sp.add_argument("--seed", type=int, help="seed for the mix and the token sample (default 0)")
    sp.add_argument("--sample", type=int, default=2000, help="rows tokenized for length stats (default 2000)")
    sp.add_argument("--recipe", help="take data.*, model, template, max_length and seed from this recipe")
    sp.add_argument("--max-errors", type=int, default=100, help="errors listed in --json (all are counted)")
    sp.add_argument("--show-errors", type=int, default=10, help="errors printed (default 10)")
    sp.add_argument("--json", action="store_true", help="print one JSON object")
    sp.set_defaults(func=cmd_data_inspect)

    tpl = sub.add_parser("template", help="chat templates: render a row with its loss mask, list the built-ins")
    tpl_sub = tpl.add_subparsers(dest="template_command", required=True)
    sp = tpl_sub.add_parser("render", help="show one row as the model sees it, trained tokens marked")
    sp.add_argument("--model", required=True, help="model folder (or Hub id) whose tokenizer renders the row")
    sp.add_argument("--template", default="model", help="model (default), a built-in name, or a .jinja file")
    sp.add_argument("--data", required=True, help="the dataset")
    sp.add_argument("--row", type=int, default=0, help="row number, from 0 (default 0)")
    sp.add_argument("--max-length", type=int, help="also check that trained tokens survive truncation at this length")
    sp.add_argument("--full-loss", action="store_true", help="train every token (method.assistant_only_loss: false)")
    _data_options(sp)
    sp.add_argument("--json", action="store_true", help="per-token {id, text, trained}")
    sp.set_defaults(func=cmd_template_render)
    sp = tpl_sub.add_parser("list", help="the built-in templates")
    sp.set_defaults(func=cmd_template_list)
