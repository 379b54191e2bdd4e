"""Datasets as people have them: LLaMA-Factory's, OpenAI's and TRL's formats, detected with no flag.

Every fixture is written here from the format's documentation (LLaMA-Factory's data/README.md,
OpenAI's chat fine-tuning guide, TRL's dataset formats page); none is copied from a dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunedeck.engine.data import DataError, inspect_data, load_normalized
from tunedeck.engine.data.prepare import prepare_splits

WEATHER = {"name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}  # fmt: skip


def jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def inspected(source: str, **kw):
    report = inspect_data(source, sample_size=0, **kw)
    assert report.complete
    return report


def normalized(source: str) -> list[dict]:
    ds, _ = load_normalized(source)
    return [ds[i] for i in range(len(ds))]


# --------------------------------------------------------------------------- LLaMA-Factory


def test_alpaca_with_system_and_history(tmp_path):
    rows = [{"instruction": f"And {i} plus 6?", "input": "", "output": f"{i + 6}", "system": "You add numbers.",
             "history": [["What is 3 plus 4?", "7"]]} for i in range(3)]  # fmt: skip
    report = inspected(jsonl(tmp_path / "a.jsonl", rows))
    assert (report.format, report.valid, report.warnings) == ("alpaca", 3, [])
    [first, *_] = normalized(str(tmp_path / "a.jsonl"))
    assert [(m["role"], m["content"]) for m in first["messages"]] == [
        ("system", "You add numbers."), ("user", "What is 3 plus 4?"), ("assistant", "7"),
        ("user", "And 0 plus 6?"), ("assistant", "6"),
    ]  # fmt: skip


def test_sharegpt_with_tool_roles_system_and_tools_columns(tmp_path):
    call = json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}})
    row = {"conversations": [{"from": "human", "value": "Weather in Oslo?"}, {"from": "function_call", "value": call},
                             {"from": "observation", "value": '{"temp": 21}'}, {"from": "gpt", "value": "It is 21 C."}],
           "system": "You report the weather.", "tools": json.dumps([WEATHER])}  # fmt: skip
    path = jsonl(tmp_path / "tools.jsonl", [row] * 2 + [{**row, "tools": ""}])
    report = inspected(path)
    assert (report.format, report.valid, report.invalid, report.warnings) == ("sharegpt", 3, 0, [])
    first = normalized(path)[0]
    roles = [m["role"] for m in first["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    calls = json.loads(first["messages"][2]["tool_calls"])
    assert calls == [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]
    assert json.loads(first["tools"]) == [{"type": "function", "function": WEATHER}]


def test_a_sharegpt_function_call_that_is_not_json_is_named(tmp_path):
    row = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "function_call", "value": "get_weather(Oslo)"},
                             {"from": "observation", "value": "21"}, {"from": "gpt", "value": "21 C."}]}  # fmt: skip
    report = inspected(jsonl(tmp_path / "bad.jsonl", [row]))
    assert report.invalid == 1 and report.errors[0].kind == "bad_tool_call"
    assert report.errors[0].field == "conversations[1].value"


@pytest.mark.parametrize("single", [True, False], ids=["objects", "lists"])
def test_sharegpt_ranking_is_preference_data(tmp_path, single):
    def turn(text):
        message = {"from": "gpt", "value": text}
        return message if single else [message]

    rows = [{"conversations": [{"from": "human", "value": f"What is {i} plus 1?"}],
             "chosen": turn(f"{i + 1}"), "rejected": turn(f"{i + 2}")} for i in range(4)]  # fmt: skip
    path = jsonl(tmp_path / "rank.jsonl", rows)
    report = inspected(path)
    assert (report.format, report.valid, report.invalid) == ("preference", 4, 0)
    first = normalized(path)[0]
    assert [m["content"] for m in first["prompt"]] == ["What is 0 plus 1?"]
    assert [(m["role"], m["content"]) for m in first["chosen"]] == [("assistant", "1")]
    assert [(m["role"], m["content"]) for m in first["rejected"]] == [("assistant", "2")]


@pytest.mark.parametrize("label,sharegpt", [("label", False), ("kto_tag", True)], ids=["messages-label", "sharegpt-kto_tag"])
def test_a_conversation_with_a_boolean_label_is_kto_and_sft_on_it_is_refused(tmp_path, label, sharegpt):
    def turns(i):
        if sharegpt:
            return {"conversations": [{"from": "human", "value": f"What is {i} plus 1?"},
                                      {"from": "gpt", "value": f"{i + 1 if i % 2 else i}"}]}  # fmt: skip
        return {"messages": [{"role": "user", "content": f"What is {i} plus 1?"},
                             {"role": "assistant", "content": f"{i + 1 if i % 2 else i}"}]}  # fmt: skip

    rows = [{**turns(i), label: bool(i % 2)} for i in range(6)]
    path = jsonl(tmp_path / "kto.jsonl", rows)
    report = inspected(path)
    assert (report.format, report.valid, report.labels) == ("kto", 6, {"false": 3, "true": 3})
    first = normalized(path)[0]
    assert [m["role"] for m in first["prompt"]] == ["user"] and first["completion"][0]["content"] == "0"
    assert first["label"] is False
    with pytest.raises(DataError, match="3 of its 6 rows are labelled false"):
        prepare_splits(path, method="sft")


# --------------------------------------------------------------------------- OpenAI chat fine-tuning


def test_openai_tool_calls_with_null_content(tmp_path):
    row = {"messages": [
        {"role": "system", "content": "You report the weather."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21 C"},
        {"role": "assistant", "content": "It is 21 C."}],
        "tools": [{"type": "function", "function": WEATHER}]}  # fmt: skip
    path = jsonl(tmp_path / "openai.jsonl", [row] * 3)
    report = inspected(path)
    assert (report.format, report.valid, report.invalid, report.warnings) == ("messages", 3, 0, [])
    messages = normalized(path)[0]["messages"]
    assert messages[2]["content"] == "" and messages[3]["tool_call_id"] == "call_1"
    [call] = json.loads(messages[2]["tool_calls"])
    assert call["id"] == "call_1" and call["function"]["arguments"] == {"city": "Oslo"}


def test_content_given_as_parts(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is 3 plus 4?"}]},
                      {"role": "assistant", "content": [{"type": "text", "text": "7"}]}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "value": "What is 5 plus 6?"}]},
                      {"role": "assistant", "content": [{"type": "reasoning", "value": "5 and 6 make 11."},
                                                         {"type": "text", "value": "11"}]}]},
    ]  # fmt: skip
    path = jsonl(tmp_path / "parts.jsonl", rows)
    report = inspected(path)
    assert (report.format, report.valid, report.invalid) == ("messages", 2, 0)
    first, second = normalized(path)
    assert first["messages"][0]["content"] == "What is 3 plus 4?"
    assert second["messages"][1]["content"] == "11"
    assert second["messages"][1]["reasoning_content"] == "5 and 6 make 11."


def test_images_are_refused_naming_the_column_and_rows(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "<image>What is in it?"}, {"role": "assistant", "content": "A cat."}],
             "images": ["cat.png"]}] * 2 + [  # fmt: skip
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "cat.png"}},
                                                   {"type": "text", "text": "And here?"}]},
                      {"role": "assistant", "content": "A dog."}]}]  # fmt: skip
    report = inspected(jsonl(tmp_path / "mm.jsonl", rows))
    assert (report.valid, report.invalid, report.error_kinds) == (0, 3, {"multimodal": 3})
    assert [(str(e.where), e.field) for e in report.errors] == [
        (f"{tmp_path / 'mm.jsonl'}:1", "images"), (f"{tmp_path / 'mm.jsonl'}:2", "images"),
        (f"{tmp_path / 'mm.jsonl'}:3", "messages[0].content[0]"),
    ]  # fmt: skip
    assert "text-only" in report.errors[0].reason


# --------------------------------------------------------------------------- TRL's formats


@pytest.mark.parametrize(
    "row,fmt",
    [
        ({"prompt": "3+4=", "completion": "7"}, "prompt_completion"),
        ({"prompt": [{"role": "user", "content": "3+4?"}], "completion": [{"role": "assistant", "content": "7"}]},
         "prompt_completion"),
        ({"prompt": "3+4=", "chosen": "7", "rejected": "8"}, "preference"),
        ({"chosen": [{"role": "user", "content": "3+4?"}, {"role": "assistant", "content": "7"}],
          "rejected": [{"role": "user", "content": "3+4?"}, {"role": "assistant", "content": "8"}]}, "preference"),
        ({"prompt": "3+4=", "completion": "8", "label": False}, "kto"),
        ({"text": "The sum of 3 and 4 is 7."}, "text"),
        ({"prompt": [{"role": "user", "content": "3+4?"}]}, "prompt"),
    ],
    ids=["standard-pc", "conversational-pc", "standard-pref", "implicit-prompt-pref", "unpaired-pref", "lm", "prompt-only"],
)
def test_trl_formats(tmp_path, row, fmt):
    path = jsonl(tmp_path / "trl.jsonl", [row] * 3)
    report = inspected(path)
    assert (report.format, report.valid, report.warnings) == (fmt, 3, [])
    assert len(normalized(path)) == 3


# --------------------------------------------------------------------------- files: .txt, one JSON object


def test_txt_one_document_per_line(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("The sum of 3 and 4 is 7.\nThe sum of 5 and 6 is 11.\n\n")
    report = inspected(str(path))
    assert (report.format, report.valid) == ("text", 2)
    assert report.notes == [f"{path}: plain text; one document per line"]
    assert [r["text"] for r in normalized(str(path))] == ["The sum of 3 and 4 is 7.", "The sum of 5 and 6 is 11."]


def test_txt_documents_separated_by_blank_lines(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("First document,\nsecond line.\n\n\nSecond document.\n")
    report = inspected(str(path))
    assert (report.format, report.valid) == ("text", 2)
    assert report.notes == [f"{path}: plain text; blank lines separate documents"]
    assert report.preview[1].where.line == 5
    assert [r["text"] for r in normalized(str(path))] == ["First document,\nsecond line.", "Second document."]


def test_a_pretty_printed_object_and_a_train_list(tmp_path):
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"instruction": "What is 3 plus 4?", "output": "7"}, indent=2))
    report = inspected(str(one))
    assert (report.format, report.valid, report.notes) == ("alpaca", 1, [f"{one} holds one JSON object: read as one row"])
    split = tmp_path / "split.json"
    rows = [{"instruction": f"What is {i} plus 4?", "output": f"{i + 4}"} for i in range(5)]
    split.write_text(json.dumps({"train": rows, "test": rows[:2]}, indent=1))
    report = inspected(str(split))
    assert (report.format, report.valid) == ("alpaca", 5)
    assert report.notes == [f"{split} holds one JSON object: read the 5 rows of its 'train' list"]
    assert len(normalized(str(split))) == 5
    split.write_text(json.dumps({"train": rows}))  # on one line, as json.dump writes it
    assert inspected(str(split)).valid == 5


# --------------------------------------------------------------------------- nothing dropped silently


def test_unused_columns_are_named_with_their_row_counts(tmp_path):
    rows = [{"instruction": "What is 3 plus 4?", "output": "7", "id": i, "source": "book" if i < 2 else None}
            for i in range(3)]  # fmt: skip
    report = inspected(jsonl(tmp_path / "extra.jsonl", rows))
    assert report.ignored == {"id": 3, "source": 2}
    assert report.warnings == ["ignored columns: id (3 rows), source (2 rows); the alpaca format does not read them"]
    assert report.to_dict()["warnings"] == report.warnings


# --------------------------------------------------------------------------- LLaMA-Factory's dataset_info.json


def test_a_dataset_info_entry_is_a_data_source(tmp_path):
    """Custom column names and sharegpt tags, as LLaMA-Factory's data/README.md documents them."""
    data = tmp_path / "data"
    data.mkdir()
    jsonl(data / "qa.jsonl", [{"question": f"What is {i} plus 4?", "answer": f"{i + 4}", "id": i} for i in range(4)])
    jsonl(data / "chat.jsonl", [{"dialog": [{"speaker": "me", "text": "Hi"}, {"speaker": "bot", "text": "Hello!"}],
                                 "preamble": "Be brief."}] * 3)  # fmt: skip
    jsonl(data / "rank.jsonl", [{"instruction": "3+4?", "chosen": "7", "rejected": "8"}] * 2)
    info = {
        "qa": {"file_name": "qa.jsonl", "columns": {"prompt": "question", "response": "answer"}},
        "chat": {"file_name": "chat.jsonl", "formatting": "sharegpt",
                 "columns": {"messages": "dialog", "system": "preamble"},
                 "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "me", "assistant_tag": "bot"}},
        "rank": {"file_name": "rank.jsonl", "ranking": True},
        "hub": {"hf_hub_url": "someone/data"},
    }  # fmt: skip
    (data / "dataset_info.json").write_text(json.dumps(info))
    base = f"{data / 'dataset_info.json'}#"

    report = inspected(base + "qa")
    assert (report.format, report.valid, report.ignored) == ("alpaca", 4, {"id": 4})
    assert str(report.errors or report.preview[0].where) == f"{data / 'qa.jsonl'}:1"
    assert normalized(base + "qa")[0]["messages"][0]["content"] == "What is 0 plus 4?"

    report = inspected(base + "chat")
    assert (report.format, report.valid, report.invalid) == ("sharegpt", 3, 0)
    roles = [(m["role"], m["content"]) for m in normalized(base + "chat")[0]["messages"]]
    assert roles == [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!")]

    assert inspected(base + "rank").format == "preference"
    assert normalized(base + "rank")[0] == {"prompt": "3+4?", "chosen": "7", "rejected": "8"}

    with pytest.raises(DataError, match="loads from hf_hub_url someone/data"):
        inspected(base + "hub")
    with pytest.raises(DataError, match="no entry 'nope'; it has: chat, hub, qa, rank"):
        inspected(base + "nope")


# --------------------------------------------------------------------------- what a review found (each once wrong)


def test_a_field_first_seen_late_is_kept_in_every_file_kind(tmp_path):
    rows = [{"instruction": f"q{i}", "output": f"a{i}", "system": None} for i in range(1500)]
    rows[1200]["system"] = "You are a pirate."
    (tmp_path / "split.json").write_text(json.dumps({"train": rows}))
    assert normalized(str(tmp_path / "split.json"))[1200]["messages"][0]["content"] == "You are a pirate."
    chats = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
             for i in range(150)]  # fmt: skip
    chats[120]["messages"][1]["reasoning_content"] = "thought"
    chats[130]["tools"] = [{"type": "function", "function": WEATHER}]
    out = normalized(jsonl(tmp_path / "late.jsonl", chats))
    assert out[120]["messages"][1]["reasoning_content"] == "thought" and json.loads(out[130]["tools"])[0]["function"] == WEATHER
    assert out[0]["messages"][1]["reasoning_content"] is None and out[0]["tools"] is None


def test_json_lines_in_a_json_file_and_one_conversation_object(tmp_path):
    chat = {"messages": [{"role": "user", "content": "3+4?"}, {"role": "assistant", "content": "7"}]}
    lines = tmp_path / "lines.json"
    lines.write_text(json.dumps(chat) + "\n" + json.dumps(chat) + "\n")
    assert inspected(str(lines)).valid == 2 and len(normalized(str(lines))) == 2
    one = tmp_path / "one.json"
    one.write_text(json.dumps(chat, indent=2))
    assert (inspected(str(one)).format, inspected(str(one)).valid) == ("messages", 1)


@pytest.mark.parametrize("label", ["math", 1])
def test_a_label_that_is_not_a_boolean_leaves_a_conversation_sft_data(tmp_path, label):
    row = {"messages": [{"role": "user", "content": "3+4?"}, {"role": "assistant", "content": "7"}], "label": label}
    report = inspected(jsonl(tmp_path / "l.jsonl", [row] * 2))
    assert (report.format, report.valid, report.ignored) == ("messages", 2, {"label": 2})


def test_empty_tool_calls_text_means_no_calls(tmp_path):
    row = {"messages": [{"role": "user", "content": "3+4?"}, {"role": "assistant", "content": "7", "tool_calls": ""}]}
    path = jsonl(tmp_path / "t.jsonl", [row])
    assert inspected(path).valid == 1 and "tool_calls" not in normalized(path)[0]["messages"][1]


def test_conversation_prompts_check_their_system_column_and_text_prompts_report_it_unused(tmp_path):
    kto = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}], "kto_tag": True,
           "system": {"x": 1}}  # fmt: skip
    report = inspected(jsonl(tmp_path / "k.jsonl", [kto]))
    assert report.invalid == 1 and report.errors[0].field == "system"
    pref = {"prompt": "q", "chosen": "a", "rejected": "b", "system": "You are a pirate."}
    assert inspected(jsonl(tmp_path / "p.jsonl", [pref])).ignored == {"system": 1}


