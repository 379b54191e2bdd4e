"""Real model families end to end, offline: `demo --init --family`, LoRA SFT, export, chat.

Each family's model is tiny, but its tokenizer and chat template are the family's own (llama.cpp's vocabulary
files), so what differs per family (BOS/EOS/end-of-turn, the pre-tokenizer llama.cpp must recognise, biases,
q/k norms, the converter's per-architecture code) runs for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import tunedeck

pytestmark = pytest.mark.slow

SEPARATE = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
# family -> (llama.cpp's pre-tokenizer name (None: a SentencePiece vocabulary has none), the end-of-turn text,
# text that opens a next turn, the linear modules LoRA targets)
EXPECTED = {
    "llama3": ("llama-bpe", "<|eot_id|>", "<|start_header_id|>", SEPARATE),
    "qwen2": ("qwen2", "<|im_end|>", "<|im_start|>", SEPARATE),
    "qwen3": ("qwen2", "<|im_end|>", "<|im_start|>", SEPARATE),
    "mistral": (None, "</s>", "[INST]", SEPARATE),
    "phi3": (None, "<|end|>", "<|user|>", {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}),  # fused projections
    "gemma": (None, "<turn|>", "<|turn>", SEPARATE),
}


def test_family_list_names_each_with_its_tokenizer_and_template():
    proc = tunedeck("demo", "--family", "list", check=True)
    for name in EXPECTED:
        assert name in proc.stdout
    proc = tunedeck("demo", "--init", "x", "--family", "gpt-9")
    assert proc.returncode == 2 and "no family 'gpt-9'; choose from llama3, qwen2, qwen3, mistral, phi3, gemma" in proc.stderr


@pytest.mark.parametrize("family", list(EXPECTED))
def test_a_family_trains_exports_with_parity_and_chats_to_its_stop(family, cache_dir, tmp_path: Path):
    pre, eot, next_turn, modules = EXPECTED[family]
    proc = tunedeck("demo", "--init", str(tmp_path), "--family", family, check=True, timeout=600)
    assert f"{family} workspace ready" in proc.stdout
    model = _recipe_model(tmp_path)

    # adapter targets: the real module names and the LoRA math, equal to what PEFT itself counts
    targets = json.loads(tunedeck("adapter", "targets", "recipe.yaml", "--json", cwd=tmp_path, check=True).stdout)
    names = {m["name"] for m in targets["linear_modules"] if m["selected"]}
    assert names == modules
    assert targets["params"]["trainable"] == _peft_trainable(model)
    # the memory estimate against a measured probe
    probe = json.loads(tunedeck("estimate", "recipe.yaml", "--probe", "--no-search", "--json", cwd=tmp_path,
                                check=True).stdout)["probe"]  # fmt: skip
    assert 0.85 <= probe["runs"][0]["ratio"] <= 1.15, probe["runs"][0]

    sets = ["train.max_steps=3", "export.fidelity_texts=4", "export.eval_rows=0"]
    for kind in ("lora", "qlora"):  # QLoRA: the 4-bit NF4 base (bitsandbytes' CPU backend here)
        out = tunedeck("train", "recipe.yaml", *[a for s in [*sets, f"adapter.kind={kind}"] for a in ("--set", s)],
                       cwd=tmp_path, check=True).stdout  # fmt: skip
        # what GGUF export will meet is said before the run (upstream file and line)
        assert ("note: Gemma 4: llama.cpp adds BOS" in out and "src/llama-vocab.cpp:2653" in out) == (family == "gemma")
    import yaml

    runs = sorted((tmp_path / "runs").iterdir())
    assert [yaml.safe_load((r / "recipe.yaml").read_text())["adapter"]["kind"] for r in runs] == ["lora", "qlora"]
    run = runs[-1]  # the QLoRA run: merged into the full-precision base
    proc = tunedeck("export", run.name, "--quant", "F16,Q8_0,Q4_K_M", "--no-adapter", "--json", cwd=tmp_path, check=True)
    report = json.loads(proc.stdout)
    assert report["ok"] and report["pre_tokenizer"] == pre, report.get("warnings")
    parity = report["parity"]
    assert parity["ok"] and parity["chat_template"]["equal"], parity
    assert parity["render"]["conversations"] == parity["render"]["equal"] > 0
    assert parity["tokenization"]["texts"] == parity["tokenization"]["equal"] > 0
    f16, q8, q4 = report["files"]
    assert [f["type"] for f in report["files"]] == ["F16", "Q8_0", "Q4_K_M"]
    assert f16["fidelity"]["top1_agreement"] >= 0.98
    for f in (q8, q4):  # written by llama.cpp's quantizer, loaded by llama.cpp and measured against the HF model
        assert f["bits_per_weight"] < 9 and f["verify"]["loaded"] and f["fidelity"]["top1_agreement"] >= 0.8, f
    reply = tunedeck("chat", f16["path"], "--prompt", "What is 3 plus 4?", "--temperature", "0", "--max-tokens", "48",
                     check=True).stdout  # fmt: skip
    assert reply.strip() and eot not in reply and next_turn not in reply, reply


def _recipe_model(workspace: Path) -> str:
    import yaml

    return yaml.safe_load((workspace / "recipe.yaml").read_text())["model"]["name_or_path"]


def _peft_trainable(model_dir: str) -> int:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))  # fmt: skip
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
