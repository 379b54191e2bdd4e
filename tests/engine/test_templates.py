"""Built-in chat templates: the trained mask is exactly each assistant reply plus its end-of-turn token.

Rendering goes through the tokenizer (transformers' sandboxed Jinja). The demo tokenizer knows the
ChatML tokens; the other families' special tokens are added to a copy of it here.
"""

from __future__ import annotations

import re

import pytest

from tunedeck.engine.templates import (
    BUILTIN_END_OF_TURN,
    BUILTIN_TEMPLATES,
    CHATML,
    check_trainable,
    has_generation_markers,
    resolve_template,
    strip_generation_markers,
    token_lengths,
    token_views,
)

CONVERSATION = [
    {"role": "system", "content": "You add numbers."},
    {"role": "user", "content": "What is 3 plus 4?"},
    {"role": "assistant", "content": "The sum of 3 and 4 is 7."},
    {"role": "user", "content": "And 5 plus 6?"},
    {"role": "assistant", "content": "The sum of 5 and 6 is 11."},
    {"role": "user", "content": "Thanks!"},
    {"role": "assistant", "content": "You are welcome."},
]
_SPECIAL = re.compile(r"<\|[a-z_]+\|>|<(?:start|end)_of_turn>|\[/?[A-Z_]+\]")


def conversation(name: str, turns: int) -> list[dict]:
    """Gemma 2's own template refuses a system turn."""
    return CONVERSATION[1:turns] if name == "gemma2" else CONVERSATION[:turns]


