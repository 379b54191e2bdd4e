"""Benchmark ``tunedeck data inspect`` on a 1,000,000-row messages JSONL (~300 MB); prints JSON.

Measures, for two runs in fresh subprocesses: seconds to the first page (format + first rows on
stdout), total seconds, and the child's peak RSS. Targets: first page <= 2 s, peak RSS <= 1 GB.

    python bench/data_inspect.py [--rows N] [--dir DIR] [--model DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_PAGE_END = "checking all rows"  # the line the CLI prints right after the first page
TOPICS = ("rivers", "prime numbers", "sourdough", "the French revolution", "compilers", "tide pools", "jazz")


def make_rows_file(path: Path, rows: int, seed: int = 0) -> None:
    """A messages JSONL of ``rows`` rows of about 300 bytes each, with a few duplicates and bad rows."""
    rng = random.Random(seed)
    tmp = path.with_suffix(".partial")
    with tmp.open("w", encoding="utf-8") as f:
        for i in range(rows):
            topic = rng.choice(TOPICS)
            a, b = rng.randrange(10**6), rng.randrange(10**6)
            row = {
                "messages": [
                    {"role": "system", "content": "You are a concise, careful assistant."},
                    {"role": "user", "content": f"Question {i}: tell me one fact about {topic} and add {a} and {b}."},
                    {
                        "role": "assistant",
                        "content": f"Here is a fact about {topic}: it is worth studying. Also, {a} + {b} = {a + b}.",
                    },
                ]
            }
            if i % 100_000 == 99_999:
                row["messages"][-1]["content"] = ""  # an invalid row every 100k
            f.write(json.dumps(row) + "\n")
    tmp.rename(path)


def measure(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; time the first page and the whole run; peak RSS of that child from wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    first_page = None
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if first_page is None and line.startswith(FIRST_PAGE_END):
            first_page = time.perf_counter() - start
    stderr = proc.stderr.read() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    total = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # bytes
    return {
        "exit_code": proc.returncode,
        "first_page_s": round(first_page, 3) if first_page is not None else None,
        "total_s": round(total, 2),
        "peak_rss_mb": round(rss / 2**20, 1),
        "stdout_tail": "".join(lines[-6:]).strip(),
        "stderr_tail": stderr.strip()[-500:],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "tunedeck-bench"))
    p.add_argument("--model", help="also run with --model DIR (token stats on a 2,000-row sample)")
    p.add_argument("--runs", type=int, default=2)
    args = p.parse_args()

    path = Path(args.dir) / f"messages-{args.rows}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    generated = None
    if not path.exists():
        t = time.perf_counter()
        make_rows_file(path, args.rows)
        generated = round(time.perf_counter() - t, 1)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    base = [sys.executable, "-m", "tunedeck.tui.cli.main", "data", "inspect", str(path)]
    command = f"python bench/data_inspect.py --rows {args.rows} --runs {args.runs}"
    result: dict = {
        "name": "data_inspect",
        "command": command + (f" --model {args.model}" if args.model else ""),
        "file": str(path),
        "rows": args.rows,
        "size_mb": round(path.stat().st_size / 2**20, 1),
        "generated_s": generated,
        "runs": [measure(base, env) for _ in range(args.runs)],
    }
    if args.model:
        result["runs_with_model"] = [measure([*base, "--model", args.model], env) for _ in range(args.runs)]
    all_runs = result["runs"] + result.get("runs_with_model", [])
    result["max_first_page_s"] = max(r["first_page_s"] or float("inf") for r in all_runs)
    result["max_peak_rss_mb"] = max(r["peak_rss_mb"] for r in all_runs)
    result["note"] = "exit code 1 is expected: the file has a planted invalid row every 100,000, which inspect reports"
    result["targets_met"] = result["max_first_page_s"] <= 2.0 and result["max_peak_rss_mb"] <= 1024
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
