"""``export_run``: merge -> adapter copy -> reference -> convert (F32) + parity -> quantize each type
-> fidelity of each file against the HF model -> Modelfiles -> GPTQ/AWQ -> export-report.json.

Every file written is checked before the report calls it done, as much as ``export.checks`` says
(``tunedeck.engine.export.checks``): its chat template, EOS and end-of-turn tokens, rendering and tokenization
equal the HF tokenizer's (``parity``), generation stops where the HF model stops, and its perplexity,
top-1 agreement and KL against the HF model on held-out text, and (full) task accuracy on the eval
set, are measured (``fidelity``). ``report["checks"]`` says what was covered and what it cost.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunedeck.engine.recipe import GGUF_IMATRIX_TYPES, load_recipe, normalize_quant
from tunedeck.engine.run.rundir import RunDir, atomic_write_text

Progress = Callable[[str], None]
# (stage, "start" | "done" | "failed", seconds once it ended); the stage ids: tunedeck.engine.export.stages
Stage = Callable[[str, str, float | None], None]
FLOAT_TYPES = ("F32", "F16", "BF16")
ADAPTER_TOLERANCE = 1e-3  # max |logit difference| between the exported adapter and the merged model


class _Clock:
    def __init__(self, stage: Stage | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.stage: Stage = stage or (lambda name, state, seconds: None)

    def time(self, name: str):
        clock = self

        class _Timer:
            def __enter__(self):
                self.t = time.time()
                clock.stage(name, "start", None)

            def __exit__(self, exc_type, *exc):
                seconds = time.time() - self.t
                clock.seconds[name] = round(clock.seconds.get(name, 0.0) + seconds, 3)
                clock.stage(name, "failed" if exc_type else "done", round(seconds, 3))

        return _Timer()


def export_args(recipe, quants: list[str] | None, overrides: dict[str, Any] | None):
    """The recipe's export section with ``overrides`` and ``quants``, validated (RecipeError names a bad field)."""
    args = dataclasses.replace(recipe.export, **(overrides or {}))  # re-validated by __post_init__
    if quants:
        args.quant = [normalize_quant(q, "--quant") for q in quants]
    return args


def export_run(
    run: RunDir,
    quants: list[str] | None = None,
    progress: Progress = lambda m: None,
    overrides: dict[str, Any] | None = None,
    stage: Stage | None = None,
    checkpoint: str | None = None,
) -> dict:
    """Export ``run`` as the recipe's export section says (``overrides`` replace its fields).

    ``checkpoint`` ("step-000213", "213", "latest"): export that complete checkpoint; default the final weights of a
    finished run, else the newest complete checkpoint (tunedeck.engine.export.merge.weights_source).
    ``progress`` gets a line per step; ``stage`` is called as each stage starts and ends (for progress bars).
    """
    from tunedeck.engine.export.errors import ExportError
    from tunedeck.engine.export.merge import weights_source

    run = RunDir(run.path.resolve())  # the report's paths must work from anywhere
    recipe = load_recipe(run.recipe_path)
    args = export_args(recipe, quants, overrides)
    report: dict[str, Any] = {"run": run.id, "ok": False, "options": dataclasses.asdict(args)}
    try:
        source = weights_source(run, checkpoint)
        report["checkpoint"] = source.checkpoint or "final"
        report["weights"] = str(source.path)
        progress(f"exporting {source.describe(run)}: {source.path}")
        _export(run, recipe, args, report, progress, _Clock(stage), source)
    except ExportError as e:
        report["error"] = str(e)
        _write_report(run, report)
        run.append_event("export_failed", error=str(e))
        raise
    report["ok"] = True
    _write_report(run, report)
    run.append_event("export", files=[{k: f[k] for k in ("path", "type", "size_bytes")} for f in report["files"]])
    return report


def file_stem(run: RunDir, report: dict) -> str:
    """GGUF names: ``<run>.<TYPE>.gguf`` from the final weights, ``<run>-step-000213.<TYPE>.gguf`` from a checkpoint."""
    checkpoint = report.get("checkpoint", "final")
    return run.id if checkpoint == "final" else f"{run.id}-{checkpoint}"