@pytest.fixture(scope="module")
def tokenizer(demo_assets):
    """The demo tokenizer, plus every built-in's special tokens, and a BOS as Llama/Mistral/Gemma have."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_assets.base)
    used = {t for text in BUILTIN_TEMPLATES.values() for t in _SPECIAL.findall(text)}
    tok.add_special_tokens({"additional_special_tokens": sorted(used - set(tok.get_vocab())), "bos_token": "<s>"})
    return tok


@pytest.fixture(scope="module")
def plain_tokenizer(demo_assets):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_assets.base)


def trained_texts(tok, view) -> list[str]:
    """The trained stretches of a token view, as text."""
    out, run = [], []
    for tid, t in zip(view.ids, view.trained, strict=True):
        if t:
            run.append(tid)
        elif run:
            out, run = [*out, tok.decode(run)], []
    return out + ([tok.decode(run)] if run else [])


@pytest.mark.parametrize("name", list(BUILTIN_TEMPLATES))
@pytest.mark.parametrize("turns", [3, 7], ids=["one-turn", "multi-turn"])
def test_builtin_mask_is_exactly_the_assistant_content_and_end_of_turn(tokenizer, name, turns):
    messages = conversation(name, turns)
    eot = BUILTIN_END_OF_TURN[name] or tokenizer.eos_token
    want = [m["content"] + eot for m in messages if m["role"] == "assistant"]
    if name == "qwen3":  # Qwen3 writes an empty thinking block into the last turn (its reasoning slot)
        want[-1] = "<think>\n\n</think>\n\n" + want[-1]
    view = token_views(tokenizer, {"messages": messages}, BUILTIN_TEMPLATES[name])[0]
    assert trained_texts(tokenizer, view) == want, (view.how, view.notes)
    assert view.text == tokenizer.apply_chat_template(messages, tokenize=False, chat_template=BUILTIN_TEMPLATES[name])
    assert check_trainable(tokenizer, [{"messages": messages}], BUILTIN_TEMPLATES[name]) == []
    if has_generation_markers(BUILTIN_TEMPLATES[name]):  # TRL's own mask from the markers agrees
        out = tokenizer.apply_chat_template(
            messages, return_dict=True, return_assistant_tokens_mask=True, chat_template=BUILTIN_TEMPLATES[name]
        )
        assert out["assistant_masks"] == [int(t) for t in view.trained]


@pytest.mark.parametrize("name", list(BUILTIN_TEMPLATES))
def test_builtin_generation_prompt_is_a_prefix_of_the_answered_conversation(tokenizer, name):
    template = BUILTIN_TEMPLATES[name]
    messages = conversation(name, 3)
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True, chat_template=template)
    full = tokenizer.apply_chat_template(messages, tokenize=False, chat_template=template)
    if name == "mistral-nemo":  # it writes the system prompt only into a user turn that is the last message
        assert "You add numbers." in prompt and "You add numbers." not in full
        view = token_views(tokenizer, {"messages": messages}, template)[0]
        assert "message 0 (system): the template does not render its text" in view.notes
        return
    assert full.startswith(prompt) and messages[-1]["content"] in full[len(prompt) :]


def test_exported_templates_lose_only_the_markers():
    for template in BUILTIN_TEMPLATES.values():
        stripped = strip_generation_markers(template)
        assert "generation" not in stripped.replace("add_generation_prompt", "")


def test_the_sandbox_refuses_python_internals(plain_tokenizer):
    from jinja2.exceptions import SecurityError

    attacks = [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('echo pwned').read() }}",
        "{{ raise_exception.__globals__['__builtins__']['__import__']('os').system('echo pwned') }}",
    ]
    for template in attacks:
        with pytest.raises(SecurityError):
            plain_tokenizer.apply_chat_template(CONVERSATION[:3], tokenize=False, chat_template=template)


def test_resolve_template_names_builtins_model_and_files(tmp_path):
    assert resolve_template("gemma2", None) == BUILTIN_TEMPLATES["gemma2"]
    with pytest.raises(ValueError, match="the built-in 'llama3' is now llama3.1"):
        resolve_template("llama3", None)
    assert resolve_template("model", CHATML) == CHATML
    path = tmp_path / "mine.jinja"
    path.write_text(CHATML)
    assert resolve_template(str(path), None) == CHATML
    with pytest.raises(ValueError, match="unknown template 'vicuna'"):
        resolve_template("vicuna", None)
    with pytest.raises(ValueError, match="has no chat_template"):
        resolve_template("model", None)


# --------------------------------------------------------------------------- check_trainable: what training refuses


@pytest.mark.parametrize("name", [n for n, t in BUILTIN_TEMPLATES.items() if has_generation_markers(t)])
def test_without_markers_the_derived_mask_is_the_marked_one(tokenizer, name):
    """Rendering growing prefixes finds exactly what the {% generation %} markers mark."""
    row = {"messages": CONVERSATION}
    marked = token_views(tokenizer, row, BUILTIN_TEMPLATES[name])[0]
    derived = token_views(tokenizer, row, strip_generation_markers(BUILTIN_TEMPLATES[name]))[0]
    assert (marked.how, derived.how, derived.notes) == ("markers", "prefixes", [])
    assert derived.ids == marked.ids and derived.trained == marked.trained


def test_a_template_without_markers_trains_and_without_assistant_only_loss_trains_everything(plain_tokenizer):
    plain = strip_generation_markers(CHATML)
    assert check_trainable(plain_tokenizer, [{"messages": CONVERSATION}], plain) == []
    [view] = token_views(plain_tokenizer, {"messages": CONVERSATION}, plain, assistant_only_loss=False)
    assert all(view.trained)


def test_markers_around_nothing_are_refused(plain_tokenizer):
    empty = CHATML.replace("{{ message['content'] + '<|im_end|>' }}", "").replace(
        "{%- endgeneration -%}", "{%- endgeneration -%}{{ message['content'] + '<|im_end|>' }}"
    )
    with pytest.raises(ValueError, match="no token of the first 2 rows is trained"):
        check_trainable(plain_tokenizer, [{"messages": CONVERSATION}] * 2, empty)


def test_end_of_turn_outside_the_markers_warns(plain_tokenizer):
    no_stop = CHATML.replace(
        "{%- generation -%}{{ message['content'] + '<|im_end|>' }}{%- endgeneration -%}",
        "{%- generation -%}{{ message['content'] }}{%- endgeneration -%}{{ '<|im_end|>' }}",
    )
    warnings = check_trainable(plain_tokenizer, [{"messages": CONVERSATION}], no_stop)
    assert len(warnings) == 1 and "end-of-turn token (<|im_end|>) is never trained" in warnings[0]


def test_a_template_of_another_family_warns_that_its_stop_token_is_unknown(plain_tokenizer):
    warnings = check_trainable(plain_tokenizer, [{"messages": CONVERSATION}], BUILTIN_TEMPLATES["llama3.1"])
    assert any("<|eot_id|> (split into" in w for w in warnings)


def test_only_the_last_turn_trained_warns(plain_tokenizer):
    last_only = CHATML.replace(
        "{%- if message['role'] == 'assistant' -%}", "{%- if message['role'] == 'assistant' and loop.last -%}"
    )
    warnings = check_trainable(plain_tokenizer, [{"messages": CONVERSATION}], last_only)
    assert any("only some assistant turns are trained" in w for w in warnings)


def test_truncation_that_cuts_every_answer_is_refused(plain_tokenizer):
    with pytest.raises(ValueError, match="within max_length 8"):
        check_trainable(plain_tokenizer, [{"messages": CONVERSATION}], CHATML, max_length=8)
    short = {"messages": CONVERSATION[1:3]}
    long_prompt = {"messages": [{"role": "user", "content": "seven " * 60}, CONVERSATION[2]]}
    limit = len(token_views(plain_tokenizer, short, CHATML)[0].ids)
    warnings = check_trainable(plain_tokenizer, [short, long_prompt], CHATML, max_length=limit)
    assert warnings == [f"1 of the first 2 rows have no trained token within max_length {limit} (rows 1)"]


# --------------------------------------------------------------------------- the other forms TRL trains on


def test_prompt_completion_rows_train_the_completion_and_eos(plain_tokenizer):
    tok = plain_tokenizer
    (view,) = token_views(tok, {"prompt": "3+4=", "completion": "7"}, CHATML)
    trained = [i for i, t in zip(view.ids, view.trained, strict=True) if t]
    assert tok.decode(trained) == "7" + tok.eos_token
    chat = {"prompt": CONVERSATION[:2], "completion": CONVERSATION[2:3]}
    (view,) = token_views(tok, chat, CHATML)
    trained = [i for i, t in zip(view.ids, view.trained, strict=True) if t]
    assert tok.decode(trained) == "The sum of 3 and 4 is 7.<|im_end|>\n"


def test_text_rows_train_every_token_and_preference_rows_give_two_sequences(plain_tokenizer):
    tok = plain_tokenizer
    (view,) = token_views(tok, {"text": "1+1=2"})
    assert all(view.trained) and view.text == "1+1=2" + tok.eos_token
    pref = {
        "prompt": CONVERSATION[1:2],
        "chosen": CONVERSATION[2:3],
        "rejected": [{"role": "assistant", "content": "8"}],
    }
    chosen, rejected = token_views(tok, pref, CHATML)
    assert (chosen.name, rejected.name) == ("chosen", "rejected")
    assert tok.decode([i for i, t in zip(rejected.ids, rejected.trained, strict=True) if t]) == "8<|im_end|>\n"
    kto = {"prompt": "2+2=", "completion": "5", "label": False}
    assert sum(token_views(tok, kto)[0].trained) > 0
    (prompt_only,) = token_views(tok, {"prompt": CONVERSATION[1:2]}, CHATML)
    assert not any(prompt_only.trained) and prompt_only.text.endswith("<|im_start|>assistant\n")
    assert check_trainable(tok, [{"prompt": CONVERSATION[1:2]}], CHATML) == []  # GRPO prompts: nothing to check
    assert token_lengths(tok, [{"text": "1+1=2"}, pref], CHATML)[1] == max(len(chosen.ids), len(rejected.ids))


def test_a_rewritten_turn_whose_text_a_user_also_wrote_is_left_untrained_not_guessed(plain_tokenizer):
    """Past assistant turns end with <|end|>, the last with <|return|> (as gpt-oss does): the first reply must be
    searched for, and the user's identical "Yes." must never be what the search finds."""
    from tunedeck.engine.templates import assistant_spans, chat_render

    template = (
        "{%- for m in messages -%}{%- if m.role == 'assistant' -%}<|assistant|>{{ m.content }}"
        "{{ '<|return|>' if loop.last else '<|end|>' }}{%- else -%}<|{{ m.role }}|>{{ m.content }}<|end|>{%- endif -%}"
        "{%- endfor -%}{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
    )
    messages = [{"role": "user", "content": "Yes."}, {"role": "assistant", "content": "Yes."},
                {"role": "user", "content": "Again?"}, {"role": "assistant", "content": "Sure."}]  # fmt: skip
    spans = assistant_spans(chat_render(plain_tokenizer, template), messages)
    assert [spans.text[a:b] for a, b in spans.spans] == ["Sure.<|return|>"]
    assert spans.how == "rewritten" and "also stands in another message" in spans.notes[0]
    messages[0]["content"] = "Say yes."  # now the first reply can be found: trained as rendered there
    spans = assistant_spans(chat_render(plain_tokenizer, template), messages)
    assert [spans.text[a:b] for a, b in spans.spans] == ["Yes.<|end|>", "Sure.<|return|>"]


