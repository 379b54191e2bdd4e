"""`data inspect` and `template render` as a user runs them: exit codes, text, --json, no tracebacks.

They run as ``python -m tunedeck.tui.cli.main`` (the ``tunedeck`` entry point).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

GOOD = {"messages": [{"role": "user", "content": "What is 3 plus 4?"}, {"role": "assistant", "content": "7."}]}


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "tunedeck.tui.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def write(path: Path, lines: list) -> Path:
    path.write_bytes(b"".join((ln if isinstance(ln, bytes) else json.dumps(ln).encode()) + b"\n" for ln in lines))
    return path


def test_valid_data_exits_0_with_format_and_first_page(demo_assets):
    proc = run("data", "inspect", str(demo_assets.sft))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "format: messages" in out and "confidence 100%" in out
    first_page, rest = out.split("checking all rows…")
    assert "line 1 " in first_page and "user: What" in first_page
    assert "invalid 0" in rest


def test_invalid_rows_exit_1_and_every_one_is_listed(tmp_path):
    path = write(
        tmp_path / "chat.jsonl",
        [GOOD, b"{not json", {"messages": [{"role": "user", "content": "Hi"}]}, {"messages": []}, GOOD],
    )
    proc = run("data", "inspect", str(path))
    assert proc.returncode == 1
    assert "rows 5   valid 2   invalid 3   duplicates 1" in proc.stdout
    assert f"{path}:2: invalid JSON" in proc.stdout
    assert f"{path}:3: messages[0].role: the conversation ends with a 'user' turn" in proc.stdout
    assert f"{path}:4: messages: empty conversation" in proc.stdout

    proc = run("data", "inspect", str(path), "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert {k: report[k] for k in ("format", "rows", "valid", "invalid")} == {
        "format": "messages",
        "rows": 5,
        "valid": 2,
        "invalid": 3,
    }
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(2, ""), (3, "messages[0].role"), (4, "messages")]
    assert all(set(e) >= {"line", "field", "reason"} for e in report["errors"])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.joinpath("empty.jsonl").write_bytes(b"") and None or p / "empty.jsonl", "empty"),
        (lambda p: p / "missing.jsonl", "no such file"),
        (lambda p: (p.joinpath("x.json").write_text('[{"a": 1},'), p / "x.json")[1], "invalid JSON"),
        (lambda p: Path("nobody/no-such-dataset"), "Hugging Face Hub failed"),
        (lambda p: write(p / "odd.jsonl", [{"foo": 1}]), "cannot tell the format"),
        (lambda p: write(p / "two.jsonl", [{"text": "t", "prompt": "p", "completion": "c"}]), "ambiguous"),
    ],
    ids=["empty", "missing", "bad-json-array", "hub-offline", "unknown-format", "ambiguous"],
)
def test_unreadable_input_exits_2_with_a_message(tmp_path, make, message):
    path = make(tmp_path)
    proc = run("data", "inspect", str(path))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    proc = run("data", "inspect", str(path), "--json")
    assert proc.returncode == 2 and message in json.loads(proc.stdout)["error"]


def test_format_and_column_options(tmp_path):
    mapping = ["--column", "instruction=question", "--column", "output=answer"]
    qa = write(tmp_path / "qa.jsonl", [{"question": "2+2?", "answer": "4"}])
    assert run("data", "inspect", str(qa)).returncode == 2
    proc = run("data", "inspect", str(qa), *mapping, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["format"] == "alpaca"
    both = write(tmp_path / "both.jsonl", [{"question": "2+2?", "answer": "4", "text": "2+2=4"}])
    proc = run("data", "inspect", str(both), *mapping, "--json")
    assert proc.returncode == 2 and "ambiguous" in json.loads(proc.stdout)["error"]
    proc = run("data", "inspect", str(both), *mapping, "--format", "alpaca", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["format"] == "alpaca"


def test_token_stats_and_mask_check_with_a_model(demo_assets):
    proc = run(
        "data", "inspect", str(demo_assets.sft), "--model", str(demo_assets.base), "--max-length", "40", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    tokens = report["tokens"]
    assert set(tokens) >= {"min", "mean", "p50", "p95", "max", "over_max_length"}
    assert tokens["min"] <= tokens["p50"] <= tokens["p95"] <= tokens["max"]
    assert tokens["over_max_length"] > 0 and tokens["exact"] and tokens["sampled"] == report["valid"]
    assert report["mask"]["error"] is None and report["mask"]["warnings"] == []

    proc = run("data", "inspect", str(demo_assets.sft), "--model", str(demo_assets.base), "--template", "llama3.1")
    assert proc.returncode == 0
    assert "warning: the end-of-turn token" in proc.stdout and "<|eot_id|>" in proc.stdout


def test_rows_a_real_template_refuses_are_named_and_the_rest_inspected(demo_assets, tmp_path):
    """gemma-2's own template raises "System role not supported": that row is FILE:LINE, the others go on."""
    from tunedeck.engine.templates.corpus import llama_cpp_sdist, vendored_templates

    template = tmp_path / "gemma-2.jinja"
    template.write_text(vendored_templates(llama_cpp_sdist())["google-gemma-2-2b-it"])
    system = {"messages": [{"role": "system", "content": "Be brief."}, *GOOD["messages"]]}
    data = tmp_path / "chats.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in (GOOD, system, GOOD)) + "\n")
    base = ["data", "inspect", str(data), "--model", str(demo_assets.base), "--template", str(template)]
    proc = run(*base)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    why = 'the template raises "System role not supported": its own rule, which this row breaks (roles: system → user → assistant)'
    assert "template refuses 1 rows:" in proc.stdout and f"{data}:2: {why}" in proc.stdout
    report = json.loads(run(*base, "--json").stdout)
    assert report["template_refused"] == {"count": 1, "rows": [{"where": f"{data}:2", "error": why}]}
    assert (report["tokens"]["sampled"], report["tokens"]["rendered"]) == (3, 2)


