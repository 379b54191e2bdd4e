"""tunedeck.engine.export.support: what GGUF export will meet, from the model's config alone."""

from __future__ import annotations

import json

from tunedeck.engine.export.support import gguf_notes


def _model(tmp_path, **config):
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


def test_an_architecture_the_converter_lacks_is_said_before_training(tmp_path):
    [note] = gguf_notes(_model(tmp_path, architectures=["NoSuchForCausalLM"], model_type="nosuch"))
    assert "GGUF export will not be possible" in note and "NoSuchForCausalLM" in note and "TEXT_MODEL_MAP" in note


def test_a_supported_architecture_has_no_notes(tmp_path):
    assert gguf_notes(_model(tmp_path, architectures=["LlamaForCausalLM"], model_type="llama")) == []


def test_gemma4_notes_name_the_upstream_file_and_line(tmp_path):
    notes = gguf_notes(_model(tmp_path, architectures=["Gemma4ForCausalLM"], model_type="gemma4_text"))
    assert len(notes) == 2
    assert "src/llama-vocab.cpp:2653" in notes[0] and "conversion/gemma.py:668" in notes[1]


def test_no_config_no_notes(tmp_path):
    assert gguf_notes(str(tmp_path)) == [] and gguf_notes("nobody/not-cached-model") == []
