"""How quick checks size their samples (tunedeck.engine.export.checks)."""

import pytest

from tunedeck.engine.export.checks import LEVELS, QUICK_TOKENS, plan, within_budget


def test_texts_are_cut_to_the_token_budget_keeping_scored_tokens():
    texts = [(list(range(100)), 40), (list(range(300)), 10), (list(range(50)), 5)]
    kept = within_budget(texts, 256)
    assert [len(ids) for ids, _ in kept] == [100, 156]  # 100 + 156 = 256 positions
    assert all(len(ids) > start for ids, start in kept)
    assert within_budget(texts, None) == texts


def test_a_text_whose_prompt_fills_the_budget_is_skipped_unless_it_is_the_only_one():
    assert within_budget([(list(range(400)), 300), (list(range(20)), 2)], 256) == [(list(range(301)), 300)]
    assert within_budget([(list(range(200)), 10), (list(range(100)), 80)], 256) == [(list(range(200)), 10)]
    assert within_budget([(list(range(5)), 5)], 256) == []  # nothing to score in it


def test_levels():
    quick, full, none = (plan(level, eval_rows=100) for level in ("quick", "full", "none"))
    assert quick.tokens == QUICK_TOKENS and quick.eval_rows == 0 and quick.probes == 2 and quick.runs
    assert full.tokens is None and full.eval_rows == 100 and full.probes is None
    assert not none.runs and set(LEVELS) == {"quick", "full", "none"}
    with pytest.raises(ValueError, match="quick, full, none"):
        plan("fast", 1)


def test_where_the_checks_run_and_the_warning_when_llama_cpp_cannot_use_the_gpu():
    """This machine's llama-cpp-python: a GPU build offloads every layer; a CPU build says so when torch has CUDA."""
    import llama_cpp

    from tunedeck.engine.chat import gpu_layers
    from tunedeck.engine.export.checks import devices

    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    assert gpu_layers() == (-1 if gpu else 0)
    where, warnings = devices("cpu")
    assert where == {"reference": "cpu", "llama_cpp": "gpu" if gpu else "cpu"} and warnings == []
    where, warnings = devices("cuda")
    if gpu:
        assert where["llama_cpp"] == "gpu" and warnings == []
    else:
        assert len(warnings) == 1 and "GGUF checks ran on the CPU" in warnings[0] and "GGML_CUDA=on" in warnings[0]