def test_what_a_template_drops_is_counted_and_its_refusals_explained(demo_assets, tmp_path):
    """Mistral-Nemo's own template drops the system message of rows that end with the assistant; Hermes 3's
    tool_use template iterates over `tools` and refuses a row without them, and says so."""
    from tunedeck.engine.templates.corpus import llama_cpp_sdist, vendored_templates

    found = vendored_templates(llama_cpp_sdist())
    system = {"messages": [{"role": "system", "content": "Be brief."}, *GOOD["messages"]]}
    data = tmp_path / "chats.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in (GOOD, system, system)) + "\n")
    model = ["--model", str(demo_assets.base)]
    proc = run("data", "inspect", str(data), *model, "--template", "mistral-nemo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (f"template drops: system message in 2 rows (e.g. {data}:2): a model trained on them never sees these"
            in proc.stdout)  # fmt: skip
    report = json.loads(run("data", "inspect", str(data), *model, "--template", "mistral-nemo", "--json").stdout)
    assert report["template_drops"] == {"checked_rows": 3, "kinds": {"system message": {"rows": 2, "example": f"{data}:2"}}}
    proc = run("template", "render", *model, "--template", "mistral-nemo", "--data", str(data), "--row", "1")
    assert "template drops: system message (message 0): a model trained on this row never sees them" in proc.stdout

    hermes = tmp_path / "hermes-3-tool_use.jinja"
    hermes.write_text(found["NousResearch-Hermes-3-Llama-3.1-8B-tool_use"])
    proc = run("template", "render", *model, "--template", str(hermes), "--data", str(data))
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"error: row 0: template {str(hermes)!r} refuses it: TypeError: 'NoneType' object is not iterable: this "
        "template iterates over `tools`; the row has none: add a tools column or choose the model's default template "
        "(template.name: model) or a built-in"
    )


