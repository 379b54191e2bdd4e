"""How long `tunedeck demo --headless` takes: from an empty cache, then again with the base cached.

Both runs are the real CLI in a subprocess with a private cache (TUNEDECK_CACHE_DIR) and workspace.
Goals (issue 16): <= 300 s from an empty cache, <= 120 s with the base cached, on 2 cores; the
demo's own verdict (``passed``) and held-out accuracy are recorded beside the seconds.

    PYTHONPATH=. python bench/demo_time.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from demo_robustness import _cpu  # bench/ is on sys.path when a script in it runs

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"empty_cache": 300.0, "base_cached": 120.0}


def _demo(cache: Path, workspace: Path) -> dict:
    t = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui.cli.main", "demo", "--headless", "--json", "--dir", str(workspace)],
        capture_output=True,
        text=True,
        env={**os.environ, "TUNEDECK_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
    )
    wall = time.time() - t
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"exit": proc.returncode, "wall_s": round(wall, 1), "error": proc.stderr.strip()[-500:]}
    return {
        "exit": proc.returncode,
        "wall_s": round(wall, 1),
        "passed": result["passed"],
        "tuned": result["accuracy"]["tuned"],
        "gguf_min": min(result["accuracy"]["gguf"].values()),
        "seconds": result["seconds"],
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="demo-time-") as tmp:
        cache = Path(tmp) / "cache"
        runs = {name: _demo(cache, Path(tmp) / name) for name in GOALS}
    print(json.dumps({
        "measured": f"{os.cpu_count()} CPUs ({_cpu()})",
        **{f"{name}_s": runs[name]["wall_s"] for name in GOALS},
        "goals_s": GOALS,
        "goal_met": all(runs[n].get("passed") and runs[n]["wall_s"] <= g for n, g in GOALS.items()),
        "runs": [{"cache": name, **{k: v for k, v in r.items() if k != "seconds"}, **r.get("seconds", {})} for name, r in runs.items()],
    }, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
