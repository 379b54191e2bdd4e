"""Ollama Modelfiles: the Go template derived from a chat template renders what the HF tokenizer renders."""

import pytest

from tunedeck.engine.export.modelfile import build_modelfile, derive_affixes, go_template, render_go_template
from tunedeck.engine.templates import CHATML

CONVERSATIONS = [
    [{"role": "user", "content": "What is 3 plus 4?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": 'Say "ok" {{ twice }}\nthen stop.'},
    ],
]
LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
DEFAULT_SYSTEM = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are helpful.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
BRACES = "{% for m in messages %}[{{ '{{' }}{{ m['role'] }}]{{ m['content'] }};{% endfor %}{% if add_generation_prompt %}[{{ '{{' }}assistant]{% endif %}"


def hf_renderer(template: str, bos: str = ""):
    """Render as transformers' apply_chat_template does (its Jinja environment, {% generation %} included)."""
    from transformers.utils.chat_template_utils import _compile_jinja_template

    compiled = _compile_jinja_template(template)

    def render(conv, add_generation_prompt):
        return compiled.render(messages=conv, add_generation_prompt=add_generation_prompt, bos_token=bos, eos_token="")

    return render


def test_chatml_gives_the_go_template_ollama_uses():
    aff = derive_affixes(hf_renderer(CHATML))
    assert aff.roles["user"] == ("<|im_start|>user\n", "<|im_end|>\n")
    assert aff.roles["assistant"] == ("<|im_start|>assistant\n", "<|im_end|>\n")
    assert aff.generation == "<|im_start|>assistant\n" and aff.head == ""
    template = go_template(aff)
    assert template.startswith("{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}")
    assert '{{ if and $last (ne .Role "assistant") }}<|im_start|>assistant\n{{ end }}{{ end }}' in template


@pytest.mark.parametrize("template,bos", [(CHATML, ""), (LLAMA3, "<|begin_of_text|>"), (BRACES, "")], ids=["chatml", "llama3", "braces"])
def test_go_template_renders_like_the_chat_template(template, bos):
    render = hf_renderer(template, bos)
    text, report = build_modelfile("m.Q4_K_M.gguf", render, ["<|im_end|>"], CONVERSATIONS)
    assert report["matches"], report
    go = go_template(derive_affixes(render))
    for conv in CONVERSATIONS:
        assert render_go_template(go, conv) == render(conv, True)


def test_a_trailing_assistant_turn_is_left_open_for_prefill():
    go = go_template(derive_affixes(hf_renderer(CHATML)))
    conv = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "The sum"}]
    assert render_go_template(go, conv) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nThe sum"


def test_literal_braces_are_escaped_for_go():
    go = go_template(derive_affixes(hf_renderer(BRACES)))
    assert '{{ "{{" }}' in go


def test_a_default_system_prompt_opens_only_conversations_without_one():
    render = hf_renderer(DEFAULT_SYSTEM)
    _, report = build_modelfile("m.gguf", render, ["<|im_end|>"], CONVERSATIONS)
    assert report["matches"], report
    go = go_template(derive_affixes(render))
    assert render_go_template(go, CONVERSATIONS[0]).startswith("<|im_start|>system\nYou are helpful.")
    assert render_go_template(go, CONVERSATIONS[1]).startswith("<|im_start|>system\nBe brief.")


def test_a_template_that_numbers_its_turns_is_reported_as_not_matching():
    numbered = "{% for m in messages %}{{ loop.index }}. {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
    text, report = build_modelfile("m.gguf", hf_renderer(numbered), ["</s>"], CONVERSATIONS)
    assert report["matches"] is False
    assert report["template"].startswith("not derivable") or "difference" in report
    assert "TEMPLATE" not in text or report.get("difference")
    assert 'PARAMETER stop "</s>"' in text  # the stops are still right


def test_modelfile_lines():
    text, _ = build_modelfile("run.Q8_0.gguf", hf_renderer(CHATML), ["<|im_end|>", 'say "bye"'], CONVERSATIONS)
    lines = text.splitlines()
    assert lines[0] == "FROM ./run.Q8_0.gguf"
    assert text.count('TEMPLATE """') == 1
    assert lines[-2:] == ['PARAMETER stop "<|im_end|>"', 'PARAMETER stop "say \\"bye\\""']


def test_a_system_prompt_folded_into_the_first_user_turn_gemma3():
    """Gemma 3's own template has no system turn: it writes the system prompt, a blank line, then the first user message.
    The Go template keeps it in a variable until that turn (Go's text/template assignment), so Ollama renders alike."""
    from tunedeck.engine.templates import BUILTIN_TEMPLATES

    render = hf_renderer(BUILTIN_TEMPLATES["gemma3"], bos="<bos>")
    aff = derive_affixes(render)
    assert aff.system_fold == "\n\n" and "system" not in aff.roles
    template = go_template(aff)
    two_turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                 {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Again"}]  # fmt: skip
    for conv in [*CONVERSATIONS, two_turns]:
        assert render_go_template(template, conv) == render(conv, True), conv
    assert render_go_template(template, two_turns).count("Be brief.") == 1