def test_mix_is_shown(demo_assets, tmp_path):
    general = write(
        tmp_path / "general.jsonl",
        [
            {"conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}]}
            for i in range(50)
        ],
    )
    proc = run("data", "inspect", str(demo_assets.sft), "--mix", f"{general}=0.2", "--seed", "7", "--json")
    assert proc.returncode == 0, proc.stderr
    mix = json.loads(proc.stdout)["mix"]
    assert mix["seed"] == 7
    assert [(s["format"], s["rows"], s["repeated"]) for s in mix["sources"]] == [
        ("messages", 1500, False),
        ("sharegpt", 375, True),
    ]
    text = run("data", "inspect", str(demo_assets.sft), "--mix", f"{general}=0.2").stdout
    assert "mix (seed 0), 1,875 rows:" in text and "(repeats)" in text


def test_recipe_supplies_the_path_model_and_max_length(demo_assets, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model: {{name_or_path: {demo_assets.base}}}\ndata: {{train: {demo_assets.sft}}}\ntrain: {{max_length: 50}}\n"
    )
    proc = run("data", "inspect", "--recipe", str(recipe), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["source"] == str(demo_assets.sft) and report["tokens"]["max_length"] == 50
    recipe.write_text("model: {name_or_path: x}\n")
    proc = run("data", "inspect", "--recipe", str(recipe))
    assert proc.returncode == 2 and "data.train" in proc.stderr


def test_template_render_marks_the_trained_tokens(demo_assets):
    proc = run("template", "render", "--model", str(demo_assets.base), "--data", str(demo_assets.sft), "--row", "0")
    assert proc.returncode == 0, proc.stderr
    row = json.loads(demo_assets.sft.read_text().splitlines()[0])
    answer = row["messages"][1]["content"]
    assert f"[[{answer}<|im_end|>]]" in proc.stdout
    assert f"{demo_assets.sft}:1 (messages)" in proc.stdout

    proc = run(
        "template", "render", "--model", str(demo_assets.base), "--data", str(demo_assets.sft), "--row", "0", "--json"
    )
    out = json.loads(proc.stdout)
    assert all(set(t) == {"id", "text", "trained"} for t in out["tokens"])
    assert "".join(t["text"] for t in out["tokens"] if t["trained"]) == answer + "<|im_end|>"
    assert "".join(t["text"] for t in out["tokens"]) == out["text"]


def test_template_render_errors(demo_assets, tmp_path):
    base = ["template", "render", "--model", str(demo_assets.base), "--data", str(demo_assets.sft)]
    proc = run(*base, "--row", "99999")
    assert proc.returncode == 2 and "row 99999 does not exist" in proc.stderr
    proc = run(*base, "--template", "vicuna")
    assert proc.returncode == 2 and "unknown template 'vicuna'" in proc.stderr
    bad = write(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "Hi"}]}])
    proc = run("template", "render", "--model", str(demo_assets.base), "--data", str(bad))
    assert proc.returncode == 1 and f"{bad}:1" in proc.stderr
    evil = tmp_path / "evil.jinja"
    evil.write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    proc = run(*base, "--template", str(evil))
    assert proc.returncode == 2 and "SecurityError" in proc.stderr
    proc = run("template", "render", "--model", str(tmp_path / "no-model"), "--data", str(demo_assets.sft))
    assert proc.returncode == 2 and "could not load a tokenizer" in proc.stderr


def test_template_list():
    proc = run("template", "list")
    assert proc.returncode == 0
    for name in ("chatml", "alpaca", "qwen2.5", "qwen3", "llama3.1", "mistral-nemo", "gemma2", "phi3.5"):
        assert name in proc.stdout
    assert "meta-llama-Llama-3.1-8B-Instruct's own template" in proc.stdout


def test_real_formats_through_the_cli_say_what_they_read_ignore_and_refuse(tmp_path):
    kto = tmp_path / "kto.jsonl"
    kto.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"{i}+1?"},
                                                     {"role": "assistant", "content": str(i + 1)}],
                                        "label": i % 3 != 0, "id": i}) + "\n" for i in range(6)))  # fmt: skip
    proc = run("data", "inspect", str(kto))
    assert proc.returncode == 0, proc.stderr
    assert "format: kto" in proc.stdout and "labels: 4 desirable (true), 2 undesirable (false)" in proc.stdout
    assert "warning: ignored columns: id (6 rows); the kto format does not read them" in proc.stdout
    report = json.loads(run("data", "inspect", str(kto), "--json").stdout)
    assert report["labels"] == {"true": 4, "false": 2} and report["ignored_columns"] == {"id": 6}

    images = tmp_path / "mm.jsonl"
    row = {"messages": [{"role": "user", "content": "<image>What is it?"}, {"role": "assistant", "content": "A cat."}],
           "images": ["cat.png"]}  # fmt: skip
    images.write_text(json.dumps(row) + "\n")
    proc = run("data", "inspect", str(images))
    assert proc.returncode == 1 and f"{images}:1: images: tunedeck trains text-only models; drop the images column" in proc.stdout

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("one document,\nover two lines\n\nanother document\n")
    proc = run("data", "inspect", str(corpus))
    assert proc.returncode == 0 and "format: text" in proc.stdout and "blank lines separate documents" in proc.stdout
    assert "rows 2   valid 2" in proc.stdout