def _write_report(run: RunDir, report: dict) -> None:
    atomic_write_text(run.export_report, json.dumps(report, indent=2))


def _export(run: RunDir, recipe, args, report: dict, progress: Progress, clock: _Clock, source) -> None:
    from tunedeck.engine.export.checks import plan as check_plan
    from tunedeck.engine.export.checks import within_budget
    from tunedeck.engine.export.fidelity import HFReference, reference_scores
    from tunedeck.engine.export.merge import describe_model_dir, merge_run
    from tunedeck.engine.export.parity import expected_template
    from tunedeck.engine.export.samples import run_samples

    plan = check_plan(args.checks, args.eval_rows)
    report["seconds"] = clock.seconds
    warnings: list[str] = []
    report["warnings"] = warnings
    export_dir = run.path / "export"

    with clock.time("merge"):
        progress("merging the adapter into the base")
        model_dir = merge_run(run, args.max_shard_size, source)
    report["model_dir"] = str(model_dir)
    report["merged"] = describe_model_dir(model_dir)

    with clock.time("samples"):
        samples = run_samples(recipe, args.fidelity_texts, plan.eval_rows, args.calibration_rows)
    warnings += samples.warnings
    report["samples"] = {
        "heldout": samples.heldout_source,
        "heldout_texts": len(samples.heldout),
        "eval": samples.eval_source,
        "eval_rows": len(samples.eval_rows),
        "calibration_rows": len(samples.calibration),
        "probes": [conv[-1]["content"] for conv in samples.probes],
    }

    if recipe.adapter.kind != "full" and args.adapter:
        from tunedeck.engine.export.merge import export_adapter

        with clock.time("adapter"):
            progress("copying the adapter (PEFT safetensors)")
            report["adapter"] = export_adapter(run, export_dir / "adapter", source)

    ref = HFReference(model_dir)  # the model itself loads on first use: never with --checks none and no imatrix
    texts: list = []
    hf_replies: list[dict] = []
    if plan.runs:
        with clock.time("reference"):
            # base + the exported adapter first, freed before the merged model loads: one model in memory at a time
            adapter = None
            if report.get("adapter") and samples.heldout:
                adapter = _adapter_logits(recipe, Path(report["adapter"]["path"]), samples.heldout[0])
            progress("loading the merged model as the reference (transformers)")
            ref.model  # noqa: B018 - load it here, so the stage's time says what it cost
            report["merged"]["loads"] = True
            every = [ref.scored_text(c) for c in samples.heldout]
            texts = within_budget(every, plan.tokens)
            report["reference"] = {"source": samples.heldout_source, **reference_scores(ref, texts)}
            report["reference"]["cut_to_budget"] = sum(map(len, (i for i, _ in texts))) < sum(map(len, (i for i, _ in every)))
            if adapter is not None:
                report["adapter"]["verify"] = _compare_adapter(ref, adapter, warnings)
            report["reference"]["probes"] = len(samples.probes)
            samples.replied = _probes_that_fit(ref, samples.probes[: plan.probes], warnings, plan.stop_tokens)
            hf_replies = ref.generate(samples.replied, plan.stop_tokens)
            report["reference"]["probes_stopped"] = sum(r["stopped"] for r in hf_replies)
    else:
        report["reference"] = {"source": None, "texts": 0}
    template, stripped = expected_template(ref.tokenizer, samples.probes)
    try:
        _gguf_exports(run, args, plan, report, progress, clock, ref, samples, texts, hf_replies, template, stripped)
        if args.hf_quant:
            _hf_exports(args, report, progress, clock, ref, samples, texts, export_dir, model_dir)
    finally:
        ref.close()
    _report_checks(plan, report, ref)


