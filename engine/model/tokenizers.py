"""The one place tunedeck loads a tokenizer (tests/test_import_contract.py holds everyone else to it).

It imports nothing of the engine, so any module may use it without an import cycle.
"""

from __future__ import annotations

from pathlib import Path


def pretrained_tokenizer(source: str, trust_remote_code: bool, revision: str | None):
    """The tokenizer of a model folder or Hub id (at ``revision``); tunedeck.engine.model.loading adds the chat template."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, revision=revision)


def load_saved_tokenizer(folder: str | Path, gguf_file: str | None = None, fast: bool = False):
    """The tokenizer saved in a folder tunedeck wrote or chose (an adapter, a merged model, a reward model), or the
    one inside a GGUF (``gguf_file``, read by transformers' GGUF loader; ``fast`` keeps the plain fast class)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    cls = PreTrainedTokenizerFast if fast else AutoTokenizer
    return cls.from_pretrained(str(folder), **({"gguf_file": gguf_file} if gguf_file else {}))