def test_inspect_of_a_large_file_shows_rows_read_on_a_terminal(tmp_path):
    from tests.helpers import tunedeck_on_a_terminal

    path = tmp_path / "big.jsonl"
    row = {"messages": [{"role": "user", "content": "What is 2 plus 2?"}, {"role": "assistant", "content": "4"}]}
    path.write_text("".join(json.dumps({**row, "id": i}) + "\n" for i in range(25_000)))
    code, stdout, terminal = tunedeck_on_a_terminal("data", "inspect", str(path), cwd=tmp_path)
    assert code == 0 and "10,000 rows read" in terminal and "25,000 rows read" in terminal
    assert "rows read" not in stdout  # progress goes to the terminal, never into piped output


def test_openai_preference_alpaca_without_instruction_and_dolly_need_no_flag(tmp_path):
    """Issue 30's inputs, each written from its documentation: OpenAI's preference fine-tuning rows (a BOM, a
    multi-turn input with tools), Alpaca rows that ask in input, and databricks-dolly-15k's columns."""
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    doc = {"input": {"messages": [{"role": "user", "content": "Hello, can you tell me how cold San Francisco is today?"}],
                     "tools": [], "parallel_tool_calls": True},
           "preferred_output": [{"role": "assistant", "content": "Today in San Francisco, it is not quite cold as "
                                 "expected. Morning clouds will give away to sunshine, with a high near 68°F (20°C) and "
                                 "a low around 57°F (14°C)."}],
           "non_preferred_output": [{"role": "assistant", "content": "It is not particularly cold in San Francisco today."}]}
    multi = {"input": {"messages": [{"role": "system", "content": "You report the weather."},
                                    {"role": "user", "content": "Is it cold in Oslo?"},
                                    {"role": "assistant", "content": "It is 2 C in Oslo."},
                                    {"role": "user", "content": "And in Rome?"}], "tools": [weather]},
             "preferred_output": [{"role": "assistant", "content": "It is 14 C in Rome."}],
             "non_preferred_output": [{"role": "assistant", "content": "Rome is in Italy."}]}  # fmt: skip
    dpo = tmp_path / "openai_dpo.jsonl"
    dpo.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (doc, multi)).encode())
    proc = run("data", "inspect", str(dpo))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "format: preference  (confidence 100% of the first 2 rows)  → trains as: prompt/chosen/rejected" in out
    assert f"read: {dpo} starts with a UTF-8 byte-order mark (BOM); read past it" in out
    assert "line 2      prompt: system: You report the weather. │ user: Is it cold in Oslo?" in out
    assert "rows 2   valid 2   invalid 0   duplicates 0" in out
    assert "warning: ignored columns: input.parallel_tool_calls (1 rows); the preference format does not read them" in out

    alpaca = write(tmp_path / "alpaca.jsonl", [
        {"instruction": "", "input": "What is 3 plus 4?", "output": "7"},
        {"instruction": "Answer with a number.", "input": "What is 5 plus 6?", "output": "11"},
        {"instruction": "", "input": "", "output": "0"},
    ])  # fmt: skip
    proc = run("data", "inspect", str(alpaca))
    assert proc.returncode == 1
    assert "format: alpaca" in proc.stdout and "rows 3   valid 2   invalid 1" in proc.stdout
    assert "line 1      user: What is 3 plus 4? │ assistant: 7" in proc.stdout
    assert f"{alpaca}:3: instruction: empty, and so is input: the row has no prompt" in proc.stdout
    report = json.loads(run("data", "inspect", str(alpaca), "--json").stdout)
    assert [(e["line"], e["field"], e["kind"]) for e in report["errors"]] == [(3, "instruction", "empty")]

    dolly = write(tmp_path / "dolly.jsonl", [
        {"instruction": "How many moons does Mars have?",
         "context": "Mars has two small moons, Phobos and Deimos.", "response": "Two: Phobos and Deimos.",
         "category": "closed_qa"},
        {"instruction": "Which of these is a prime number: 9 or 7?", "context": "", "response": "7",
         "category": "classification"},
    ])  # fmt: skip
    proc = run("data", "inspect", str(dolly))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "format: alpaca  (confidence 100% of the first 2 rows)  → trains as: messages" in proc.stdout
    assert "line 1      user: How many moons does Mars have?  Mars has two" in proc.stdout  # the context joins the prompt
    assert "warning: ignored columns: category (2 rows); the alpaca format does not read them" in proc.stdout
