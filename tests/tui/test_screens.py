"""Pilot tests of each screen's main flows at 80x24 (on a tiny workspace over the demo model)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Select, Static

from tests.helpers import RUN_ID, drive, make_run, record_notifications, settle, write_workspace
from tunedeck.engine.methods import METHODS
from tunedeck.engine.recipe import AdapterArgs, load_recipe
from tunedeck.tui.app import TunedeckApp
from tunedeck.tui.commands import TunedeckCommands
from tunedeck.tui.screens import SCREEN_ORDER
from tunedeck.tui.screens.adapter import FIELDS as ADAPTER_FIELDS
from tunedeck.tui.screens.confirm import ConfirmScreen
from tunedeck.tui.screens.method import COMMON, method_fields
from tunedeck.tui.screens.row_view import RowViewScreen
from tunedeck.tui.widgets.chat_pane import ChatPane
from tunedeck.tui.widgets.loss_chart import LossChart


@pytest.fixture
def workspace(tmp_path: Path, demo_assets) -> Path:
    write_workspace(tmp_path / "ws", demo_assets.base)
    return tmp_path / "ws"


def text_of(app: TunedeckApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


def test_number_keys_reach_every_screen_and_palette_has_every_action(tmp_path: Path) -> None:
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot: Pilot) -> None:
        for n, (_, _, cls) in enumerate(SCREEN_ORDER, start=1):
            await pilot.press(str(n))
            await pilot.pause()
            assert type(app.screen) is cls
        names = [name for name, _, _ in TunedeckCommands(app.screen).commands()]
        for _, label, cls in SCREEN_ORDER:
            assert f"Go to {label}" in names
            for b in cls.BINDINGS:
                assert f"{label}: {b.description}" in names

    drive(app, steps)


def test_adapter_edit_saves_the_yaml_the_cli_loads(workspace: Path) -> None:
    before = load_recipe(workspace / "recipe.yaml")
    app = TunedeckApp(workspace=workspace)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("4")
        await settle(pilot)
        r = app.screen.query_one("#f-adapter-r", Input)
        r.value = "8"
        await pilot.pause()
        assert "trainable" in text_of(app, "#adapter-math")  # the math ran on the demo model
        await pilot.press("ctrl+s")
        await pilot.pause()

    drive(app, steps)
    after = load_recipe(workspace / "recipe.yaml")
    assert after.adapter.r == 8
    before.adapter.r = 8
    assert after == before  # every other value survives the round trip, relative paths included
    assert "data.jsonl" in (workspace / "recipe.yaml").read_text().split("train:", 1)[1].splitlines()[0]


def test_adapter_form_has_every_recipe_field_and_the_math_follows_them(workspace: Path) -> None:
    shown = {f.path for f in ADAPTER_FIELDS}
    assert {f"adapter.{f.name}" for f in dataclasses.fields(AdapterArgs)} <= shown
    app = TunedeckApp(workspace=workspace)

    def trainable() -> int:
        return int(re.search(r"trainable ([\d,]+) of", text_of(app, "#adapter-math"))[1].replace(",", ""))

    async def steps(pilot: Pilot) -> None:
        await pilot.press("4")
        await settle(pilot)
        lora = trainable()
        app.screen.query_one("#f-adapter-modules_to_save", Input).value = "lm_head"
        await pilot.pause(0.6)  # the debounce, then the estimate worker
        await settle(pilot)
        assert trainable() > lora and "modules_to_save train a full copy" in text_of(app, "#adapter-math")
        app.screen.query_one("#f-adapter-kind", Select).value = "qlora"
        app.screen.query_one("#f-adapter-init_lora_weights", Select).value = "loftq"
        await pilot.pause()
        assert "adapter.init_lora_weights" in text_of(app, "#adapter-math")  # loftq with qlora is refused, named
        app.screen.query_one("#f-adapter-init_lora_weights", Select).value = "gaussian"
        app.screen.query_one("#f-adapter-bnb_4bit_quant_type", Select).value = "fp4"
        app.screen.query_one("#f-adapter-bnb_4bit_use_double_quant", Select).value = "false"
        await pilot.pause(0.6)
        await settle(pilot)
        assert "memory per device" in text_of(app, "#adapter-math")
        await pilot.press("ctrl+s")
        await pilot.pause()

    drive(app, steps)
    a = load_recipe(workspace / "recipe.yaml").adapter
    assert (a.kind, a.init_lora_weights, a.bnb_4bit_quant_type, a.bnb_4bit_use_double_quant, a.modules_to_save) == (
        "qlora", "gaussian", "fp4", False, ["lm_head"],
    )  # fmt: skip


def test_invalid_edit_names_the_field_and_save_refuses(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = TunedeckApp(workspace=workspace)
    seen = record_notifications(app, monkeypatch)
    original = (workspace / "recipe.yaml").read_text()

    async def steps(pilot: Pilot) -> None:
        await pilot.press("4")
        await pilot.pause()
        app.screen.query_one("#f-adapter-lora_dropout", Input).value = "1.5"
        await pilot.pause()
        assert "adapter.lora_dropout" in text_of(app, "#form-error")
        await pilot.press("ctrl+s")
        await pilot.pause()

    drive(app, steps)
    assert seen[-1][0] == "error" and "adapter.lora_dropout" in seen[-1][1]
    assert (workspace / "recipe.yaml").read_text() == original


def test_data_screen_rows_errors_raw_row_and_histogram(workspace: Path) -> None:
    app = TunedeckApp(workspace=workspace)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("2")
        await settle(pilot)
        assert "5 rows, 4 valid, 1 invalid" in text_of(app, "#data-summary")
        assert app.screen.query_one("#data-rows", DataTable).row_count == 4
        await pilot.press("e")
        errors = app.screen.query_one("#data-errors", DataTable)
        assert errors.row_count >= 1 and "line 3" in str(errors.get_row_at(0)[0])
        await pilot.press("enter")  # jump to the bad row as written
        await pilot.pause()
        assert isinstance(app.screen, RowViewScreen)
        assert '"no answer"' in str(app.screen.query_one("#row-text", Static).content)
        await pilot.press("escape", "h")
        await settle(pilot)
        stats = text_of(app, "#data-stats")
        assert "tokens per row (4 rows)" in stats and "│█" in stats

    drive(app, steps)


def test_data_screen_names_ignored_columns_and_shows_tool_calls_and_reasoning(workspace: Path) -> None:
    row = {
        "conversations": [
            {"from": "human", "value": "Weather in Oslo?"},
            {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}})},
            {"from": "observation", "value": "sunny"},
            {"from": "gpt", "value": "It is sunny."},
        ],
        "tools": json.dumps([{"name": "get_weather", "description": "weather", "parameters": {"type": "object"}}]),
        "source": "forum",
    }
    thinking = {"messages": [{"role": "user", "content": "3+4?"}, {"role": "assistant", "content": [
        {"type": "reasoning", "text": "three and four"}, {"type": "text", "text": "7"}]}]}  # fmt: skip
    (workspace / "data.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    app = TunedeckApp(workspace=workspace)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("2")
        await settle(pilot)
        summary = text_of(app, "#data-summary")
        assert "sharegpt" in summary and "2 valid" in summary
        assert "⚠ ignored columns: source (2 rows)" in summary
        rows = app.screen.query_one("#data-rows", DataTable)
        assert "assistant [tool call]: get_weather" in str(rows.get_row_at(0)[1])  # shown as written, not as markup
        await pilot.press("o")
        await pilot.pause()
        text = str(app.screen.query_one("#row-text", Static).content)
        assert 'assistant [tool call]: get_weather({"city": "Oslo"})' in text and "tools: get_weather" in text
        assert "tool: sunny" in text
        await pilot.press("escape")
        (workspace / "data.jsonl").write_text(json.dumps(thinking) + "\n")
        await pilot.press("l")
        await settle(pilot)
        await pilot.press("o")
        await pilot.pause()
        assert "assistant [reasoning]: three and four" in str(app.screen.query_one("#row-text", Static).content)

    drive(app, steps)


def test_template_screen_marks_trained_tokens_and_picks_templates(workspace: Path) -> None:
    app = TunedeckApp(workspace=workspace)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("3")
        await settle(pilot)
        head = text_of(app, "#tpl-head")
        assert "template: model" in head and "tokens trained" in head
        trained, total = map(int, head.split("   ")[-1].split()[0].split("/"))
        assert 0 < trained < total  # the prompt is masked, the answer trained
        assert "<|im_start|>" in str(app.screen.query_one("#tpl-tokens", Static).content)
        await pilot.press("t")
        await settle(pilot)
        assert app.store.get("template.name") == "chatml"
        assert "template: chatml" in text_of(app, "#tpl-head")

    drive(app, steps)


def test_template_screen_warns_when_the_mask_is_derived(workspace: Path) -> None:
    from tunedeck.engine.templates import CHATML, strip_generation_markers

    (workspace / "plain.jinja").write_text(strip_generation_markers(CHATML))
    recipe = workspace / "recipe.yaml"
    recipe.write_text(recipe.read_text() + "template: {name: plain.jinja}\n")
    app = TunedeckApp(workspace=workspace)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("3")
        await settle(pilot)
        trained, total = map(int, text_of(app, "#tpl-head").split("   ")[-1].split()[0].split("/"))
        assert 0 < trained < total
        assert "mask derived by rendering growing prefixes" in text_of(app, "#tpl-banner")

    drive(app, steps)


def test_template_screen_says_what_the_template_drops(workspace: Path) -> None:
    """A template that never writes the system message: the banner names it for the shown row."""
    import json

    (workspace / "nosystem.jinja").write_text(
        "{% for m in messages if m.role != 'system' %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    )
    row = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                        {"role": "assistant", "content": "Hello."}]}  # fmt: skip
    (workspace / "data.jsonl").write_text(json.dumps(row) + "\n")
    recipe = workspace / "recipe.yaml"
    recipe.write_text(recipe.read_text() + "template: {name: nosystem.jinja}\n")
    app = TunedeckApp(workspace=workspace)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("3")
        await settle(pilot)
        assert ("⚠ template drops: system message (message 0): a model trained on this row never sees them"
                in text_of(app, "#tpl-banner"))  # fmt: skip

    drive(app, steps)


def test_method_screen_sets_the_method_and_shows_its_settings(workspace: Path) -> None:
    app = TunedeckApp(workspace=workspace)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("5")
        await pilot.pause()
        await pilot.press("down", "down", "enter")  # sft -> pretrain -> dpo
        await pilot.pause()
        assert app.store.get("method.name") == "dpo"
        assert app.screen.query("#f-method-beta")
        assert "preference" in text_of(app, "#method-needs")
        options = app.screen.query_one("#methods", OptionList)
        assert [options.get_option_at_index(i).id for i in range(options.option_count)] == list(METHODS)
        for i, method in enumerate(METHODS):  # every method: its one line and the data it needs
            line = str(options.get_option_at_index(i).prompt)
            assert line.startswith(method) and METHODS[method].summary in line and METHODS[method].formats[0] in line

    drive(app, steps)


def test_switching_method_drops_the_settings_the_new_one_does_not_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_workspace(tmp_path, None, bad_row=False)
    path.write_text(path.read_text() + "method: {name: dpo, beta: 0.3}\n")
    app = TunedeckApp(workspace=tmp_path)
    seen = record_notifications(app, monkeypatch)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("5")
        await pilot.pause()
        assert app.store.get("method.beta") == 0.3
        await pilot.press("home", "enter")  # dpo -> sft
        await pilot.pause()
        assert app.store.get("method.name") == "sft" and app.store.error == ""
        assert app.store.get("method.beta") is None
        assert [f.path for f in method_fields("sft")] == ["method.assistant_only_loss", *COMMON]
        assert any("sft does not use beta" in message for _, message in seen), seen

    drive(app, steps)


def test_attach_shows_the_full_history_on_train(tmp_path: Path) -> None:
    make_run(tmp_path, steps=7)
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("a")
        await settle(pilot)
        assert app.screen.__class__.__name__ == "TrainScreen"
        assert f"run {RUN_ID}  finished" in text_of(app, "#train-run")
        assert "step 7/10" in text_of(app, "#train-stats") and "loss 0.4286" in text_of(app, "#train-stats")
        assert app.screen.query_one(LossChart).steps == [1, 2, 3, 4, 5, 6, 7]
        gpu = text_of(app, "#gpu-panel")
        assert "host RAM" in gpu and ("GPU0" in gpu or "no NVIDIA GPU" in gpu)
        make_run(tmp_path, "20260101-000001-sft-beef", steps=2)  # live: appended events show up
        with (tmp_path / "runs" / RUN_ID / "events.jsonl").open("a") as f:
            f.write(json.dumps({"ts": 0, "kind": "step", "step": 8, "max_steps": 10, "loss": 0.25}) + "\n")
        await pilot.pause(1.2)
        await settle(pilot)
        assert "step 8/10" in text_of(app, "#train-stats")

    drive(app, steps)


def test_delete_asks_first_and_stop_refuses_a_dead_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_run(tmp_path)
    app = TunedeckApp(workspace=tmp_path)
    seen = record_notifications(app, monkeypatch)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("s")
        await settle(pilot)
        assert seen[-1][0] == "error" and "no live worker" in seen[-1][1]
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert (tmp_path / "runs" / RUN_ID).is_dir()
        await pilot.press("d", "y")
        await settle(pilot)
        assert not (tmp_path / "runs" / RUN_ID).exists()

    drive(app, steps)


def test_export_screen_shows_size_fidelity_and_warnings(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    report = {"files": [{"type": "F16", "size_bytes": 3 * 2**20, "fallback_tensors": [],
                         "fidelity": {"perplexity": 1.5, "perplexity_hf": 1.49, "top1_agreement": 0.99,
                                      "mean_kl": 0.001, "accuracy": 1.0}}],
              "warnings": ["Q4_K_M: 2 tensor(s) fell back to another type"]}  # fmt: skip
    run.export_report.write_text(json.dumps(report))
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("7")
        await pilot.pause()
        row = [str(c) for c in app.screen.query_one("#export-files", DataTable).get_row_at(0)]
        # engine/export/report.py's row, the one `tunedeck export` prints
        assert row == ["F16", "3.00 MiB", "-", "1.500 (1.490)", "99.0%", "0.0010", "100% (-)", "-", "0", "-"]
        assert "fell back" in text_of(app, "#export-warnings")
        assert "F16" in app.screen.query_one("#export-quants").selected

    drive(app, steps)


@pytest.fixture(scope="module")
def base_gguf(tmp_path_factory, demo_assets) -> Path:
    """The demo base through llama.cpp's real converter (F16): a real model for the chat pane to load."""
    from tunedeck.engine.export.gguf import convert_to_gguf

    path = tmp_path_factory.mktemp("gguf") / "base.F16.gguf"
    convert_to_gguf(demo_assets.base, path, "f16")
    return path


def test_chat_streams_side_by_side_and_clears(tmp_path: Path, base_gguf: Path) -> None:
    """Two real GGUFs through tunedeck.engine.chat (llama-cpp-python): one prompt, two streamed replies."""
    run = make_run(tmp_path)
    run.gguf.mkdir()
    for q in ("F16", "F16b"):
        shutil.copy(base_gguf, run.gguf / f"{run.id}.{q}.gguf")
    app = TunedeckApp(workspace=tmp_path)

    async def steps(pilot: Pilot) -> None:
        await pilot.press("8")
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)
        await pilot.press("i", *"add 1 and 2", "enter")
        a, b = app.screen.query(ChatPane)
        for _ in range(200):  # the replies stream in from the two models
            await pilot.pause(0.05)
            if all(p.messages and p.messages[-1]["role"] == "assistant" and not p.busy for p in (a, b)):
                break
        assert a.path != b.path
        for pane in (a, b):
            assert pane.messages[0] == {"role": "user", "content": "add 1 and 2"}
            assert pane.messages[-1]["role"] == "assistant" and pane.messages[-1]["content"].strip()
        await pilot.press("escape", "ctrl+l")
        assert a.messages == [] and b.messages == []

    drive(app, steps)