def _report_checks(plan, report: dict, ref) -> None:
    """report["checks"]: the level, where the checks ran, what they covered and what they cost beside the bare
    merge + convert + quantize work."""
    from tunedeck.engine.export.checks import coverage, devices

    seconds = report["seconds"]
    bare = sum(v for k, v in seconds.items() if k in ("merge", "convert") or k.startswith("quantize_"))
    spent = sum(v for k, v in seconds.items() if k in ("reference", "parity", "reference_accuracy") or k.startswith("verify_"))
    covered, missing = coverage(plan, report)
    checks: dict[str, Any] = {"level": plan.level, "covered": covered, "not_covered": missing,
                              "seconds": round(spent, 3), "bare_seconds": round(bare, 3)}  # fmt: skip
    if plan.runs:
        checks["devices"], warnings = devices(ref.device)
        report["warnings"] += warnings
    else:
        report["warnings"].append("export.checks is 'none': the files were written without checking them against the HF model")
        if report["options"].get("fix_metadata"):
            report["warnings"].append("export.fix_metadata did nothing: with export.checks 'none' nothing is compared to correct")
    report["checks"] = checks


# --------------------------------------------------------------------------- adapter


def _adapter_logits(recipe, dest: Path, conv) -> tuple[list[int], Any]:
    """Load base + the exported adapter (unmerged) for one text: its ids and logits, to compare with the merge."""
    from tunedeck.engine.export.merge import adapter_logits
    from tunedeck.engine.model.tokenizers import load_saved_tokenizer

    tok = load_saved_tokenizer(dest)
    if not isinstance(conv, str) and not tok.chat_template:
        conv = "\n".join(m["content"] for m in conv)
    text = conv if isinstance(conv, str) else tok.apply_chat_template(conv, tokenize=False)
    ids = tok(text, add_special_tokens=False)["input_ids"][:64]
    return ids, adapter_logits(recipe.model.name_or_path, dest, ids, recipe.model.trust_remote_code, recipe.model.revision)


def _compare_adapter(ref, adapter: tuple[list[int], Any], warnings: list[str]) -> dict:
    import numpy as np
    import torch

    ids, logits = adapter
    with torch.no_grad():
        merged = ref.model(torch.tensor([ids], device=ref.device)).logits[0].float().cpu().numpy()
    diff = float(np.abs(merged - logits).max())
    same_top1 = float((merged.argmax(-1) == logits.argmax(-1)).mean())
    if diff > ADAPTER_TOLERANCE:
        warnings.append(f"adapter: base + exported adapter differs from the merged model by up to {diff:.2g} in the logits")
    return {"loaded": True, "max_abs_logit_diff": diff, "top1_agreement": round(same_top1, 4), "tokens": len(ids)}


# --------------------------------------------------------------------------- GGUF


def _gguf_exports(run, args, plan, report, progress, clock, ref, samples, texts, hf_replies, template, stripped) -> None:
    from tunedeck.engine.export.gguf import convert_to_gguf

    run.gguf.mkdir(exist_ok=True)
    source = run.gguf / f"{file_stem(run, report)}.F32.gguf"
    stop_ids = ref.stop_ids()
    metadata: dict[str, Any] = {"tokenizer.chat_template": template} if stripped else {}
    with clock.time("convert"):
        progress("converting to GGUF with llama.cpp's converter")
        conversion = convert_to_gguf(Path(report["model_dir"]), source, "f32", args.pre_tokenizer, metadata)
    report["pre_tokenizer"] = conversion["pre_tokenizer"]
    report["warnings"] += conversion["warnings"]

    if plan.runs:
        with clock.time("parity"):
            progress("checking template, EOS/EOT and stop parity against the HF tokenizer")
            parity = _parity(source, ref, samples, hf_replies, template, stop_ids, args, metadata, plan.stop_tokens, progress)
        parity["generation_markers_removed"] = stripped
        report["parity"] = parity
        stop = parity.get("stop", {})
        if stop.get("diverged"):
            report["warnings"].append(f"stop parity: {stop['diverged']} of {stop['hf_stopped']} replies took another path than the HF model's (not judged)")
        elif stop.get("note"):
            report["warnings"].append(f"stop parity {stop['note']}")
        _reference_accuracy(report, ref, samples, progress, clock)  # after parity: a failing export fails fast

    quants = list(args.quant)
    report["unavailable"] = []
    report["files"] = []
    try:
        imatrix, reason = _importance_matrix(args, report, progress, clock, ref, samples, source)
        stops = [ref.tokenizer.convert_ids_to_tokens(i) for i in stop_ids]
        for qtype in quants:
            if qtype in GGUF_IMATRIX_TYPES and not imatrix:
                report["unavailable"].append({"type": qtype, "reason": f"needs an importance matrix: {reason}"})
                report["warnings"].append(f"{qtype}: not written (needs an importance matrix: {reason})")
                continue
            use = imatrix if qtype not in FLOAT_TYPES and (qtype in GGUF_IMATRIX_TYPES or args.imatrix == "always") else None
            entry = _export_file(run, qtype, source, use, args, plan, report, progress, clock, ref, samples, texts, hf_replies, stops)
            report["files"].append(entry)
            _write_report(run, report)  # each file as it is checked: a reader sees the table grow
            run.append_event("export_file", **{k: entry.get(k) for k in ("path", "type", "size_bytes", "fidelity")})
    finally:
        if "F32" not in quants:
            source.unlink(missing_ok=True)


