"""Write docs/benchmarks.md from bench/results/*.json (run by ``make bench`` after the benchmarks).

Each benchmark gets a table of its figures and the exact command that produced them, the date
its result was written and the machine. GPU-only benchmarks that skipped here are listed with
the command to run on an NVIDIA machine.

    python bench/report.py [--results bench/results] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Order and one line on what each shows (issue 11's points).
BENCHES = {
    "demo_robustness": "Demo: held-out accuracy of the demo SFT over base seeds x SFT seeds x threads x float32 matmul precision.",
    "demo_time": "Demo: `tunedeck demo --headless` from an empty cache, then with the base cached.",
    "template_coverage": "Chat templates: llama.cpp's vendored templates whose assistant-only mask is right (tools and reasoning included).",
    "real_demo": "A real model: Gemma 3 270M from its GGUF, LoRA SFT on an extraction task, held-out accuracy per stage, "
    "then F16 to Q2_K exports measured against the tuned model (`--checks full`).",
    "real_model": "A real model: training tokens/s against bare TRL, chat decode against llama-cpp-python, the memory "
    "estimate against measured peaks (LoRA, QLoRA), on Gemma 3 270M.",
    "engine_overhead": "Engine overhead: `tunedeck train` against a bare TRL script, same settings, alternated.",
    "throughput_options": "Throughput options: packing and padding-free against the default on the demo data.",
    "tui_latency": "TUI: startup to first frame; key-to-frame latency (to the new screen's first frame) while a run trains "
    "on the machine, and the run's tokens/s with the UI open against closed.",
    "data_inspect": "Data: `tunedeck data inspect` of a 1M-row JSONL: first page, total, peak RSS.",
    "chat_vs_llama": "Chat: our chat path against llama-cpp-python called directly, same GGUF and parameters.",
    "export_checks": "Export: the cost of `--checks quick` and `full` beside merge + convert + quantize (`--checks none`), demo model.",
    "export_checks_qwen2_0_5b": "Export: the same on a 0.5B-shaped Qwen2 (494M parameters, the real Qwen2 tokenizer, random weights).",
    "attach_history": "Attach: a 100,000-event history replayed by `tunedeck attach`.",
    "gpu_throughput": "GPU: LoRA and QLoRA SFT tokens/s, MFU, peak memory against the estimate (~0.5B).",
    "gpu_memory_check": "GPU: the memory estimate against torch.cuda.max_memory_allocated (~0.5B, LoRA/QLoRA).",
    "gpu_distributed_check": "GPU: DDP, FSDP and DeepSpeed ZeRO launches of the demo recipe on every GPU of the machine.",
    "gptq_awq_gpu_check": "GPU: GPTQ and AWQ exports through GPTQModel, quality against the float model.",
}
# The figures for the summary table at the top (dotted keys into each result).
HEADLINES = {
    "demo_robustness": ["min", "median", "goal_met"],
    "demo_time": ["empty_cache_s", "base_cached_s", "goal_met"],
    "template_coverage": ["handled", "total", "share", "goal_met"],
    "real_demo": ["demo.accuracy.base", "demo.accuracy.tuned", "demo.accuracy_gguf.Q8_0", "demo.accuracy_gguf.Q4_K_M",
                  "demo.seconds.total", "demo.passed", "cpu"],
    "real_model": ["training.ratio_vs_bare_trl_with_the_switch", "training.ratio_vs_bare_trl_as_is", "chat.ratio_decode_tokens_per_s",
                   "memory.lora.ratio", "memory.qlora.ratio", "goals_met", "cpu"],
    "engine_overhead": ["ratio", "median_tokens_per_s.tunedeck", "median_tokens_per_s.bare_trl", "goal_met"],
    "throughput_options": ["summary.packing.vs_default", "summary.padding_free.vs_default", "summary.liger.skipped"],
    "tui_latency": ["key_to_frame_ms_p50", "key_to_frame_ms_p99", "train_speed_ratio_open_vs_closed", "goal_met", "cpu_model"],
    "data_inspect": ["max_first_page_s", "max_peak_rss_mb", "targets_met"],
    "chat_vs_llama": ["ratio_decode_tokens_per_s", "ratio_ttft", "goal_met"],
    "export_checks": ["quick_checks_over_bare", "quick.checks_s", "quick.bare_s", "full.checks_over_bare", "goal_met", "cpu_model"],
    "export_checks_qwen2_0_5b": ["quick_checks_over_bare", "quick.checks_s", "quick.bare_s", "goal_met", "cpu_model"],
    "attach_history": ["history_seconds_in_process", "attach_cli_seconds_total"],
}
SKIP_KEYS = {"name", "command", "measured", "stdout_tail", "stderr_tail", "sample_reply", "config", "file", "gguf"}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        kib = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")))
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}){mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**5:
        return f"{v:,}"
    return str(v).replace("|", "\\|")


def flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Scalar figures as (dotted key, value); lists of rows are rendered separately."""
    rows = []
    for k, v in d.items():
        if k in SKIP_KEYS:
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            rows += flatten(v, key + ".")
        elif isinstance(v, list) and v and all(isinstance(x, (int, float, str)) for x in v):
            rows.append((key, ", ".join(fmt(x) for x in v)))
        elif not isinstance(v, list) and v is not None:
            rows.append((key, v))
    return rows


