"""bench/: every benchmark parses its arguments, and report.py turns results into docs with their commands.

No timings are asserted: benchmarks print figures, tests only check the plumbing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT

WITH_ARGS = ["engine_overhead", "bare_trl_sft", "throughput_options", "chat_vs_llama", "gpu_throughput",
             "gpu_memory_check", "data_inspect", "tui_latency", "report"]  # fmt: skip


@pytest.mark.parametrize("name", WITH_ARGS)
def test_bench_script_help(name):
    out = subprocess.run([sys.executable, f"bench/{name}.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage:")


def test_report_writes_figures_commands_and_gpu_instructions(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "engine_overhead.json").write_text(json.dumps({
        "name": "engine_overhead", "command": "python bench/engine_overhead.py --pairs 3", "ratio": 0.991,
        "goal_met": True, "trials": [{"pair": 0, "kind": "tunedeck", "tokens_per_s": 1234.5},
                                     {"pair": 0, "kind": "bare_trl", "tokens_per_s": 1245.0}],
    }))  # fmt: skip
    (results / "gpu_throughput.json").write_text(json.dumps({"name": "gpu_throughput", "skipped": "no CUDA device"}))
    out = tmp_path / "benchmarks.md"
    subprocess.run(
        [sys.executable, "bench/report.py", "--results", str(results), "--out", str(out)], cwd=ROOT, check=True
    )
    text = out.read_text()
    assert "| engine_overhead | ratio = 0.991; goal_met = True |" in text
    assert "Command: `python bench/engine_overhead.py --pairs 3`" in text
    assert "| 0 | tunedeck | 1,234 |" in text  # the per-trial table
    assert "Run on an NVIDIA machine: `python bench/gpu_throughput.py`" in text
    assert "No result: run `python bench/tui_latency.py`." in text
    assert "CPUs (" in text  # the machine line
