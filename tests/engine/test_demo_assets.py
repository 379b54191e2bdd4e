"""The embedded demo base and data: deterministic, cached, offline, and an answer the base never gives."""

import json
import re
import time

from tunedeck.engine.demo import base as demo
from tunedeck.engine.evaluate import hf_answers, hf_exact_match, load_eval_rows, normalize


def _pairs(rows):
    out = set()
    for row in rows:
        user = row["messages"][0]["content"] if "messages" in row else row["prompt"][0]["content"]
        out.add(tuple(int(t) for t in user.replace("?", " ").replace(".", " ").split() if t.isdigit()))
    return out


def test_datasets_are_deterministic_and_eval_is_held_out():
    assert demo.sft_rows() == demo.sft_rows() and demo.eval_rows() == demo.eval_rows()
    train, held_out = _pairs(demo.sft_rows()), _pairs(demo.eval_rows())
    assert len(held_out) == demo.EVAL_PAIRS
    assert not (train & held_out)
    assert not (_pairs(demo.preference_rows()) & held_out) and not (_pairs(demo.orpo_rows()) & held_out)
    for row in demo.preference_rows():
        assert row["chosen"] != row["rejected"]


def test_assets_are_cached(demo_assets):
    stamp = (demo_assets.root / "COMPLETE").stat().st_mtime
    t = time.time()
    again = demo.ensure_demo_assets()
    assert again.root == demo_assets.root and time.time() - t < 1
    assert (demo_assets.root / "COMPLETE").stat().st_mtime == stamp
    assert [json.loads(line) for line in demo_assets.sft.read_text().splitlines()] == demo.sft_rows()


def test_datasets_written_by_older_code_are_rewritten(demo_assets):
    """The data's VERSION is a hash of the code that writes it: a stale copy is never served."""
    (demo_assets.root / "data" / "VERSION").write_text("written by older code")
    demo.ensure_demo_assets()  # only write_data writes VERSION, after every dataset
    assert (demo_assets.root / "data" / "VERSION").read_text() == demo.DATA_VERSION == demo._data_version()
    assert [json.loads(line) for line in demo_assets.data("orpo.jsonl").read_text().splitlines()] == demo.orpo_rows()


def test_base_is_a_pretrained_llama_that_cannot_do_the_task(demo_assets):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_assets.base)
    model = AutoModelForCausalLM.from_pretrained(demo_assets.base)
    assert model.config.model_type == "llama"
    assert list(demo_assets.base.glob("*.safetensors"))
    assert "{% generation" in tok.chat_template or "{%- generation" in tok.chat_template
    # Pretrained: it completes plain arithmetic it has seen as text...
    enc = tok(["7 plus 5 is"], return_tensors="pt")
    out = tok.decode(model.generate(**enc, max_new_tokens=3, do_sample=False)[0][enc["input_ids"].shape[1] :])
    assert out.strip().startswith("12")
    # ...answers chat questions with the right sum, in a plain habit of its own ("3+4=7", "3 plus 4 is 7.")...
    rows = load_eval_rows(demo_assets.eval)
    answers = [normalize(a) for a in hf_answers(model, tok, rows)]
    sums = [sum(sorted(_pairs([r]))[0]) for r in rows]
    right = [re.findall(r"\d+", a)[-1:] == [str(s)] for a, s in zip(answers, sums, strict=True)]
    assert sum(right) / len(rows) >= 0.5, answers[:10]
    # ...and (almost) never with the house answer that SFT teaches.
    assert hf_exact_match(model, tok, rows) <= 0.2


def test_loss_mask_covers_assistant_content_and_end_of_turn(demo_assets):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_assets.base)
    messages = demo.sft_rows()[0]["messages"] + [
        {"role": "user", "content": "And again?"},
        {"role": "assistant", "content": "Yes."},
    ]
    out = tok.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    trained = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    expected = tok(messages[1]["content"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
    expected += tok("Yes.<|im_end|>", add_special_tokens=False)["input_ids"]
    assert trained == expected
