"""Task accuracy on an eval set in messages format: greedy answer == the reference assistant turn."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

Answer = Callable[[list[dict[str, str]]], str]


def load_eval_rows(path: Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def split_prompt(row: dict) -> tuple[list[dict[str, str]], str]:
    """(conversation up to the last assistant turn, that turn's reference text)."""
    messages = row["messages"]
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("eval row must end with an assistant turn (the reference answer)")
    return messages[:-1], messages[-1]["content"]


def normalize(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


def exact_match(answer: Answer, rows: Iterable[dict]) -> float:
    """Fraction of rows whose first answer line equals the reference."""
    rows = list(rows)
    hits = 0
    for row in rows:
        prompt, reference = split_prompt(row)
        hits += normalize(answer(prompt)) == normalize(reference)
    return hits / max(len(rows), 1)


def reply_budget(tokenizer, rows: list[dict]) -> int:
    """New tokens enough for every reference reply: its longest, plus the end of turn and some slack (at least 16).
    One budget for the HF model and each GGUF, so a long reply is not cut on one side only."""
    longest = max((len(tokenizer(split_prompt(r)[1], add_special_tokens=False)["input_ids"]) for r in rows), default=0)
    return max(16, longest + 8)


def hf_exact_match(model, tokenizer, rows: list[dict], max_new_tokens: int = 16, batch_size: int = 50) -> float:
    """Fraction of rows a transformers model answers exactly as the reference (greedy)."""
    answers = hf_answers(model, tokenizer, rows, max_new_tokens, batch_size)
    hits = sum(normalize(a) == normalize(split_prompt(r)[1]) for a, r in zip(answers, rows, strict=True))
    return hits / max(len(rows), 1)


def hf_answers(model, tokenizer, rows: list[dict], max_new_tokens: int = 16, batch_size: int = 50) -> list[str]:
    """Greedy, batched answers of a transformers model to each row's prompt (left padding)."""
    import torch

    prompts = [split_prompt(r) for r in rows]
    tokenizer.padding_side = "left"
    answers: list[str] = []
    model.eval()
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i : i + batch_size]
        texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p, _ in chunk]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.no_grad():
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                # the model's own stops (EOS and the template's end of turn, as instruct configs list them)
                eos_token_id=model.generation_config.eos_token_id or tokenizer.eos_token_id,
            )
        answers += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return answers