def _reference_accuracy(report, ref, samples, progress, clock) -> None:
    if samples.eval_rows and "accuracy" not in report["reference"]:
        with clock.time("reference_accuracy"):
            progress(f"task accuracy of the merged model on {len(samples.eval_rows)} eval rows")
            report["reference"]["accuracy"] = round(ref.accuracy(samples.eval_rows), 4)


def _importance_matrix(args, report, progress, clock, ref, samples, source) -> tuple[dict | None, str | None]:
    """(imatrix or None, why not) as export.imatrix asks: auto computes it only for the types that need one."""
    from tunedeck.engine.export.imatrix import compute_imatrix

    quants = set(args.quant)
    needed = quants & set(GGUF_IMATRIX_TYPES)
    if args.imatrix == "never" or not (needed or (args.imatrix == "always" and quants - set(FLOAT_TYPES))):
        return None, "export.imatrix is 'never'" if needed else None
    if not samples.calibration:
        reason = "no calibration text: the run's training data has no rows"
        report["warnings"].append(f"importance matrix unavailable: {reason}")
        return None, reason
    with clock.time("imatrix"):
        progress(f"computing an importance matrix on {len(samples.calibration)} training rows")
        imatrix, info = compute_imatrix(ref.model, _chunks(ref, samples.calibration), source)
    report["imatrix"] = {"source": "training rows (data.train)", **info}
    if imatrix:
        return imatrix, None
    reason = f"no linear layer of the model mapped to a GGUF tensor ({info})"
    report["warnings"].append(f"importance matrix unavailable: {reason}")
    return None, reason


