"""Adapter -> full model (safetensors, sharded), and the adapter itself as a standalone export."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tunedeck.engine.recipe import load_recipe
from tunedeck.engine.run.rundir import RunDir

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
    "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
)  # fmt: skip


@dataclass(frozen=True)
class WeightsSource:
    """What an export starts from: the run's final adapter (or full model), or one of its complete checkpoints."""

    path: Path
    checkpoint: str | None  # "step-000213"; None: the final weights

    def describe(self, run: RunDir) -> str:
        if self.checkpoint is None:
            return "the final weights of the finished run"
        return f"checkpoint {self.checkpoint} of the {run.state()} run"


def weights_source(run: RunDir, checkpoint: str | None = None) -> WeightsSource:
    """The weights to export: ``checkpoint`` ("step-000213", "213" or "latest") when given; else the final adapter
    (or model) of a finished run, else the newest complete checkpoint of a stopped, crashed or failed one."""
    from tunedeck.engine.export.errors import ExportError

    recipe = load_recipe(run.recipe_path)
    final = run.model if recipe.adapter.kind == "full" else run.adapter
    marker = "config.json" if recipe.adapter.kind == "full" else "adapter_config.json"
    complete = run.complete_checkpoints()
    names = ", ".join(c.name for c in complete) or "none"
    if checkpoint is None:
        if run.state() == "finished" and (final / marker).is_file():
            return WeightsSource(final, None)
        if not complete:
            raise ExportError(f"run {run.id} is {run.state()} with no final weights and no complete checkpoint to export")
        return WeightsSource(complete[-1], complete[-1].name)
    if checkpoint == "latest" and complete:
        return WeightsSource(complete[-1], complete[-1].name)
    wanted = f"step-{int(checkpoint):06d}" if checkpoint.isdigit() else checkpoint
    for c in complete:
        if c.name == wanted:
            return WeightsSource(c, c.name)
    raise ExportError(f"run {run.id} has no complete checkpoint {checkpoint!r} (complete: {names})")


def merge_run(run: RunDir, max_shard_size: str = "2GB", source: WeightsSource | None = None) -> Path:
    """Write run/merged (the adapter of ``source``, default the final one, merged into the base in float32)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunedeck.engine.model.tokenizers import load_saved_tokenizer

    recipe = load_recipe(run.recipe_path)
    if recipe.adapter.kind == "full":
        model = source.path if source else run.model
        if not (model / "config.json").exists():
            raise FileNotFoundError(f"{model}: the run has no trained model (state: {run.state()})")
        return model
    adapter = source.path if source else run.adapter
    if not (adapter / "adapter_config.json").exists():
        raise FileNotFoundError(f"{adapter}: the run has no trained adapter (state: {run.state()})")
    base = AutoModelForCausalLM.from_pretrained(
        recipe.model.name_or_path,
        dtype=torch.float32,  # merge in full precision, also for QLoRA runs (no 4-bit rounding baked in)
        trust_remote_code=recipe.model.trust_remote_code,
        revision=recipe.model.revision,
        use_safetensors=True,
    )
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    tmp = run.path / ".merged.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True, max_shard_size=max_shard_size)
    load_saved_tokenizer(adapter).save_pretrained(tmp)
    _carry_sentencepiece_model(recipe, adapter, tmp)
    _carry_added_tokens_decoder(Path(recipe.model.name_or_path).expanduser(), tmp)
    shutil.rmtree(run.merged, ignore_errors=True)
    os.replace(tmp, run.merged)
    return run.merged


def _carry_added_tokens_decoder(base: Path, dest: Path) -> None:
    """Keep the base folder's ``added_tokens_decoder`` declarations that the saved tokenizer_config.json dropped
    (transformers 5 does not write them): llama.cpp's converter types a SentencePiece token USER_DEFINED only from
    there, and a model folder made from a GGUF (tunedeck.engine.model.gguf_import) declares its user-defined tokens in it."""
    source, target = base / "tokenizer_config.json", dest / "tokenizer_config.json"
    if not (source.is_file() and target.is_file()):
        return
    declared = json.loads(source.read_text(encoding="utf-8")).get("added_tokens_decoder") or {}
    config = json.loads(target.read_text(encoding="utf-8"))
    missing = {k: v for k, v in declared.items() if k not in (config.get("added_tokens_decoder") or {})}
    if missing:
        config["added_tokens_decoder"] = {**missing, **(config.get("added_tokens_decoder") or {})}
        target.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")


def _carry_sentencepiece_model(recipe, adapter: Path, dest: Path) -> None:
    """Copy the base's ``tokenizer.model`` beside the merged weights when the saved tokenizer did not write it:
    llama.cpp's converter reads it for SentencePiece families (Llama 2, Mistral, Phi-3, Gemma)."""
    if (dest / "tokenizer.model").exists():
        return
    for folder in (adapter, Path(recipe.model.name_or_path).expanduser()):
        if (folder / "tokenizer.model").is_file():
            shutil.copy2(folder / "tokenizer.model", dest / "tokenizer.model")
            return
    try:  # a Hub id: the file from the local cache, if the model has one
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(recipe.model.name_or_path, "tokenizer.model", revision=recipe.model.revision)
    except Exception:  # not a repo id
        return
    if isinstance(cached, str):
        shutil.copy2(cached, dest / "tokenizer.model")


def describe_model_dir(path: Path) -> dict:
    """Files, shards and size of a safetensors model folder."""
    files = sorted(p for p in Path(path).iterdir() if p.is_file())
    shards = [p.name for p in files if p.suffix == ".safetensors"]
    return {
        "path": str(path),
        "shards": shards,
        "index": (Path(path) / "model.safetensors.index.json").is_file(),
        "size_bytes": sum(p.stat().st_size for p in files if p.suffix == ".safetensors"),
    }


def export_adapter(run: RunDir, dest: Path, source: WeightsSource | None = None) -> dict:
    """Copy the PEFT adapter (config + safetensors; default the final one) and its tokenizer to ``dest``."""
    adapter = source.path if source else run.adapter
    missing = [name for name in ADAPTER_FILES if not (adapter / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{adapter}: no {', '.join(missing)} (state: {run.state()})")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in (*ADAPTER_FILES, *TOKENIZER_FILES, "README.md"):
        if (adapter / name).is_file():
            shutil.copy2(adapter / name, tmp / name)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    config = json.loads((dest / "adapter_config.json").read_text())
    return {
        "path": str(dest),
        "files": sorted(p.name for p in dest.iterdir()),
        "size_bytes": (dest / "adapter_model.safetensors").stat().st_size,
        "peft_type": config.get("peft_type"),
        "base_model": config.get("base_model_name_or_path"),
        "r": config.get("r"),
    }


def adapter_logits(base: str, adapter_dir: Path, ids: list[int], trust_remote_code: bool = False, revision: str | None = None):
    """Logits of base + adapter (loaded from the exported copy, not merged) for one token sequence."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        base, dtype=torch.float32, trust_remote_code=trust_remote_code, revision=revision, use_safetensors=True
    )
    model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor([ids])).logits[0].numpy()
    del model
    return out
