"""The method registry (tunedeck.engine.methods.METHODS) is the one place a method is described: every reader agrees with it."""

import dataclasses
import importlib

import pytest

from tunedeck.engine.data.errors import DataError
from tunedeck.engine.data.formats import FORMATS, check_method_format
from tunedeck.engine.methods import METHODS, method_spec
from tunedeck.engine.recipe import MethodArgs, RecipeError, recipe_from_dict

MINIMAL = {"model": {"name_or_path": "m"}, "data": {"train": "d.jsonl"}}
ONLINE = {"reward_funcs": ["tunedeck.engine.demo.base:sum_reward"]}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_spec_names_real_settings_formats_and_a_builder(name):
    spec = METHODS[name]
    assert spec.name == name and spec.title and spec.summary
    assert set(spec.settings) <= {f.name for f in dataclasses.fields(MethodArgs)} - {"name"}
    assert spec.formats and set(spec.formats) <= set(FORMATS)
    assert set(spec.demo.settings) <= set(spec.settings)
    if spec.trl:  # a TRL pair that exists in the installed TRL, with the settings and fixed values its config takes
        module = importlib.import_module(spec.trl[0])
        config_fields = {f.name for f in dataclasses.fields(getattr(module, spec.trl[1]))}
        assert callable(getattr(module, spec.trl[2]))
        assert set(spec.settings) | set(spec.fixed) <= config_fields
    else:
        path, _, function = (spec.builder or f"tunedeck.engine.methods.{name}:build_trainer").partition(":")
        assert callable(getattr(importlib.import_module(path), function))
    recipe = recipe_from_dict({**MINIMAL, "method": {"name": name, **spec.demo.settings}})
    assert recipe.method.name == name


def test_a_setting_the_method_does_not_use_is_an_error_naming_field_and_method():
    with pytest.raises(RecipeError) as e:
        recipe_from_dict({**MINIMAL, "method": {"name": "dpo", "kl_coef": 0.2}})
    assert e.value.field_path == "method.kl_coef" and "does not apply to method dpo" in str(e.value)
    assert "beta, loss_type" in str(e.value)  # what dpo does use
    # A saved recipe writes every field: defaults of settings that do not apply are fine.
    saved = recipe_from_dict({**MINIMAL, "method": {"name": "grpo", **ONLINE}}).to_dict()
    saved["method"]["name"] = "grpo"
    assert recipe_from_dict(saved).method.kl_coef == 0.05


def test_an_unknown_method_lists_the_choices():
    with pytest.raises(RecipeError, match="method.name: must be one of sft, pretrain, dpo"):
        recipe_from_dict({**MINIMAL, "method": {"name": "dpoo"}})
    with pytest.raises(ValueError, match="unknown method 'dpoo'; choose from sft"):
        method_spec("dpoo")


def test_online_methods_need_a_reward_and_formats_follow_the_spec():
    for name, spec in METHODS.items():
        if spec.online:
            with pytest.raises(RecipeError, match="method.reward_funcs"):
                recipe_from_dict({**MINIMAL, "method": {"name": name}})
        for fmt in FORMATS:
            if fmt in spec.formats:
                check_method_format(name, fmt)
            else:
                with pytest.raises(DataError, match=f"method {name} needs"):
                    check_method_format(name, fmt)
