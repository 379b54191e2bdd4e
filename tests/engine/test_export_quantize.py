"""Every GGUF type on the demo-sized model (rows a multiple of 256), fallbacks named, IQ types via an imatrix."""

from pathlib import Path

import pytest

from tunedeck.engine.recipe import GGUF_IMATRIX_TYPES, GGUF_TYPES

pytestmark = pytest.mark.slow

FLOATS = ("F32", "F16", "BF16")
PLAIN = [t for t in GGUF_TYPES if t not in GGUF_IMATRIX_TYPES]


@pytest.fixture(scope="module")
def f32(demo_assets, tmp_path_factory) -> Path:
    from tunedeck.engine.export.gguf import convert_to_gguf

    out = tmp_path_factory.mktemp("gguf") / "base.F32.gguf"
    convert_to_gguf(demo_assets.base, out, "f32")
    return out


@pytest.fixture(scope="module")
def imatrix(demo_assets, f32):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunedeck.engine.export.imatrix import compute_imatrix

    tok = AutoTokenizer.from_pretrained(demo_assets.base)
    model = AutoModelForCausalLM.from_pretrained(demo_assets.base)
    lines = demo_assets.pretrain_text.read_text().splitlines()[:200]
    ids = tok("\n".join(lines))["input_ids"]
    return compute_imatrix(model, [ids[i : i + 256] for i in range(0, len(ids), 256)], f32)


def _answers(path: Path) -> list[float]:
    """The file loads in llama.cpp and produces finite logits for a short text."""
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(str(path), n_ctx=64, logits_all=True, verbose=False)
    try:
        ids = llm.tokenize(b"3+4=7\n5+6=11", add_bos=False)
        llm.eval(ids)
        scores = np.array(llm.scores[: len(ids)])
    finally:
        llm.close()
    assert np.isfinite(scores).all()
    return scores


@pytest.mark.parametrize("qtype", PLAIN)
def test_every_type_quantizes_loads_and_keeps_every_tensor_on_its_type(f32, tmp_path, qtype):
    from tunedeck.engine.export.gguf import tensor_stats
    from tunedeck.engine.export.quantize import quantize_gguf

    out = tmp_path / f"m.{qtype}.gguf"
    result = quantize_gguf(f32, out, qtype)
    assert result.fallback_tensors == []  # every row of the demo base is a multiple of 256
    _answers(out)
    bpw = tensor_stats(out)["bits_per_weight"]
    assert bpw <= 32 and (qtype in FLOATS or bpw < 9)


def test_the_types_that_need_an_importance_matrix_name_it_without_one(f32, tmp_path):
    from tunedeck.engine.export.quantize import QuantizeError, quantize_gguf

    with pytest.raises(QuantizeError, match=r"importance matrix .*tensor blk\.\d+\.\w+\.weight"):
        quantize_gguf(f32, tmp_path / "m.IQ2_XXS.gguf", "IQ2_XXS")
    assert not (tmp_path / "m.IQ2_XXS.gguf").exists()


def test_the_importance_matrix_covers_every_linear_layer(imatrix):
    matrix, report = imatrix
    # 2 layers x (q, k, v, o, gate, up, down) + output
    assert report["mapped"] == 15 and not report["unmapped"] and not report["size_mismatch"]
    assert matrix["blk.0.ffn_down.weight"].shape == (512,) and matrix["blk.1.attn_q.weight"].shape == (256,)
    assert all((v >= 0).all() and v.max() > 0 for v in matrix.values())


@pytest.mark.parametrize("qtype", GGUF_IMATRIX_TYPES)
def test_imatrix_types_quantize_with_the_computed_matrix(f32, imatrix, tmp_path, qtype):
    from tunedeck.engine.export.gguf import tensor_stats
    from tunedeck.engine.export.quantize import quantize_gguf

    out = tmp_path / f"m.{qtype}.gguf"
    result = quantize_gguf(f32, out, qtype, imatrix=imatrix[0])
    assert result.imatrix_entries == 15 and result.fallback_tensors == []
    _answers(out)
    assert tensor_stats(out)["bits_per_weight"] < 4


def test_fallback_tensors_are_named_for_rows_that_are_not_multiples_of_256(demo_assets, tmp_path):
    """A model 320 wide: K-quants cannot hold its rows; llama.cpp falls back and we say which tensors."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tunedeck.engine.export.gguf import convert_to_gguf
    from tunedeck.engine.export.quantize import quantize_gguf

    tok = AutoTokenizer.from_pretrained(demo_assets.base)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=320, intermediate_size=640, num_hidden_layers=2, num_attention_heads=5,
        num_key_value_heads=5, max_position_embeddings=128, eos_token_id=tok.eos_token_id, bos_token_id=None,
    )  # fmt: skip
    model_dir = tmp_path / "wide320"
    LlamaForCausalLM(config).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    src = tmp_path / "wide320.F32.gguf"
    convert_to_gguf(model_dir, src, "f32")

    result = quantize_gguf(src, tmp_path / "wide320.Q4_K_M.gguf", "Q4_K_M")
    fell = {f["tensor"]: f for f in result.fallback_tensors}
    assert fell["token_embd.weight"]["type"] == "Q5_0" and fell["token_embd.weight"]["wanted"] == "Q4_K"
    assert fell["blk.0.ffn_down.weight"]["reason"] == "640 columns, not a multiple of 256"
    assert {f"blk.{i}.{t}.weight" for i in (0, 1) for t in ("attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up")} <= set(fell)
    assert all(f["type"] in ("Q5_0", "Q8_0") for f in fell.values())
    _answers(tmp_path / "wide320.Q4_K_M.gguf")


def test_parse_fallbacks_reads_both_log_formats():
    from tunedeck.engine.export.quantize import parse_fallbacks

    new = "warning: blk.0.attn_k.weight                  - ncols    320 not divisible by 256 (required for type    q4_K) -> falling back to    q5_0\n"
    old = "[   4/  21] blk.0.attn_k.weight - [  320,   320,     1,     1], type =    f32, converting to q4_K .. using fallback quantization q8_0\n"
    assert parse_fallbacks(new) == [{"tensor": "blk.0.attn_k.weight", "type": "Q5_0", "wanted": "Q4_K", "reason": "320 columns, not a multiple of 256"}]
    assert parse_fallbacks(old) == [{"tensor": "blk.0.attn_k.weight", "type": "Q8_0"}]


def test_every_recipe_type_is_known_to_llama_cpp():
    from tunedeck.engine.export.quantize import ftype

    assert len({ftype(t) for t in GGUF_TYPES}) == len(GGUF_TYPES)
