"""Built-in chat templates and helpers around the tokenizer's own (sandboxed) renderer.

Every built-in wraps the assistant content *and its end-of-turn token* in
``{% generation %}…{% endgeneration %}`` so TRL's ``assistant_only_loss`` trains the model to stop.
"""

from __future__ import annotations

import re

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

BUILTIN_TEMPLATES: dict[str, str] = {"chatml": CHATML}

_GENERATION_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


def strip_generation_markers(template: str) -> str:
    """Remove ``{% generation %}`` markers: they only steer the loss mask, never the rendered text.

    Inference engines (llama.cpp, Ollama) do not know the tag, so exported templates go without it.
    """
    return _GENERATION_TAG.sub("", template)


def has_generation_markers(template: str | None) -> bool:
    """True when the template marks assistant spans for assistant-only loss."""
    return bool(template) and _GENERATION_TAG.search(template) is not None


def resolve_template(name: str, model_template: str | None) -> str:
    """The template text for a recipe's ``template.name``: a built-in, ``model`` or a .jinja path."""
    if name == "model":
        if not model_template:
            raise ValueError(
                "template.name: 'model' but the model's tokenizer has no chat_template; "
                f"choose a built-in ({', '.join(BUILTIN_TEMPLATES)}) or a .jinja file"
            )
        return model_template
    if name in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[name]
    if name.endswith((".jinja", ".j2")):
        from pathlib import Path

        path = Path(name).expanduser()
        if not path.is_file():
            raise ValueError(f"template.name: file {path} does not exist")
        return path.read_text(encoding="utf-8")
    raise ValueError(
        f"template.name: unknown template {name!r}; use 'model', a .jinja file or one of: "
        + ", ".join(BUILTIN_TEMPLATES)
    )
