"""Chat templates: the built-ins (one frozen spec each) and the loss mask on any template.

- ``specs``: the built-in templates (TEMPLATES, a TemplateSpec per name) and ``resolve_template``;
- ``render``: rendering through the tokenizer's own sandboxed Jinja renderer, ``{% generation %}`` markers;
- ``mask``: the assistant-only mask of a template without markers, from renders of growing prefixes;
- ``views``: a training row as the token sequences TRL trains, with the trained-token mask;
- ``check``: the loss-mask check before training starts;
- ``drops``: the parts of a row a template leaves out (a system message, tool calls, their arguments);
- ``refusals``: why a template refused a row: what it needed, what the row lacked;
- ``corpus``: the masks checked against the chat templates llama.cpp vendors (tests and bench).

Loading a tokenizer is tunedeck.engine.model.loading' (load_tokenizer, load_chat_tokenizer). Nothing here imports an ML
library: the tokenizer comes in as an argument.
"""

from __future__ import annotations

from tunedeck.engine.templates.check import CHECK_ROWS, check_trainable, end_of_turn_ids
from tunedeck.engine.templates.mask import ChatSpans, TurnRender, assistant_spans, render_turn, spans_to_tokens
from tunedeck.engine.templates.render import (
    Render,
    TemplateRefused,
    chat_render,
    has_generation_markers,
    strip_generation_markers,
    template_inputs,
)
from tunedeck.engine.templates.specs import (
    ALPACA,
    BUILTIN_END_OF_TURN,
    BUILTIN_TEMPLATES,
    CHATML,
    DOCUMENTED_TEMPLATES,
    FAMILY_TEMPLATES,
    KNOWN_END_OF_TURN,
    TEMPLATES,
    TemplateSpec,
    resolve_template,
)
from tunedeck.engine.templates.views import TokenView, chat_view, is_chat, token_lengths, token_views

__all__ = [
    "ALPACA",
    "BUILTIN_END_OF_TURN",
    "BUILTIN_TEMPLATES",
    "CHATML",
    "CHECK_ROWS",
    "DOCUMENTED_TEMPLATES",
    "FAMILY_TEMPLATES",
    "KNOWN_END_OF_TURN",
    "TEMPLATES",
    "ChatSpans",
    "Render",
    "TemplateRefused",
    "TemplateSpec",
    "TokenView",
    "TurnRender",
    "assistant_spans",
    "chat_render",
    "chat_view",
    "check_trainable",
    "end_of_turn_ids",
    "has_generation_markers",
    "is_chat",
    "render_turn",
    "resolve_template",
    "spans_to_tokens",
    "strip_generation_markers",
    "template_inputs",
    "token_lengths",
    "token_views",
]
