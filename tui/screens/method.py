"""Method: the alignment method with a one-line explanation, the data it needs, and its settings."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from engine.data.formats import FORMAT_HELP, METHOD_FORMATS
from engine.recipe import METHODS
from tui.screens.base import StudioScreen
from tui.widgets.field_form import FieldForm, FormField

EXPLAIN = {
    "sft": "supervised fine-tuning: imitate the assistant turns",
    "pretrain": "continued pretraining: next-token loss on plain text",
    "dpo": "direct preference optimization: prefer chosen over rejected vs. a reference",
    "orpo": "odds-ratio preference: SFT plus a preference term, no reference model",
    "simpo": "simple preference: length-normalized margin, no reference model",
    "kto": "Kahneman-Tversky: learn from single good/bad labels, unpaired",
    "reward": "reward model: score chosen above rejected (for RL)",
    "grpo": "group relative policy optimization: sample, score with rewards, update",
    "rloo": "REINFORCE leave-one-out: online RL with a group baseline",
}
SETTINGS = {
    "sft": ["method.assistant_only_loss"],
    "pretrain": [],
    "dpo": ["method.beta", "method.loss_type"],
    "orpo": ["method.beta"],
    "simpo": ["method.beta", "method.simpo_gamma", "method.cpo_alpha"],
    "kto": ["method.beta", "method.desirable_weight", "method.undesirable_weight"],
    "reward": ["method.center_rewards_coefficient"],
    "grpo": ["method.reward_funcs", "method.beta", "method.num_generations", "method.max_completion_length"],
    "rloo": ["method.reward_funcs", "method.beta", "method.num_generations", "method.max_completion_length"],
}
COMMON = ["train.learning_rate", "train.max_steps", "train.num_train_epochs"]


def method_fields(method: str) -> list[FormField]:
    """The settings shown for ``method`` (its own, then the common training ones)."""
    return [
        FormField(path, path.split(".")[1], ("true", "false") if path.endswith("assistant_only_loss") else ())
        for path in [*SETTINGS.get(method, []), *COMMON]
    ]


def requirement(method: str) -> str:
    """The data formats ``method`` trains on, with the columns of the first."""
    formats = METHOD_FORMATS.get(method, ())
    return f"{', '.join(formats)} (e.g. {FORMAT_HELP[formats[0]]})" if formats else "any"


class MethodScreen(StudioScreen):
    """Enter on a method sets method.name; the settings below follow the chosen method."""

    AUTO_FOCUS = "#methods"
    BINDINGS = [
        Binding("m", "focus_methods", "Methods", id="method-list", tooltip="Move to the method list"),
        Binding("f", "focus_form", "Settings", id="method-form", tooltip="Move to the method's settings"),
    ]

    def compose_body(self) -> ComposeResult:
        current = str(self.store.get("method.name", "sft"))
        with Horizontal(id="method-body"):
            yield OptionList(*(Option(m, id=m) for m in METHODS), id="methods")
            with Vertical(id="method-side"):
                yield Static(id="method-needs", markup=False)
                yield FieldForm(method_fields(current), id="method-form")

    def on_mount(self) -> None:
        methods = self.query_one("#methods", OptionList)
        methods.border_title = "method"
        current = str(self.store.get("method.name", "sft"))
        methods.highlighted = METHODS.index(current) if current in METHODS else 0
        self._describe(current)

    def on_screen_resume(self) -> None:
        self.query_one(FieldForm).reload()

    def _describe(self, method: str) -> None:
        chosen = str(self.store.get("method.name", "sft"))
        mark = "(chosen)" if method == chosen else f"(enter chooses it; now {chosen})"
        self.query_one("#method-needs", Static).update(
            f"{method} {mark}: {EXPLAIN.get(method, '')}\ndata: {requirement(method)}"
        )

    @on(OptionList.OptionHighlighted, "#methods")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._describe(str(event.option.id))

    @on(OptionList.OptionSelected, "#methods")
    async def _selected(self, event: OptionList.OptionSelected) -> None:
        method = str(event.option.id)
        problem = self.store.set("method.name", method)
        if problem:
            self.notify(f"{problem} (fix it below; ctrl+s saves once valid)", severity="warning", markup=False)
        await self.query_one(FieldForm).remove()
        await self.query_one("#method-side", Vertical).mount(FieldForm(method_fields(method), id="method-form"))
        self._describe(method)

    def action_focus_methods(self) -> None:
        """Focus the method list."""
        self.query_one("#methods", OptionList).focus()

    def action_focus_form(self) -> None:
        """Focus the first setting."""
        self.query_one(FieldForm).focus_next()
