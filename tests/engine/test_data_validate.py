"""Validation reports every bad row with FILE:LINE, field and reason; never just the first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunedeck.engine.data import DataError, inspect_data

GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}


def write(path: Path, lines: list[str | bytes | dict]) -> Path:
    data = b""
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        data += (line if isinstance(line, bytes) else line.encode()) + b"\n"
    path.write_bytes(data)
    return path


def errors_by_line(report) -> dict[int, list[tuple[str, str]]]:
    out: dict[int, list[tuple[str, str]]] = {}
    for e in report.errors:
        out.setdefault(e.where.line, []).append((e.field, e.kind))
    return out


def test_every_bad_row_is_reported_with_its_line_field_and_reason(tmp_path):
    path = write(
        tmp_path / "chat.jsonl",
        [
            GOOD,  # 1
            '{"messages": [{"role": "user", "content": "Hi"},',  # 2 invalid JSON
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]},  # 3 empty
            {"messages": [{"role": "user", "content": "Hi"}]},  # 4 ends with user
            {"messages": [{"role": "bot", "content": "Hi"}, {"role": "assistant", "content": "x"}]},  # 5 role
            {"messages": [{"role": "user", "content": 3}, {"role": "assistant"}]},  # 6 type + missing
            "",  # 7 blank lines are skipped
            {"messages": "Hi"},  # 8 not a list
            b'{"messages": "caf\xe9"}',  # 9 latin-1 byte
            "[1, 2]",  # 10 not an object
            {"text": "no messages here"},  # 11 missing the field
            GOOD,  # 12
        ],
    )
    report = inspect_data(str(path))
    assert (report.format, report.rows, report.valid, report.invalid) == ("messages", 11, 2, 9)
    assert errors_by_line(report) == {
        2: [("", "invalid_json")],
        3: [("messages[1].content", "empty")],
        4: [("messages[0].role", "not_assistant_last")],
        5: [("messages[0].role", "unknown_role")],
        6: [("messages[0].content", "wrong_type"), ("messages[1].content", "missing")],
        8: [("messages", "wrong_type")],
        9: [("", "not_utf8")],
        10: [("", "wrong_type")],
        11: [("messages", "missing")],
    }
    first = str(report.errors[0])
    assert first.startswith(f"{path}:2: invalid JSON")
    assert "unknown role 'bot'" in str(next(e for e in report.errors if e.kind == "unknown_role"))
    assert "byte 0xe9" in str(next(e for e in report.errors if e.kind == "not_utf8"))
    assert report.error_kinds["wrong_type"] == 3


def test_a_bom_is_read_past_and_noted(tmp_path):
    path = write(tmp_path / "bom.jsonl", [b"\xef\xbb\xbf" + json.dumps(GOOD).encode(), GOOD])
    report = inspect_data(str(path))
    assert (report.valid, report.invalid, report.duplicates) == (2, 0, 1)  # line 1 is the same row as line 2
    assert report.notes == [f"{path} starts with a UTF-8 byte-order mark (BOM); read past it"]
    bad = write(tmp_path / "bad.jsonl", [b'\xef\xbb\xbf {"text": "caf\xe9"}'])
    report = inspect_data(str(bad), fmt="text")
    assert report.errors[0].kind == "not_utf8" and "column 18" in report.errors[0].reason  # bytes, the BOM's 3 too


@pytest.mark.parametrize(
    "content, match",
    [(b"", "empty"), (b"\n\n  \n", "no rows"), (b"[]", "empty"), (b'[{"text": "a"},', "invalid JSON")],
)
def test_unreadable_files_raise_a_data_error(tmp_path, content, match):
    name = "x.json" if content.startswith(b"[") else "x.jsonl"
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=match):
        inspect_data(str(tmp_path / name))


def test_missing_paths_and_unsupported_types(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        inspect_data(str(tmp_path / "nope.jsonl"))
    (tmp_path / "x.docx").write_text("hello")
    with pytest.raises(DataError, match="unsupported file type"):
        inspect_data(str(tmp_path / "x.docx"))


@pytest.mark.parametrize(
    "fmt, bad, expected",
    [
        ("alpaca", {"instruction": "", "output": 5}, [("instruction", "empty"), ("output", "wrong_type")]),
        ("alpaca", {"instruction": "x", "input": 3, "output": "y"}, [("input", "wrong_type")]),
        (
            "sharegpt",
            {"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]},
            [("conversations[1].from", "unknown_role")],
        ),
        (
            "sharegpt",
            {"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}]},
            [("conversations[1].from", "not_assistant_last")],
        ),
        ("prompt_completion", {"prompt": "p", "completion": "  "}, [("completion", "empty")]),
        (
            "prompt_completion",
            {"prompt": "p", "completion": [{"role": "assistant", "content": "c"}]},
            [("completion", "wrong_type")],
        ),
        ("text", {"text": ["a"]}, [("text", "wrong_type")]),
        ("preference", {"prompt": "p", "chosen": "same", "rejected": "same"}, [("rejected", "identical")]),
        ("preference", {"chosen": "a", "rejected": "b"}, [("prompt", "missing")]),
        (
            "preference",
            {"chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]},
            [("prompt", "no_prompt")],
        ),
        ("kto", {"prompt": "p", "completion": "c", "label": "yes"}, [("label", "wrong_type")]),
        ("kto", {"prompt": "", "completion": "c", "label": True}, [("prompt", "empty")]),
    ],
)
def test_each_format_reports_its_field_errors(fmt, bad, expected):
    from tunedeck.engine.data.validate import RowValidator

    problems = RowValidator(fmt)(bad)
    assert [(f, k) for f, k, _ in problems] == expected
    assert all(reason for _, _, reason in problems)


def test_rows_mixing_strings_and_message_lists_are_caught(tmp_path):
    chat = {"prompt": [{"role": "user", "content": "p"}], "completion": [{"role": "assistant", "content": "c"}]}
    path = write(tmp_path / "pc.jsonl", [{"prompt": "p", "completion": "c"}, chat])
    report = inspect_data(str(path))
    assert report.invalid == 1 and report.errors[0].kind == "mixed_forms"
    assert f"{path}:1" in report.errors[0].reason


def test_mapped_columns_are_named_as_the_user_knows_them(tmp_path):
    path = write(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}, {"question": "q", "answer": ""}])
    report = inspect_data(str(path), columns={"instruction": "question", "output": "answer"})
    assert report.format == "alpaca"
    assert [(e.where.line, e.field) for e in report.errors] == [(2, "answer")]


def test_duplicates_are_counted_with_their_first_occurrence(tmp_path):
    other = {"messages": [{"role": "user", "content": "Yo"}, {"role": "assistant", "content": "Hey."}]}
    path = write(tmp_path / "d.jsonl", [GOOD, other, GOOD, GOOD])
    report = inspect_data(str(path))
    assert report.duplicates == 2
    assert report.duplicate_examples[0] == (f"{path}:3", f"{path}:1")


def test_the_first_page_comes_before_the_scan_and_the_sample_is_deterministic(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(500)
    ]
    path = write(tmp_path / "many.jsonl", rows)
    seen = {}

    def on_preview(report):
        seen.update(format=report.format, rows=report.rows, preview=len(report.preview), complete=report.complete)

    report = inspect_data(str(path), on_preview=on_preview, sample_size=50, seed=3)
    assert seen == {"format": "messages", "rows": 100, "preview": 5, "complete": False}
    assert report.rows == 500 and report.complete
    again = inspect_data(str(path), sample_size=50, seed=3)
    assert [w.row for w, _ in report.sample] == [w.row for w, _ in again.sample]
    assert len(report.sample) == 50 and report.sample == sorted(report.sample, key=lambda s: s[0].row)
    assert report.sample[0][1] == {"messages": rows[report.sample[0][0].row]["messages"]}


def test_report_json_shape(tmp_path):
    path = write(tmp_path / "t.jsonl", [{"text": "a"}, {"text": ""}])
    d = inspect_data(str(path)).to_dict()
    assert {"format", "rows", "valid", "invalid", "errors"} <= set(d)
    assert d["errors"] == [{"line": 2, "file": str(path), "field": "text", "kind": "empty", "reason": "empty"}]
