"""The export report as table rows: one shape for the CLI and the Export screen."""

from __future__ import annotations

COLUMNS = ("type", "size", "bpw", "ppl (HF)", "top-1", "KL", "accuracy (HF)", "stops", "fallbacks", "Modelfile")


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def fidelity_rows(report: dict) -> list[tuple[str, ...]]:
    """One row per exported file (GGUF, then GPTQ/AWQ), then one per type that could not be written."""
    rows = []
    for f in [*report.get("files", []), *report.get("hf_quant", [])]:
        fid = f.get("fidelity", {})
        mf = f.get("modelfile")
        rows.append(
            (
                f.get("type") or f"{f['method'].upper()}-{f['bits']}bit",
                f"{f['size_bytes'] / 2**20:.2f} MiB",
                _num(f.get("bits_per_weight"), ".2f"),
                f"{_num(fid.get('perplexity'), '.3f')} ({_num(fid.get('perplexity_hf'), '.3f')})",
                _num(fid.get("top1_agreement"), ".1%"),
                _num(fid.get("mean_kl"), ".4f"),
                f"{_num(fid.get('accuracy'), '.0%')} ({_num(fid.get('accuracy_hf'), '.0%')})",
                "-" if "stop_rate" not in f.get("verify", {}) else _num(f["verify"]["stop_rate"], ".0%"),
                str(len(f.get("fallback_tensors", []))) if "fallback_tensors" in f else "-",
                "-" if mf is None else ("matches" if mf["matches"] else "differs"),
            )
        )
    for u in report.get("unavailable", []):
        rows.append((u["type"], "unavailable: " + u["reason"], *([""] * (len(COLUMNS) - 2))))
    return rows


def parity_line(report: dict) -> str:
    """One line saying what the parity check proved."""
    p = report.get("parity")
    if not p:
        return "parity: not checked"
    eos = p["eos"]["gguf"]
    stop = p.get("stop", {})
    parts = [
        f"chat template {'equal' if p['chat_template']['equal'] else 'DIFFERENT'}",
        f"EOS {eos['token']!r} (id {eos['id']})",
        f"{p['render']['equal']}/{p['render']['conversations']} conversations render alike",
        f"{p['tokenization']['equal']}/{p['tokenization']['texts']} tokenize alike",
    ]
    if stop:
        parts.append(f"stops {stop.get('gguf_stopped', 0)}/{stop.get('hf_stopped', 0)} where HF stops")
    if p.get("fixed"):
        parts.append("corrected metadata: " + ", ".join(k for f in p["fixed"] for k in f["set"]))
    return "parity: " + "; ".join(parts)


def checks_line(report: dict, brief: bool = False) -> str:
    """How much was checked, on how many texts, at what cost beside merge + convert + quantize ('' for a report
    without checks: a failed export). ``brief``: the level and the cost, and how many things were not covered."""
    checks = report.get("checks")
    if not checks:
        return ""
    if checks["level"] == "none":
        return "checks: none (--checks quick or full to measure the files against the HF model)"
    line = f"checks: {checks['level']}, {checks['seconds']:.1f} s beside {checks['bare_seconds']:.1f} s of merge, convert and quantize"
    if brief:
        missing = len(checks["not_covered"])
        return line + (f"; {missing} not covered (export-report.json lists them)" if missing else "")
    ref = report.get("reference", {})
    line += f"; held-out: {ref.get('texts', 0)} texts from {ref.get('source')}"
    if report["samples"]["eval_rows"]:
        line += f"; accuracy on {report['samples']['eval_rows']} eval rows"
    if checks["not_covered"]:
        line += "; not covered: " + "; ".join(checks["not_covered"])
    return line
