"""Load every exported GGUF once and check it answers and stops."""

from __future__ import annotations

from pathlib import Path

from engine.chat import ChatSession


def verify_gguf(path: Path, prompt: list[dict[str, str]], max_tokens: int = 32) -> dict:
    """Greedy reply to ``prompt``; ``stopped`` is True when it ended on the end-of-turn token."""
    with ChatSession(path, n_ctx=512) as chat:
        out = chat.llm.create_chat_completion(messages=prompt, temperature=0.0, max_tokens=max_tokens)
    choice = out["choices"][0]
    return {
        "loaded": True,
        "sample_reply": choice["message"]["content"],
        "stopped": choice["finish_reason"] == "stop",
    }
