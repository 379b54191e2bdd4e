"""What proving fidelity costs: ``export_run`` against a bare convert + quantize of the same types (JSON out).

Uses a LoRA run on the demo base (a random, non-zero adapter: no training) in a temporary folder.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.engine.test_export_merge.make_run
os.environ.setdefault("HF_HUB_OFFLINE", "1")
QUANTS = ["F16", "Q8_0", "Q4_K_M"]


def main() -> None:
    from engine.demo import ensure_demo_assets
    from engine.export.gguf import convert_to_gguf
    from engine.export.merge import merge_run
    from engine.export.pipeline import export_run
    from engine.export.quantize import quantize_gguf
    from engine.runs import RunDir
    from tests.engine.test_export_merge import make_run

    assets = ensure_demo_assets(lambda m: print(m, file=sys.stderr))
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(make_run(assets, Path(tmp)))
        t = time.perf_counter()
        merged = merge_run(run)
        src = run.path / "direct.F32.gguf"
        convert_to_gguf(merged, src, "f32")
        for q in QUANTS:
            quantize_gguf(src, run.path / f"direct.{q}.gguf", q)
        direct = time.perf_counter() - t
        t = time.perf_counter()
        report = export_run(run, QUANTS)
        proven = time.perf_counter() - t
    stages = report["seconds"]
    convert_s = stages["merge"] + stages["convert"] + sum(v for k, v in stages.items() if k.startswith("quantize_"))
    print(
        json.dumps(
            {
                "name": "export_vs_direct",
                "command": "python bench/export_vs_direct.py",
                "quants": QUANTS,
                "direct_s": round(direct, 2),
                "export_s": round(proven, 2),
                "ratio": round(proven / direct, 2),
                # the same work inside export_run (merge, convert, quantize), without the checks
                "export_convert_quantize_s": round(convert_s, 2),
                "ratio_convert_quantize": round(convert_s / direct, 2),
                "stages_s": report["seconds"],
                "eval_rows": report["samples"]["eval_rows"],
                "heldout_texts": report["samples"]["heldout_texts"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
