"""PPO settings are checked, naming the field, before any model is loaded."""

import pytest

from tunedeck.engine.recipe import RecipeError, recipe_from_dict


def ppo_recipe(method: dict | None = None, **sections) -> dict:
    return {
        "model": {"name_or_path": "unused-model"},
        "data": {"train": "unused.jsonl"},
        "method": {"name": "ppo", "reward_funcs": ["tunedeck.engine.demo.base:sum_reward"], **(method or {})},
        **sections,
    }


@pytest.mark.parametrize(
    ("method", "field"),
    [
        ({"num_ppo_epochs": 0}, "method.num_ppo_epochs"),
        ({"num_mini_batches": 0}, "method.num_mini_batches"),
        ({"lam": 1.5}, "method.lam"),
        ({"gamma": -0.1}, "method.gamma"),
        ({"cliprange": 0}, "method.cliprange"),
        ({"kl_estimator": "k2"}, "method.kl_estimator"),
        ({"reward_funcs": []}, "method.reward_funcs"),
    ],
)
def test_bad_settings_name_their_field(method, field):
    with pytest.raises(RecipeError, match=field.replace(".", r"\.")):
        recipe_from_dict(ppo_recipe(method))


@pytest.mark.parametrize(
    ("sections", "field", "why"),
    [
        ({"adapter": {"init_lora_weights": "pissa"}}, "adapter.init_lora_weights", "reference"),
        ({"launch": {"num_processes": 2, "strategy": "ddp"}}, "launch.num_processes", "single process"),
        (
            {"train": {"max_length": 32}, "method": {"max_completion_length": 32}},
            "method.max_completion_length",
            "room",
        ),
    ],
)
def test_unsupported_setups_are_refused_before_loading(sections, field, why):
    from tunedeck.engine.methods.ppo import build_trainer

    method = sections.pop("method", {})
    recipe = recipe_from_dict(ppo_recipe(method, **sections))
    with pytest.raises(RecipeError, match=why) as e:
        build_trainer(recipe, run=None, callbacks=[])
    assert e.value.field_path == field
