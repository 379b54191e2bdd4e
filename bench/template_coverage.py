"""How many of llama.cpp's vendored chat templates get a right assistant-only mask; prints JSON.

Every template in the llama-cpp-python sdist (``vendor/llama.cpp/models/templates``, kept in the
wheelhouse by ``make install``) renders six conversations (single turn, system, multi-turn, tools, two
rounds of tool calls under a system prompt, reasoning) through tunedeck.engine.templates.corpus. Handled: every conversation it accepts gets a mask that
covers each assistant reply and no system/user/tool text. Goal: >= 90% handled, the rest refused
with a reason, never a wrong mask.

    PYTHONPATH=. python bench/template_coverage.py [--sdist PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

GOAL = 0.90


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sdist", help="llama_cpp_python-<version>.tar.gz (default: the Makefile's wheelhouse)")
    args = p.parse_args()
    from transformers import AutoTokenizer

    from tunedeck.engine.demo.base import ensure_demo_assets
    from tunedeck.engine.templates.corpus import coverage, llama_cpp_sdist, vendored_templates

    sdist = Path(args.sdist) if args.sdist else llama_cpp_sdist()
    if not sdist or not sdist.is_file():
        print(json.dumps({"skipped": "no llama-cpp-python sdist: run make install, or pass --sdist"}))
        return 0
    t = time.time()
    templates = vendored_templates(sdist)
    cov = coverage(AutoTokenizer.from_pretrained(ensure_demo_assets().base), templates)
    result = {
        "command": " ".join(["python bench/template_coverage.py", *sys.argv[1:]]),
        "sdist": sdist.name,
        "handled": cov["handled"],
        "total": cov["total"],
        "share": cov["share"],
        "goal": GOAL,
        "goal_met": cov["share"] >= GOAL,
        "refused": cov["refused"],
        "derived_turn_by_turn": cov["derived_by"]["rewritten"],
        "seconds": round(time.time() - t, 1),
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
