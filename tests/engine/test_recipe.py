from pathlib import Path

import pytest

from tunedeck.engine.data.formats import FORMATS
from tunedeck.engine.methods import METHODS
from tunedeck.engine.recipe import Recipe, RecipeError, allowed, load_recipe, recipe_from_dict

MINIMAL = {"model": {"name_or_path": "m"}, "data": {"train": "d.jsonl"}}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_defaults_are_sft_lora_assistant_only():
    r = recipe_from_dict(MINIMAL)
    assert (r.method.name, r.adapter.kind, r.method.assistant_only_loss) == ("sft", "lora", True)
    assert r.export.quant == ["F16", "Q8_0", "Q4_K_M"]


def test_yaml_round_trip(tmp_path):
    r = recipe_from_dict({**MINIMAL, "adapter": {"r": 4, "target_modules": ["q_proj", "v_proj"]}})
    r.save(tmp_path / "r.yaml")
    again = load_recipe(tmp_path / "r.yaml")
    assert again.adapter.r == 4 and again.adapter.target_modules == ["q_proj", "v_proj"]
    assert isinstance(again, Recipe)


@pytest.mark.parametrize(
    "text, field, words",
    [
        ("model: {name_or_path: m}\ndata: {train: d}\nadapter: {rank: 8}\n", "adapter.rank", "valid fields"),
        ("model: {name_or_path: m}\ndata: {train: d}\nadapter: {r: abc}\n", "adapter.r", "integer"),
        ("model: {name_or_path: m}\ndata: {train: d}\nadapter: {kind: lorax}\n", "adapter.kind", "qlora"),
        ("model: {name_or_path: m}\ndata: {train: d}\ntrain: {learning_rate: fast}\n", "train.learning_rate", "number"),
        ("model: {name_or_path: m}\ndata: {train: d}\nexport: {quant: [Q9_K]}\n", "export.quant", "Q4_K_M"),
        ("data: {train: d}\n", "model.name_or_path", "required"),
        ("model: {name_or_path: m}\ndata: {train: d}\ntrain: {max_steps: 0}\n", "train.max_steps", "positive"),
    ],
)
def test_errors_name_file_and_field(tmp_path, text, field, words):
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    message = str(exc.value)
    assert str(path) in message and field in message and words in message


def test_yaml_scientific_notation_string_is_a_float(tmp_path):
    # PyYAML reads 2e-4 (no dot) as a string; the recipe still takes it as a number.
    r = load_recipe(write(tmp_path, "model: {name_or_path: m}\ndata: {train: d}\ntrain: {learning_rate: 2e-4}\n"))
    assert r.train.learning_rate == pytest.approx(2e-4)


def test_overrides_any_field_path(tmp_path):
    path = write(tmp_path, "model: {name_or_path: m}\ndata: {train: d}\n")
    r = load_recipe(path, ["train.max_steps=20", "adapter.r=4", "export.quant=f16,q4_k_m", "train.report_to=tensorboard"])
    assert (r.train.max_steps, r.adapter.r, r.export.quant, r.train.report_to) == (20, 4, ["F16", "Q4_K_M"], "tensorboard")
    with pytest.raises(RecipeError, match="train.max_stepz"):
        load_recipe(path, ["train.max_stepz=3"])


def test_relative_paths_resolve_against_the_recipe(tmp_path):
    (tmp_path / "d.jsonl").write_text("{}\n")
    r = load_recipe(write(tmp_path, "model: {name_or_path: m}\ndata: {train: d.jsonl}\n"))
    assert r.data.train == str(tmp_path / "d.jsonl")
    assert r.train.runs_dir == str(tmp_path / "runs")
    assert r.model.name_or_path == "m"  # not a local path: left as a Hub id


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(RecipeError, match="file not found"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(write(tmp_path, "model: [unclosed\n"))


def _choice_actions(parser, where: str = "tunedeck"):
    """(command, option, choices) of every option of the CLI parser and its subcommands that has choices."""
    import argparse

    for action in parser._actions:  # argparse keeps no public list of a parser's options
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _choice_actions(sub, f"{where} {name}")
        elif action.choices is not None:
            yield where, action.option_strings[0], tuple(action.choices)


# option -> the recipe field its values come from; estimate --device plans for a device, not a recipe field
CLI_FIELDS = {"--strategy": "launch.strategy", "--imatrix": "export.imatrix", "--checks": "export.checks",
              "--format": "data.format", "--method": "method.name"}  # fmt: skip


def test_every_cli_choice_list_is_the_recipe_types_values():
    from typing import get_args

    from tunedeck.engine.model.estimate import Device
    from tunedeck.tui.cli.main import build_parser

    found = list(_choice_actions(build_parser()))
    assert {option for _, option, _ in found} == {*CLI_FIELDS, "--device"}
    for command, option, choices in found:
        expected = ("auto", *get_args(Device)) if option == "--device" else allowed(CLI_FIELDS[option])
        assert choices == expected, (command, option)
    assert allowed("launch.strategy") == ("single", "ddp", "fsdp", "zero2", "zero3")
    assert allowed("method.name") == tuple(METHODS) and allowed("data.format") == ("auto", *FORMATS)


def test_the_adapter_form_offers_what_the_types_allow():
    from tunedeck.tui.screens.adapter import FIELDS

    for f in FIELDS:
        if f.path != "adapter.init_lora_weights":  # true, false or a named initialisation (or pissa_niter_<n>)
            assert f.choices == allowed(f.path), f.path
    picks = {f.path for f in FIELDS if f.choices}
    assert {"adapter.kind", "adapter.bias", "adapter.bnb_4bit_quant_type", "adapter.loftq_bits"} <= picks
    assert allowed("adapter.kind") == ("lora", "qlora", "dora", "full") and allowed("adapter.r") == ()
