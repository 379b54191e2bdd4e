"""GPU check for the GPTQ and AWQ exports (GPTQModel): quantize the demo base, load it back, measure it.

Run on an NVIDIA machine with the extra installed: ``pip install 'tunedeck[gptq]'`` then
``python bench/gptq_awq_gpu_check.py``. Prints one JSON object; exits 1 when a method fails or its
top-1 agreement with the float model is below 0.8. Without CUDA it says so and exits 0 (GPTQ's CPU
path is covered by tests/e2e/test_export_gptq.py; GPTQModel 7.6's AWQ needs CUDA).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MIN_TOP1 = 0.8


def main() -> int:
    import torch

    from tunedeck.engine.export.hfquant import availability

    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device: run this on an NVIDIA GPU machine"}))
        return 0
    missing = {m: availability(m) for m in ("gptq", "awq") if availability(m)}
    if missing:
        print(json.dumps({"failed": missing}))
        return 1
    from tunedeck.engine.demo.base import ensure_demo_assets
    from tunedeck.engine.export.fidelity import HFReference, reference_scores, torch_scores
    from tunedeck.engine.export.hfquant import load_quantized, quantize_hf

    assets = ensure_demo_assets(lambda m: print(m, file=sys.stderr))
    ref = HFReference(assets.base)
    lines = assets.pretrain_text.read_text().splitlines()
    calibration = ["\n".join(lines[i : i + 8]) for i in range(0, 1024, 8)]
    texts = [ref.scored_text("\n".join(lines[i : i + 8])) for i in range(2048, 2048 + 256, 8)]
    result: dict = {"device": torch.cuda.get_device_name(0), "reference": reference_scores(ref, texts), "methods": {}}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("gptq", "awq"):
            t = time.time()
            try:
                info = quantize_hf(method, assets.base, Path(tmp) / method, calibration, 4, 128)
                model = load_quantized(Path(info["path"]))
                scores = torch_scores(model, ref, texts)
                entry = {"loaded": type(model).__name__, "seconds": round(time.time() - t, 1), **scores}
                ok &= scores["top1_agreement"] >= MIN_TOP1
                del model
            except Exception as e:  # report every method, then fail
                entry = {"error": f"{type(e).__name__}: {e}"}
                ok = False
            result["methods"][method] = entry
    result["ok"] = ok
    print(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
