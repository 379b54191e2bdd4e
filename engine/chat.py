"""Chat with a GGUF through llama-cpp-python, using the chat template and stop tokens stored in it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("tunedeck.chat")
OFFLOAD_FAILED: list[str] = []  # GGUFs llama.cpp could not load onto the GPU in this process (they ran on the CPU)


def gpu_layers() -> int:
    """llama.cpp's n_gpu_layers: all of them where llama-cpp-python was built with GPU offload, else none."""
    import llama_cpp

    return -1 if llama_cpp.llama_supports_gpu_offload() else 0


def open_llama(path: Path, **kwargs):
    """``llama_cpp.Llama`` on the GPU where the build can offload, else (or when loading there fails, e.g. the GPU is
    full with a training run or the HF reference) on the CPU; a failed offload is logged and kept in OFFLOAD_FAILED."""
    from llama_cpp import Llama

    if gpu_layers():
        try:
            return Llama(str(path), n_gpu_layers=-1, **kwargs)
        except ValueError as e:  # llama-cpp-python: "Failed to load model from file"
            OFFLOAD_FAILED.append(Path(path).name)
            log.warning("%s: loading onto the GPU failed (%s); using the CPU", Path(path).name, e)
    return Llama(str(path), n_gpu_layers=0, **kwargs)


def _context_length(path: Path) -> int | None:
    """The context length the model was trained with, read from the GGUF header."""
    from tunedeck.engine.export.gguf import read_metadata

    meta = read_metadata(path)
    value = meta.get(f"{meta.get('general.architecture')}.context_length")
    return int(value) if value is not None else None


class ChatSession:
    """One loaded GGUF. ``stream()`` yields text chunks; call ``close()`` (or use ``with``) when done."""

    def __init__(self, gguf_path: str | Path, n_ctx: int = 2048, n_threads: int | None = None, seed: int = 0):
        path = Path(gguf_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such GGUF file")
        self.path = path
        trained = _context_length(path)
        self.n_ctx = min(n_ctx, trained) if trained else n_ctx
        self.llm = open_llama(path, n_ctx=self.n_ctx, n_threads=n_threads, seed=seed, verbose=False)

    @property
    def chat_template(self) -> str | None:
        return self.llm.metadata.get("tokenizer.chat_template")

    def stream(
        self,
        messages: list[dict[str, str]],
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = 256,
    ) -> Iterator[str]:
        """Stream the assistant's reply; generation ends at the GGUF's end-of-turn token."""
        chunks = self.llm.create_chat_completion(
            messages=messages, temperature=temperature, top_p=top_p, max_tokens=max_tokens, stream=True
        )
        for chunk in chunks:
            text = chunk["choices"][0]["delta"].get("content")
            if text:
                yield text

    def reply(self, messages: list[dict[str, str]], **kwargs) -> str:
        return "".join(self.stream(messages, **kwargs))

    def close(self) -> None:
        # Without an explicit close, llama-cpp-python's __del__ can raise at interpreter exit.
        if getattr(self, "llm", None) is not None:
            self.llm.close()
            self.llm = None

    def __enter__(self) -> ChatSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
