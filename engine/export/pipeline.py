"""``export_run``: merge -> convert (F32) -> quantize each type -> verify each file -> report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from engine.recipe import load_recipe, normalize_quant
from engine.runs import RunDir, atomic_write_text

Progress = Callable[[str], None]


def _probe_prompt(recipe) -> list[dict[str, str]]:
    """A user turn from the run's own data, to check each file answers and stops."""
    from engine.evaluate import load_eval_rows, split_prompt

    for source in (recipe.data.eval, recipe.data.train):
        if source and source.endswith(".jsonl") and Path(source).is_file():
            try:
                return split_prompt(load_eval_rows(Path(source))[0])[0]
            except (KeyError, ValueError, IndexError):
                continue
    return [{"role": "user", "content": "Hello!"}]


def export_run(run: RunDir, quants: list[str] | None = None, progress: Progress = lambda m: None) -> dict:
    from engine.export.gguf import convert_to_gguf
    from engine.export.merge import merge_run
    from engine.export.quantize import quantize_gguf
    from engine.export.verify import verify_gguf

    recipe = load_recipe(run.recipe_path)
    quants = [normalize_quant(q) for q in (quants or recipe.export.quant)]
    seconds: dict[str, float] = {}
    t = time.time()
    progress("merging the adapter into the base")
    model_dir = merge_run(run)
    seconds["merge"] = time.time() - t

    t = time.time()
    run.gguf.mkdir(exist_ok=True)
    source = run.gguf / f"{run.id}.F32.gguf"
    progress("converting to GGUF with llama.cpp's converter")
    conversion = convert_to_gguf(model_dir, source, "f32", recipe.export.pre_tokenizer)
    seconds["convert"] = time.time() - t

    files, prompt = [], _probe_prompt(recipe)
    for qtype in quants:
        t = time.time()
        out = run.gguf / f"{run.id}.{qtype}.gguf"
        fallbacks = []
        if qtype != "F32":
            progress(f"quantizing to {qtype}")
            fallbacks = quantize_gguf(source, out, qtype)
        quantize_s = time.time() - t
        t = time.time()
        progress(f"verifying {out.name}")
        check = verify_gguf(out, prompt)
        files.append(
            {
                "path": str(out),
                "type": qtype,
                "size_bytes": out.stat().st_size,
                "fallback_tensors": fallbacks,
                "quantize_seconds": round(quantize_s, 3),
                "verify": check,
            }
        )
        seconds[f"quantize_{qtype}"] = quantize_s
        seconds[f"verify_{qtype}"] = time.time() - t
    if "F32" not in quants:
        source.unlink()
    report = {
        "run": run.id,
        "model_dir": str(model_dir),
        "pre_tokenizer": conversion["pre_tokenizer"],
        "warnings": conversion["warnings"]
        + [f"{f['type']}: {len(f['fallback_tensors'])} tensor(s) fell back to another type" for f in files if f["fallback_tensors"]],
        "files": files,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    atomic_write_text(run.export_report, json.dumps(report, indent=2))
    run.append_event("export", files=[{k: f[k] for k in ("path", "type", "size_bytes")} for f in files])
    return report