def _export_file(run, qtype, source, imatrix, args, plan, report, progress, clock, ref, samples, texts, hf_replies, stops) -> dict:
    """Quantize one type from the checked F32 file, then measure it and write its Modelfile."""
    from tunedeck.engine.export.gguf import read_metadata, tensor_stats
    from tunedeck.engine.export.parity import ParityError
    from tunedeck.engine.export.quantize import quantize_gguf

    out = run.gguf / f"{file_stem(run, report)}.{qtype}.gguf"
    entry: dict[str, Any] = {"path": str(out), "type": qtype, "fallback_tensors": [], "imatrix": bool(imatrix)}
    t = time.time()
    if qtype != "F32":
        with clock.time(f"quantize_{qtype}"):
            progress(f"quantizing to {qtype}" + (" with the importance matrix" if imatrix else ""))
            entry["fallback_tensors"] = quantize_gguf(source, out, qtype, imatrix=imatrix).fallback_tensors
    entry["quantize_seconds"] = round(time.time() - t, 3)
    entry["size_bytes"] = out.stat().st_size
    entry.update(tensor_stats(out))
    meta, checked = read_metadata(out), read_metadata(source)
    for key in ("tokenizer.chat_template", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"):
        if meta.get(key) != checked.get(key):
            raise ParityError(f"{out.name}: {key} differs from the parity-checked F32 conversion; the quantizer changed it")
    if plan.runs:
        with clock.time(f"verify_{qtype}"):
            progress(f"measuring {out.name} against the HF model")
            entry["verify"], entry["fidelity"] = _measure(out, plan, ref, samples, texts, hf_replies, report["reference"])
    if args.modelfile:
        from tunedeck.engine.export.modelfile import write_modelfile

        mf = entry["modelfile"] = write_modelfile(out, ref.render, stops, samples.probes)
        if not mf["matches"]:
            report["warnings"].append(f"{qtype}: the Ollama Modelfile template does not match the chat template ({mf.get('difference') or mf['template']})")
    if entry["fallback_tensors"]:
        report["warnings"].append(f"{qtype}: {len(entry['fallback_tensors'])} tensor(s) fell back to another type")
    if plan.runs and not entry["verify"]["stopped"] and report["reference"].get("probes_stopped"):
        within = f"within {plan.stop_tokens} tokens" if plan.level == "full" else "within a few tokens of where the HF model stopped"
        report["warnings"].append(f"{qtype}: greedy generation did not stop {within} on every probe ({entry['verify']['stop_rate']:.0%} did)")
    return entry


def _chunks(ref, texts: list) -> list[list[int]]:
    """Calibration texts as llama.cpp's imatrix tool feeds them: concatenated, cut to the context size."""
    ids = [t for c in texts for t in ref.encode(ref.render(c))]
    return [ids[i : i + ref.max_tokens] for i in range(0, len(ids), ref.max_tokens)]


def _probes_that_fit(ref, probes: list, warnings: list[str], reply_tokens: int) -> list:
    """The probe conversations whose prompt and a reply of ``reply_tokens`` fit the context the GGUF is checked with
    (a template's long default system prompt can fill a small model's); the rest are named in a warning."""
    def tokens(conv) -> int:
        return len(ref.tokenizer(ref.render(conv, add_generation_prompt=True), add_special_tokens=False)["input_ids"])

    fits = [c for c in probes if tokens(c) + reply_tokens <= ref.max_tokens]
    if len(fits) < len(probes):
        warnings.append(
            f"{len(probes) - len(fits)} of {len(probes)} probe conversations do not fit the {ref.max_tokens}-token "
            f"context with a {reply_tokens}-token reply once the chat template renders them; "
            + ("the stop and reply checks ran on the rest" if fits else "the stop and reply checks did not run")
        )
    return fits


def _parity(source, ref, samples, hf_replies, template, stop_ids, args, metadata, stop_tokens, progress) -> dict:
    """Check parity; with export.fix_metadata, re-convert with corrected metadata and check again."""
    from tunedeck.engine.export.gguf import convert_to_gguf
    from tunedeck.engine.export.parity import check_metadata, check_stop, raise_for

    def check() -> tuple[dict, list]:
        meta_report, problems = check_metadata(source, ref.tokenizer, stop_ids, template, samples.probes)
        if not any(p.check in ("eos", "eog", "chat_template", "render") for p in problems):
            meta_report["stop"], stop_problems = check_stop(source, ref.tokenizer, samples.replied, hf_replies, stop_tokens)
            problems += stop_problems
        return meta_report, problems

    parity, problems = check()
    fixed: list[dict] = []
    if problems and args.fix_metadata and all(p.fix for p in problems):
        fixes = {k: v for p in problems for k, v in p.fix.items()}
        progress(f"writing corrected metadata: {', '.join(sorted(fixes))}")
        fixed = [{"check": p.check, "was": p.message, "set": sorted(p.fix)} for p in problems]
        convert_to_gguf(Path(ref.model_dir), source, "f32", args.pre_tokenizer, {**metadata, **fixes})
        parity, problems = check()
    parity["fixed"] = fixed
    if problems:
        source.unlink(missing_ok=True)
        raise_for(source, problems, args.fix_metadata)
    parity["ok"] = True
    return parity


def _measure(path: Path, plan, ref, samples, texts, hf_replies: list[dict], reference: dict) -> tuple[dict, dict]:
    """The file's replies to the probes, and its scores on the held-out texts. Full: every probe up to the plan's
    limit, and the eval rows. Quick: only the probes the HF model ended, each a few tokens past where it did."""
    from tunedeck.engine.evaluate import reply_budget
    from tunedeck.engine.export.checks import QUICK_REPLY_SLACK
    from tunedeck.engine.export.fidelity import gguf_generation, gguf_scores

    if plan.level == "full":
        prompts = [(c, plan.stop_tokens) for c in samples.replied]
    else:
        prompts = [(c, len(hf["tokens"]) + QUICK_REPLY_SLACK) for c, hf in zip(samples.replied, hf_replies, strict=True) if hf["stopped"]]
    gen = gguf_generation(path, prompts, samples.eval_rows, reply_budget(ref.tokenizer, samples.eval_rows))
    replies = gen["replies"]
    stopped = sum(r["stopped"] for r in replies)
    verify = {
        "loaded": True,
        "replies": len(replies),
        "sample_reply": replies[0]["text"] if replies else None,
        "stopped": bool(replies) and stopped == len(replies),
        "stop_rate": round(stopped / len(replies), 4) if replies else None,
    }
    scores = gguf_scores(path, ref, texts)
    fidelity = {
        "perplexity": scores["perplexity"],
        "perplexity_hf": reference.get("perplexity"),
        "top1_agreement": scores["top1_agreement"],
        "mean_kl": scores["mean_kl"],
        "tokens": scores["tokens"],
        "scored_tokens": scores["scored_tokens"],
        "accuracy": round(gen["accuracy"], 4) if gen["accuracy"] is not None else None,
        "accuracy_hf": reference.get("accuracy"),
    }
    return verify, fidelity


# --------------------------------------------------------------------------- GPTQ / AWQ


def _hf_exports(args, report, progress, clock, ref, samples, texts, export_dir: Path, model_dir: Path) -> None:
    from tunedeck.engine.evaluate import hf_exact_match, reply_budget
    from tunedeck.engine.export.fidelity import torch_scores
    from tunedeck.engine.export.hfquant import availability, load_quantized, quantize_hf

    out: list[dict] = []
    report["hf_quant"] = out
    _reference_accuracy(report, ref, samples, progress, clock)
    calibration = [ref.render(c) for c in samples.calibration]
    for method in args.hf_quant:
        reason = availability(method)
        if reason:
            report["unavailable"].append({"type": method.upper(), "reason": reason})
            report["warnings"].append(f"{method.upper()}: not written ({reason})")
            continue
        with clock.time(method):
            progress(f"{method.upper()} {args.hf_quant_bits}-bit with GPTQModel on {len(calibration)} training rows")
            dest = export_dir / f"{method}-{args.hf_quant_bits}bit"
            entry = quantize_hf(method, model_dir, dest, calibration, args.hf_quant_bits, args.hf_quant_group_size)
            model = load_quantized(dest)
            scores = torch_scores(model, ref, texts)
            accuracy = None
            if samples.eval_rows:
                side = ref.tokenizer.padding_side
                budget = reply_budget(ref.tokenizer, samples.eval_rows)
                accuracy = round(hf_exact_match(model, ref.tokenizer, samples.eval_rows, max_new_tokens=budget), 4)
                ref.tokenizer.padding_side = side
            del model
        entry["size_bytes"] = sum(p.stat().st_size for p in dest.glob("*.safetensors"))
        entry["verify"] = {"loaded": True, "loader": "transformers AutoModelForCausalLM"}
        entry["fidelity"] = {
            "perplexity": scores["perplexity"],
            "perplexity_hf": report["reference"].get("perplexity"),
            "top1_agreement": scores["top1_agreement"],
            "mean_kl": scores["mean_kl"],
            "tokens": scores["tokens"],
            "accuracy": accuracy,
            "accuracy_hf": report["reference"].get("accuracy"),
        }
        out.append(entry)
