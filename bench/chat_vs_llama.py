"""Chat: our path (tunedeck.engine.chat.ChatSession.stream) against llama-cpp-python called directly; JSON out.

One GGUF for both: the demo base converted with llama.cpp's converter and quantized to Q4_K_M
(cached in the temp dir, keyed by the demo assets). Both load it with the same Llama() arguments
(n_ctx as ChatSession resolves it, seed 0, default threads) and stream
``create_chat_completion(temperature=0, top_p=1, max_tokens=N)`` for the same prompts; trials
alternate (A B, then B A). Per reply: time to first token (call to first text chunk), decode
tokens/s ((chunks - 1) / (last chunk - first chunk)) and the whole reply's chunks/s. Greedy
decoding must give both the same text. Goal: ratio >= 0.95.

    python bench/chat_vs_llama.py [--rounds 10] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

GOAL = 0.95
PROMPTS = [
    "What is 7 plus 5?",
    "Add 13 and 4.",
    "What is the sum of 9 and 11?",
    "What do you get when you add 3 to 18?",
]


def demo_gguf() -> Path:
    """The demo base as a Q4_K_M GGUF, built once per demo-assets version."""
    from tunedeck.engine.demo.base import ensure_demo_assets

    assets = ensure_demo_assets(lambda m: print(m, file=sys.stderr))
    out = Path(tempfile.gettempdir()) / "tunedeck-bench" / f"{assets.root.name}.Q4_K_M.gguf"
    if not out.exists():
        from tunedeck.engine.export.gguf import convert_to_gguf
        from tunedeck.engine.export.quantize import quantize_gguf

        out.parent.mkdir(parents=True, exist_ok=True)
        f32 = out.with_suffix(".f32.tmp")
        convert_to_gguf(assets.base, f32, "f32")
        quantize_gguf(f32, out.with_suffix(".tmp"), "Q4_K_M")
        out.with_suffix(".tmp").rename(out)
        f32.unlink()
    return out


def timed(chunks) -> dict:
    """Consume a stream of text chunks; time to first chunk, decode rate, text."""
    t0 = time.perf_counter()
    stamps, text = [], []
    for chunk in chunks:
        stamps.append(time.perf_counter())
        text.append(chunk)
    n = len(stamps)
    decode = (n - 1) / (stamps[-1] - stamps[0]) if n > 1 and stamps[-1] > stamps[0] else None
    return {
        "ttft_s": stamps[0] - t0 if stamps else None,
        "total_s": (stamps[-1] if stamps else time.perf_counter()) - t0,
        "chunks": n,
        "decode_tokens_per_s": decode,
        "text": "".join(text),
    }


def direct_stream(llm, messages, temperature: float, top_p: float, max_tokens: int):
    """What a user of llama-cpp-python writes: stream the completion, yield the text deltas."""
    for chunk in llm.create_chat_completion(
        messages=messages, temperature=temperature, top_p=top_p, max_tokens=max_tokens, stream=True
    ):
        text = chunk["choices"][0]["delta"].get("content")
        if text:
            yield text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10, help="rounds over the prompts, each prompt A then B (or B then A)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--gguf", help="this GGUF instead of the demo base's (e.g. an export of the real-model demo)")
    p.add_argument("--eval", help="with --gguf: a messages JSONL whose rows (up to their last reply) are the prompts")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llama_cpp import Llama

    from tunedeck.engine.chat import ChatSession, gpu_layers

    path = Path(args.gguf) if args.gguf else demo_gguf()
    if args.eval:
        from tunedeck.engine.evaluate import load_eval_rows, split_prompt

        conversations = [split_prompt(r)[0] for r in load_eval_rows(Path(args.eval))[: len(PROMPTS)]]
    else:
        conversations = [[{"role": "user", "content": prompt}] for prompt in PROMPTS]
    t = time.perf_counter()
    ours = ChatSession(path, seed=0)
    load_ours = time.perf_counter() - t
    t = time.perf_counter()
    direct = Llama(str(path), n_ctx=ours.n_ctx, n_threads=None, seed=0, n_gpu_layers=gpu_layers(), verbose=False)
    load_direct = time.perf_counter() - t
    params = dict(temperature=0.0, top_p=1.0, max_tokens=args.max_tokens)
    runners = {
        "tunedeck": lambda m: timed(ours.stream(m, **params)),
        "llama_cpp": lambda m: timed(direct_stream(direct, m, **params)),
    }
    try:
        for run in runners.values():  # warm both once, untimed
            run(conversations[0])
        trials: list[dict] = []
        i = 0
        for rnd in range(args.rounds):
            for conversation in conversations:
                order = ("tunedeck", "llama_cpp") if i % 2 == 0 else ("llama_cpp", "tunedeck")
                i += 1
                for kind in order:
                    r = runners[kind](conversation)
                    trials.append({"kind": kind, "round": rnd, "prompt": conversation[-1]["content"], **r})
    finally:
        ours.close()
        direct.close()
    texts_match = all(
        a["text"] == b["text"] for a, b in zip(*[[t for t in trials if t["kind"] == k] for k in runners], strict=True)
    )

    def med(kind: str, key: str) -> float:
        return statistics.median(t[key] for t in trials if t["kind"] == kind and t[key] is not None)

    summary = {
        k: {
            "median_ttft_ms": round(med(k, "ttft_s") * 1000, 3),
            "median_decode_tokens_per_s": round(med(k, "decode_tokens_per_s"), 1),
            "median_reply_s": round(med(k, "total_s"), 4),
            "median_chunks": med(k, "chunks"),
        }
        for k in runners
    }
    ratio = summary["tunedeck"]["median_decode_tokens_per_s"] / summary["llama_cpp"]["median_decode_tokens_per_s"]
    ttft_ratio = summary["llama_cpp"]["median_ttft_ms"] / summary["tunedeck"]["median_ttft_ms"]
    result = {
        "name": "chat_vs_llama",
        "command": f"python bench/chat_vs_llama.py --rounds {args.rounds} --max-tokens {args.max_tokens}"
        + (f" --gguf {args.gguf}" if args.gguf else "") + (f" --eval {args.eval}" if args.eval else ""),
        "measured": "streamed chat replies, same GGUF and parameters; decode tokens/s = (chunks-1)/(last-first chunk)",
        "gguf": str(path),
        "params": {**params, "n_ctx": ours.n_ctx, "n_threads": "llama-cpp-python default", "seed": 0},
        "load_s": {"tunedeck": round(load_ours, 3), "llama_cpp": round(load_direct, 3)},
        "replies_per_side": len(trials) // 2,
        "summary": summary,
        "ratio_decode_tokens_per_s": round(ratio, 3),
        "ratio_ttft": round(ttft_ratio, 3),
        "goal": f"both ratios >= {GOAL} (1.0: no cost; ttft ratio = direct / ours)",
        "goal_met": ratio >= GOAL and ttft_ratio >= GOAL,
        "texts_match": texts_match,
        "sample_reply": trials[0]["text"][:200],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
