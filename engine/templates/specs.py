"""The built-in chat templates, one frozen spec each, and the lookup a recipe's ``template.name`` goes through.

Two built-ins are formats, written here: ``chatml`` and ``alpaca`` wrap the assistant content *and its
end-of-turn token* in ``{% generation %}…{% endgeneration %}``. The others are model families' own
templates, byte for byte (engine/chat_templates/). Templates without markers, a model's own included,
get their assistant-only mask from tunedeck.engine.templates.mask.assistant_spans. Adding a built-in is one spec here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# ChatML (<|im_start|>role\n…<|im_end|>), as used by Qwen and many fine-tunes.
CHATML = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- generation -%}{{ message['content'] + '<|im_end|>' }}{%- endgeneration -%}"
    "{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

# Alpaca (### Instruction / ### Response); the model's EOS ends each response.
ALPACA = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{ messages[0]['content'] + '\\n\\n' }}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{{ 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\\n\\n' }}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ '### Response:\\n' }}{%- generation -%}{{ message['content'] + eos_token }}{%- endgeneration -%}{{ '\\n\\n' }}"
    "{%- else -%}{{ raise_exception('alpaca template: unsupported role ' + message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '### Response:\\n' }}{%- endif -%}"
)

# Model families' own templates, byte for byte (engine/chat_templates/README.md says where each is from).
_FAMILY_DIR = Path(__file__).resolve().parent.parent / "chat_templates"


@dataclass(frozen=True)
class TemplateSpec:
    """One built-in chat template: its text, the token that ends an assistant turn, and where it comes from."""

    name: str
    text: str
    end_of_turn: str | None  # the token that ends an assistant turn (None: the tokenizer's eos_token)
    # The file in llama.cpp's models/templates/ it is a copy of (tests/engine/test_template_corpus.py checks it).
    llama_cpp: str = ""
    # For a model's own template llama.cpp vendors no copy of: where it is from, checked against the owner's
    # prompt-format documentation (tests/engine/test_templates.py renders its examples byte for byte).
    documented: str = ""

    @property
    def is_format(self) -> bool:
        """A format written here (chatml, alpaca), not a model family's own template."""
        return not (self.llama_cpp or self.documented)


def _family(name: str, end_of_turn: str | None, *, llama_cpp: str = "", documented: str = "") -> TemplateSpec:
    text = (_FAMILY_DIR / f"{name}.jinja").read_text(encoding="utf-8")
    return TemplateSpec(name, text, end_of_turn, llama_cpp=llama_cpp, documented=documented)


TEMPLATES: dict[str, TemplateSpec] = {
    t.name: t
    for t in (
        TemplateSpec("chatml", CHATML, "<|im_end|>"),
        TemplateSpec("alpaca", ALPACA, None),
        _family("qwen2.5", "<|im_end|>", llama_cpp="Qwen-Qwen2.5-7B-Instruct"),
        _family("qwen3", "<|im_end|>", llama_cpp="Qwen-Qwen3-0.6B"),
        _family("llama3.1", "<|eot_id|>", llama_cpp="meta-llama-Llama-3.1-8B-Instruct"),
        _family("mistral-nemo", None, llama_cpp="mistralai-Mistral-Nemo-Instruct-2407"),
        _family("gemma2", "<end_of_turn>", llama_cpp="google-gemma-2-2b-it"),
        _family("phi3.5", "<|end|>", llama_cpp="microsoft-Phi-3.5-mini-instruct"),
        _family(
            "gemma3",
            "<end_of_turn>",
            documented="google/gemma-3-*'s own template (TRL's "
            "trl/chat_templates/gemma3.jinja), checked against Google's Gemma formatting page",
        ),  # fmt: skip
    )
}

# Views of TEMPLATES by field, name -> value.
BUILTIN_TEMPLATES: dict[str, str] = {n: t.text for n, t in TEMPLATES.items()}
BUILTIN_END_OF_TURN: dict[str, str | None] = {n: t.end_of_turn for n, t in TEMPLATES.items()}
FAMILY_TEMPLATES: dict[str, str] = {n: t.llama_cpp for n, t in TEMPLATES.items() if t.llama_cpp}
DOCUMENTED_TEMPLATES: dict[str, str] = {n: t.documented for n, t in TEMPLATES.items() if t.documented}

# Built-ins of earlier versions, which were hand-written and matched no current model's template exactly.
_RENAMED = {
    "llama3": "llama3.1 (Llama 3.1/3.3's own template; for Llama 3.0 or 3.2 use template.name: model)",
    "mistral": "mistral-nemo (Mistral-Nemo's own template; for other Mistral models use template.name: model)",
    "gemma": "gemma2 or gemma3 (Gemma 2's own template, or Gemma 3's, which folds a system prompt into the first user "
    "turn; for Gemma 4 use template.name: model)",
    "phi3": "phi3.5 (Phi-3.5-mini's own template)",
}
# End-of-turn tokens used across model families, for spotting a template's terminator.
KNOWN_END_OF_TURN = (
    "<|im_end|>",
    "<|eot_id|>",
    "<end_of_turn>",
    "<turn|>",
    "<|end|>",
    "</s>",
    "<|endoftext|>",
    "<|eom_id|>",
)


def resolve_template(name: str, model_template: str | None) -> str:
    """The template text for a recipe's ``template.name``: a built-in, ``model`` or a .jinja path."""
    if name == "model":
        if not model_template:
            raise ValueError(
                "template.name: 'model' but the model's tokenizer has no chat_template; "
                f"choose a built-in ({', '.join(TEMPLATES)}) or a .jinja file"
            )
        return model_template
    if name in TEMPLATES:
        return TEMPLATES[name].text
    if name in _RENAMED:
        raise ValueError(f"template.name: the built-in {name!r} is now {_RENAMED[name]}")
    if name.endswith((".jinja", ".j2")):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ValueError(f"template.name: file {path} does not exist")
        return path.read_text(encoding="utf-8")
    raise ValueError(
        f"template.name: unknown template {name!r}; use 'model', a .jinja file or one of: " + ", ".join(TEMPLATES)
    )
