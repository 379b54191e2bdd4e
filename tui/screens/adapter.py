"""Adapter: LoRA/QLoRA/DoRA/full settings with live parameter math and a memory estimate."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Static

from tunedeck.engine.recipe import INIT_LORA_WEIGHTS, TARGET_PRESETS
from tunedeck.tui.messages import EstimateComputed
from tunedeck.tui.screens.base import StudioScreen
from tunedeck.tui.widgets.field_form import FieldForm, FormField
from tunedeck.tui.workers import background, ml_turn

# Every AdapterArgs field (engine/recipe.py), PEFT/bitsandbytes names shortened only where 20 columns are too few;
# a pick-one offers the values the field's type allows.
FIELDS = [
    FormField("adapter.kind", "kind"),
    FormField("adapter.r", "r"),
    FormField("adapter.lora_alpha", "lora_alpha"),
    FormField("adapter.lora_dropout", "lora_dropout"),
    FormField("adapter.target_modules", "target_modules"),
    FormField("adapter.modules_to_save", "modules_to_save"),
    FormField("adapter.bias", "bias"),
    FormField("adapter.use_rslora", "use_rslora"),
    FormField("adapter.init_lora_weights", "init_lora_weights", ("true", "false", *INIT_LORA_WEIGHTS)),
    FormField("adapter.loftq_bits", "loftq_bits"),
    FormField("adapter.loftq_iter", "loftq_iter"),
    FormField("adapter.load_in_8bit", "load_in_8bit"),
    FormField("adapter.bnb_4bit_quant_type", "bnb_4bit_quant_type"),
    FormField("adapter.bnb_4bit_use_double_quant", "4bit double quant"),
    FormField("adapter.bnb_4bit_compute_dtype", "4bit compute dtype"),
    FormField("adapter.freeze_all_but_last_n_layers", "full: last n layers"),
    FormField("train.per_device_train_batch_size", "batch size"),
    FormField("train.max_length", "max_length"),
    FormField("train.gradient_checkpointing", "grad checkpointing"),
]
DEBOUNCE_SECONDS = 0.4


@lru_cache(maxsize=4)
def _meta_model(name_or_path: str, revision: str | None, trust_remote_code: bool) -> Any:
    """The model on the meta device, kept across edits: only the adapter settings change between estimates."""
    from tunedeck.engine.model.loading import meta_model
    from tunedeck.engine.recipe import recipe_from_dict

    recipe = recipe_from_dict({"model": {"name_or_path": name_or_path, "revision": revision,
                                         "trust_remote_code": trust_remote_code}, "data": {"train": "x"}})  # fmt: skip
    return meta_model(recipe)


class AdapterScreen(StudioScreen):
    """The form on the left, the math on the right; the math recomputes after each valid edit."""

    BINDINGS = [
        Binding("ctrl+e", "estimate", "Estimate", id="adapter-estimate", tooltip="Recompute the parameter math now"),
    ]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="adapter-body"):
            yield FieldForm(FIELDS, id="adapter-form")
            yield Static("computing...", id="adapter-math", markup=False)
        yield Static(f"target_modules presets: {', '.join(TARGET_PRESETS)}, or module names", id="adapter-hint")

    def on_mount(self) -> None:
        self.query_one("#adapter-math", Static).border_title = "parameters and memory"
        self._timer = None
        self.action_estimate()

    def on_screen_resume(self) -> None:
        self.query_one(FieldForm).reload()

    @on(FieldForm.Changed)
    def _changed(self, event: FieldForm.Changed) -> None:
        if event.problem:  # say here too: the form's own error line may be scrolled out of view
            self.query_one("#adapter-math", Static).update(f"not computed: {event.problem}")
            return
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE_SECONDS, self.action_estimate)

    def action_estimate(self) -> None:
        """Recompute in a thread (the first call imports transformers and builds a meta-device model)."""
        from tunedeck.engine.recipe import RecipeError

        try:
            recipe = self.store.recipe()
        except RecipeError as e:
            self.query_one("#adapter-math", Static).update(str(e))
            return
        from tunedeck.engine.recipe import resolve_paths

        self._compute(resolve_paths(recipe, self.store.base))

    @background("estimate", exclusive=True)
    def _compute(self, recipe) -> None:
        from tunedeck.engine.model.estimate import estimate, estimate_lines
        from tunedeck.engine.model.loading import ModelLoadError

        m = recipe.model
        with ml_turn(self, "the memory estimate"):
            try:
                model = _meta_model(m.name_or_path, m.revision, m.trust_remote_code)
                text = "\n".join(estimate_lines(estimate(recipe, model=model)))
            except (ModelLoadError, OSError, ValueError) as e:  # no config, or settings it cannot size: said here
                text = f"cannot estimate: {e}"
        self.post_message(EstimateComputed(text))

    def on_estimate_computed(self, message: EstimateComputed) -> None:
        self.query_one("#adapter-math", Static).update(message.text)
