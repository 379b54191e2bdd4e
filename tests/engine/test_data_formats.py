"""Format detection and normalization to the forms TRL trains on, for every supported format."""

from __future__ import annotations

import pytest

from tunedeck.engine.data import DataError, choose_format, detect_format, map_row, normalize_row
from tunedeck.engine.data.formats import check_method_format, parse_columns, user_field

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "4"},
]

EXAMPLES = {
    "alpaca": {"instruction": "Add.", "input": "2 and 3", "output": "5", "system": "Be exact."},
    "sharegpt": {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello."},
        ]
    },
    "messages": {"messages": CHAT},
    "prompt_completion": {"prompt": "2+2=", "completion": "4"},
    "text": {"text": "The sum of 2 and 2 is 4."},
    "preference": {"prompt": "2+2=", "chosen": "4", "rejected": "5"},
    "kto": {"prompt": "2+2=", "completion": "4", "label": True},
    "prompt": {"prompt": [{"role": "user", "content": "2+2?"}], "a": 2, "b": 2},
}


@pytest.mark.parametrize("fmt", list(EXAMPLES))
def test_each_format_is_detected_with_full_confidence(fmt):
    found, confidence, candidates = detect_format([EXAMPLES[fmt]] * 10)
    assert (found, confidence) == (fmt, 1.0)
    assert candidates[0] == (fmt, 1.0)


def test_normalized_forms_are_what_trl_expects():
    assert normalize_row(EXAMPLES["alpaca"], "alpaca") == {
        "messages": [
            {"role": "system", "content": "Be exact."},
            {"role": "user", "content": "Add.\n\n2 and 3"},
            {"role": "assistant", "content": "5"},
        ]
    }
    assert normalize_row({"instruction": "Say hi.", "input": "", "output": "hi"}, "alpaca")["messages"] == [
        {"role": "user", "content": "Say hi."},
        {"role": "assistant", "content": "hi"},
    ]
    assert normalize_row(EXAMPLES["sharegpt"], "sharegpt") == {"messages": CHAT[:3]}
    assert normalize_row({"messages": [{**m, "extra": 1} for m in CHAT]}, "messages") == {"messages": CHAT}
    assert normalize_row(EXAMPLES["prompt_completion"], "prompt_completion") == {"prompt": "2+2=", "completion": "4"}
    assert normalize_row(EXAMPLES["text"], "text") == {"text": "The sum of 2 and 2 is 4."}
    assert normalize_row(EXAMPLES["preference"], "preference") == EXAMPLES["preference"]
    assert normalize_row(EXAMPLES["kto"], "kto") == EXAMPLES["kto"]
    assert normalize_row({"prompt": "p", "completion": "c", "label": 0}, "kto")["label"] is False
    assert normalize_row(EXAMPLES["prompt"], "prompt") == {"prompt": [{"role": "user", "content": "2+2?"}]}


def test_preference_as_message_lists_and_with_an_implicit_prompt():
    user = {"role": "user", "content": "2+2?"}
    good, bad = {"role": "assistant", "content": "4"}, {"role": "assistant", "content": "5"}
    explicit = {"prompt": [user], "chosen": [good], "rejected": [bad]}
    assert detect_format([explicit])[0] == "preference"
    assert normalize_row(explicit, "preference") == explicit
    implicit = {"chosen": [user, good], "rejected": [user, bad]}
    assert detect_format([implicit])[0] == "preference"
    assert normalize_row(implicit, "preference") == explicit
    # multi-turn: everything both conversations share is the prompt
    history = [user, good, {"role": "user", "content": "and 3+3?"}]
    row = {"chosen": [*history, {"role": "assistant", "content": "6"}], "rejected": [*history, bad]}
    assert normalize_row(row, "preference")["prompt"] == history


def test_conversational_prompt_completion_and_kto():
    row = {"prompt": [{"role": "user", "content": "2+2?"}], "completion": [{"role": "assistant", "content": "4"}]}
    assert detect_format([row])[0] == "prompt_completion"
    assert detect_format([{**row, "label": False}])[0] == "kto"  # label makes it KTO, not a rival


def test_messages_in_a_conversations_column_and_sharegpt_in_a_messages_column():
    assert detect_format([{"conversations": CHAT}])[0] == "messages"
    assert normalize_row({"conversations": CHAT}, "messages") == {"messages": CHAT}
    sharegpt = EXAMPLES["sharegpt"]["conversations"]
    assert detect_format([{"messages": sharegpt}])[0] == "sharegpt"
    assert normalize_row({"messages": sharegpt}, "sharegpt") == {"messages": CHAT[:3]}


def test_confidence_is_the_share_of_rows_that_fit():
    rows = [EXAMPLES["alpaca"]] * 9 + [{"question": "?"}]
    fmt, confidence, _ = detect_format(rows)
    assert fmt == "alpaca" and confidence == pytest.approx(0.9)


def test_ambiguity_is_an_error_listing_the_candidates():
    rows = [{"messages": CHAT, "text": "rendered"}] * 5
    fmt, _, candidates = detect_format(rows)
    assert fmt is None and {c for c, _ in candidates} == {"messages", "text"}
    with pytest.raises(DataError, match=r"ambiguous.*messages.*text.*--format"):
        choose_format(rows, "auto", "x.jsonl")
    assert choose_format(rows, "text")[0] == "text"


def test_unknown_columns_name_what_was_seen_and_how_to_map_them():
    with pytest.raises(DataError, match=r"question, reply.*data\.columns"):
        choose_format([{"question": "q", "reply": "r"}])
    with pytest.raises(DataError, match="unknown format 'chatty'"):
        choose_format([EXAMPLES["text"]], "chatty")


def test_column_mapping_renames_and_errors_name_the_users_column():
    columns = parse_columns(["instruction=question", "output=answer"])
    row = map_row({"question": "Add 2 and 3.", "answer": "5", "id": 7}, columns)
    assert row == {"instruction": "Add 2 and 3.", "output": "5", "id": 7}
    assert detect_format([row])[0] == "alpaca"
    assert user_field("output", columns) == "answer"
    assert user_field("messages[1].content", {"messages": "chat"}) == "chat[1].content"
    with pytest.raises(DataError, match="FORMAT_FIELD=YOUR_COLUMN"):
        parse_columns(["instruction"])


def test_method_format_check():
    check_method_format("dpo", "preference")
    check_method_format("kto", "preference")
    with pytest.raises(DataError, match=r"messages.*method dpo needs preference"):
        check_method_format("dpo", "messages")


def test_normalize_dataset_gives_trl_columns_and_types():
    import datasets

    from tunedeck.engine.data import normalize_dataset

    ds = datasets.Dataset.from_list(
        [{"q": "Add 2 and 3.", "a": "5", "id": 1}, {"q": "Add 1 and 1.", "a": "2", "id": 2}]
    )
    out = normalize_dataset(ds, "auto", {"instruction": "q", "output": "a"})
    assert out.column_names == ["messages"]
    assert out[0]["messages"] == [{"role": "user", "content": "Add 2 and 3."}, {"role": "assistant", "content": "5"}]
    prompts = datasets.Dataset.from_list([EXAMPLES["prompt"]])
    kept = normalize_dataset(prompts)
    assert set(kept.column_names) == {"prompt", "a", "b"}  # reward functions receive the other columns