def test_dataset_info_edits_are_read_afresh_and_history_goes_into_the_prompt(tmp_path):
    jsonl(tmp_path / "qa.jsonl", [{"q": "3+4?", "a": "7", "alt": "seven", "history": [["hi", "hello"]],
                                   "chosen": "7", "rejected": "8"}])  # fmt: skip
    info = tmp_path / "dataset_info.json"
    info.write_text(json.dumps({"qa": {"file_name": "qa.jsonl", "columns": {"prompt": "q", "response": "a"}}}))
    source = f"{info}#qa"
    assert normalized(source)[0]["messages"][-1]["content"] == "7"
    info.write_text(json.dumps({"qa": {"file_name": "qa.jsonl", "columns": {"prompt": "q", "response": "alt"}}}))
    assert normalized(source)[0]["messages"][-1]["content"] == "seven"
    info.write_text(json.dumps({"qa": {"file_name": "qa.jsonl", "ranking": True, "columns": {"prompt": "q"}}}))
    [row] = normalized(source)
    assert [m["content"] for m in row["prompt"]] == ["hi", "hello", "3+4?"] and row["chosen"][0]["content"] == "7"


def test_a_dataset_info_row_with_an_odd_role_is_an_error_not_a_crash(tmp_path):
    jsonl(tmp_path / "c.jsonl", [{"conversations": [{"from": ["human"], "value": "q"}, {"from": "gpt", "value": "a"}]}])
    (tmp_path / "dataset_info.json").write_text(json.dumps({"c": {"file_name": "c.jsonl", "formatting": "sharegpt"}}))
    report = inspected(f"{tmp_path / 'dataset_info.json'}#c")
    assert report.invalid == 1 and report.errors[0].kind == "wrong_type"


def test_blank_lines_between_one_line_documents_are_spacing(tmp_path):
    path = tmp_path / "spaced.txt"
    path.write_text("doc one\n\ndoc two\n\ndoc three\n")
    report = inspected(str(path))
    assert report.valid == 3 and report.notes == [f"{path}: plain text; one document per line"]