def test_repeated_replies_are_all_trained_when_the_template_moves_the_system_prompt(plain_tokenizer):
    """Mistral-style: the system prompt goes into the last user turn, so earlier turns are found by search; a reply
    that repeats an earlier one ("Yes.") is still trained, in order."""
    from tunedeck.engine.templates import assistant_spans, chat_render

    template = (
        "{%- set sys = messages[0].content if messages[0].role == 'system' else '' -%}"
        "{%- for m in messages if m.role != 'system' -%}{%- if m.role == 'user' -%}"
        "[INST]{{ sys + ' ' if loop.last and sys else '' }}{{ m.content }}[/INST]{%- else -%}{{ m.content }}</s>"
        "{%- endif -%}{%- endfor -%}"
    )
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "A?"},
                {"role": "assistant", "content": "Yes."}, {"role": "user", "content": "B?"},
                {"role": "assistant", "content": "Yes."}, {"role": "user", "content": "C?"},
                {"role": "assistant", "content": "No."}]  # fmt: skip
    spans = assistant_spans(chat_render(plain_tokenizer, template), messages)
    assert [spans.text[a:b] for a, b in spans.spans] == ["Yes.</s>", "Yes.</s>", "No.</s>"]


MISTRAL_TOOLS = (  # Mistral-style: the system prompt goes into the last user turn; a call is [TOOL_CALLS]name{args}
    "{%- set sys = messages[0].content if messages[0].role == 'system' else '' -%}"
    "{%- for m in messages if m.role != 'system' -%}{%- if m.role == 'user' -%}"
    "[INST]{{ sys + ' ' if loop.last and sys else '' }}{{ m.content }}[/INST]"
    "{%- elif m.role == 'tool' -%}[TOOL_RESULTS]{{ m.content }}[/TOOL_RESULTS]"
    "{%- elif m.tool_calls -%}[TOOL_CALLS]{%- for c in m.tool_calls -%}{{ c.function.name }}"
    "{{ c.function.arguments | tojson }}{%- endfor -%}</s>{%- else -%}{{ m.content }}</s>{%- endif -%}{%- endfor -%}"
)