def row_tables(d: dict) -> list[tuple[str, list[dict]]]:
    """Lists of dicts (trials, runs, cases), anywhere one level down."""
    out = []
    for k, v in d.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            out.append((k, v))
        elif isinstance(v, dict):
            out += [(f"{k}.{kk}", vv) for kk, vv in row_tables(v)]
    return out


def table(rows: list[dict]) -> list[str]:
    cols = [c for c in dict.fromkeys(k for r in rows for k in r) if c not in SKIP_KEYS]
    cols = [c for c in cols if all(not isinstance(r.get(c), (dict, list)) for r in rows)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return lines


def section(name: str, path: Path) -> list[str]:
    head = [f"## {name}", "", BENCHES.get(name, ""), ""]
    if not path.exists():
        return [*head, f"No result: run `python bench/{name}.py`.", ""]
    data = json.loads(path.read_text())
    command = data.get("command", f"python bench/{name}.py")
    if "skipped" in data:
        return [*head, f"Skipped here ({data['skipped']}). Run on an NVIDIA machine: `{command}`", ""]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(path.stat().st_mtime))
    lines = [*head, f"Command: `{command}` (written {when}).", ""]
    if data.get("measured"):
        lines += [f"Measured: {data['measured']}.", ""]
    lines += ["| figure | value |", "|---|---|"]
    lines += [f"| {k} | {fmt(v)} |" for k, v in flatten(data)]
    for title, rows in row_tables(data):
        lines += ["", f"{title}:", "", *table(rows)]
    return [*lines, ""]


def loads_recorded(results: Path) -> list[float]:
    """Every ``loadavg_1m`` the benchmarks recorded, at any depth."""
    found: list[float] = []

    def walk(v) -> None:
        if isinstance(v, dict):
            found.extend(x for k, x in v.items() if k == "loadavg_1m" and isinstance(x, (int, float)))
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for path in results.glob("*.json"):
        walk(json.loads(path.read_text()))
    return found


def summary(names: list[str], results: Path) -> list[str]:
    lines = ["## Summary", "", "| benchmark | headline figures |", "|---|---|"]
    for name in names:
        path = results / f"{name}.json"
        if not path.exists():
            lines.append(f"| {name} | no result |")
            continue
        data = json.loads(path.read_text())
        if "skipped" in data:
            lines.append(f"| {name} | skipped: {fmt(data['skipped'])} |")
            continue
        figures = dict(flatten(data))
        shown = [f"{k} = {fmt(figures[k])}" for k in HEADLINES.get(name, []) if k in figures]
        lines.append(f"| {name} | {'; '.join(shown) or 'see below'} |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=str(ROOT / "bench" / "results"))
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = p.parse_args(argv)
    results = Path(args.results)
    names = list(BENCHES) + sorted(p.stem for p in results.glob("*.json") if p.stem not in BENCHES)
    intro = (ROOT / "bench" / "README.md").read_text().strip() if (ROOT / "bench" / "README.md").exists() else ""
    load = os.getloadavg()
    seen = sorted(loads_recorded(results))
    during = (
        f" The 1-minute load average recorded during the measurements ran from {seen[0]:.1f} to {seen[-1]:.1f}."
        if seen
        else ""
    )
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (bench/report.py from bench/results/*.json); do not edit by hand.",
        "",
        f"Machine: {machine()}. Load average when this page was written: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"
        f" (1/5/15 min).{during}",
        "",
    ]
    if intro:
        lines += [intro, ""]
    lines += summary(names, results)
    for name in names:
        lines += section(name, results / f"{name}.json")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