def _weather_rounds(first_question: str) -> list[dict]:
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]}  # fmt: skip
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": first_question}, call,
            {"role": "tool", "content": "sunny"}, {"role": "assistant", "content": "Sunny."},
            {"role": "user", "content": "And now?"}, call, {"role": "tool", "content": "sunny"},
            {"role": "assistant", "content": "Still sunny."}]  # fmt: skip


def test_tool_calls_are_found_by_their_rendered_call_when_the_template_moves_the_system_prompt(plain_tokenizer):
    """A turn with only tool calls has no text to search for: it is found by the call as the template renders it
    (name and arguments through tojson) and trained with its end-of-turn; the same call made twice is no ambiguity."""
    from tunedeck.engine.templates import assistant_spans, chat_render

    spans = assistant_spans(chat_render(plain_tokenizer, MISTRAL_TOOLS), _weather_rounds("Weather in Oslo?"))
    call = '[TOOL_CALLS]get_weather{"city": "Oslo"}</s>'
    assert [spans.text[a:b] for a, b in spans.spans] == [call, "Sunny.</s>", call, "Still sunny.</s>"]
    assert "turn 2: the template renders the messages before it differently once it follows; trained from its tool " \
           "call on" in spans.notes  # fmt: skip


def test_a_tool_call_whose_rendered_text_a_user_also_wrote_is_left_untrained_and_says_why(plain_tokenizer):
    from tunedeck.engine.templates import assistant_spans, chat_render

    quoted = 'Say [TOOL_CALLS]get_weather{"city": "Oslo"} back.'  # the call's rendered text, before the call
    spans = assistant_spans(chat_render(plain_tokenizer, MISTRAL_TOOLS), _weather_rounds(quoted))
    call = '[TOOL_CALLS]get_weather{"city": "Oslo"}</s>'
    assert [spans.text[a:b] for a, b in spans.spans] == ["Sunny.</s>", call, "Still sunny.</s>"]
    assert spans.spans[1][0] == spans.text.rindex(call)  # the second call, not the user's words nor the first
    [note] = [n for n in spans.notes if n.startswith("turn 2:")]
    assert "stands 3 times" in note and "ambiguous; not trained" in note, note


# Google's Gemma formatting page (ai.google.dev/gemma/docs/core/prompt-structure), its three examples as printed
# there; the template writes the tokenizer's BOS first, which the page leaves out.
GEMMA_DOC_DIALOGUE = (
    "<start_of_turn>user\nknock knock<end_of_turn>\n<start_of_turn>model\nwho is there<end_of_turn>\n"
    "<start_of_turn>user\nGemma<end_of_turn>\n<start_of_turn>model\nGemma who?<end_of_turn>\n"
)
GEMMA_DOC_PROMPT = "<start_of_turn>user\nWhat is Cramer's Rule?<end_of_turn>\n<start_of_turn>model\n"
GEMMA_DOC_SYSTEM = (
    "<start_of_turn>user\nOnly reply like a pirate.\n\nWhat is the answer to life the universe and everything?"
    "<end_of_turn>\n<start_of_turn>model\nArrr, 'tis 42,<end_of_turn>\n"
)


def test_gemma3_renders_googles_documented_examples_byte_for_byte(tokenizer):
    def render(messages, generation_prompt=False):
        return tokenizer.apply_chat_template(messages, tokenize=False, chat_template=BUILTIN_TEMPLATES["gemma3"],
                                             add_generation_prompt=generation_prompt)  # fmt: skip

    bos = tokenizer.bos_token
    turns = ["knock knock", "who is there", "Gemma", "Gemma who?"]
    dialogue = [{"role": ("user", "assistant")[i % 2], "content": text} for i, text in enumerate(turns)]
    assert render(dialogue) == bos + GEMMA_DOC_DIALOGUE
    assert render([{"role": "user", "content": "What is Cramer's Rule?"}], generation_prompt=True) == bos + GEMMA_DOC_PROMPT
    pirate = [
        {"role": "system", "content": "Only reply like a pirate."},
        {"role": "user", "content": "What is the answer to life the universe and everything?"},
        {"role": "assistant", "content": "Arrr, 'tis 42,"},
    ]
    assert render(pirate) == bos + GEMMA_DOC_SYSTEM
    # Parts lists render as their text, and roles must alternate as Gemma's own template demands.
    assert render([{"role": "user", "content": [{"type": "text", "text": "knock knock"}]}]) == bos + GEMMA_DOC_DIALOGUE[:45]
    with pytest.raises(Exception, match="alternate"):
        render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])


def test_gemma3_is_the_template_gemma3_checkpoints_ship():
    """TRL vendors google/gemma-3-*'s own template (and recognises it to swap in its training template)."""
    from importlib.resources import files

    assert BUILTIN_TEMPLATES["gemma3"] == files("trl").joinpath("chat_templates/gemma3.jinja").read_text(encoding="utf-8")
