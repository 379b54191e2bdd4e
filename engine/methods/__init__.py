"""Every training method tunedeck knows, in one table: adding a method is one spec here plus its module.

A spec says what the method is (name, one line), what it trains on (data formats), which
``method.*`` settings apply to it, how it runs (pairs through the model together, generates
online, keeps a reference), and its demo (data and recipe changes). The recipe validation, the
data format check, the memory estimate, the Method screen and the demo all read this table.
A method that is a TRL (config, trainer) pair is built from its spec alone; the others have a module
(``engine/methods/<name>.py``) that builds the trainer; tunedeck.engine.methods.common.build_trainer builds
either. This module is data only (the recipe imports it): nothing here imports torch or the trainers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Demo:
    """The method's demo: its data files (written by tunedeck.engine.demo.base) and its changes to the demo recipe."""

    train: str
    eval: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # method.* settings
    train_overrides: dict[str, Any] = field(default_factory=dict)  # train.* over tunedeck.engine.demo.base.DEMO_TRAIN
    adapter: dict[str, Any] = field(default_factory=dict)  # adapter.* over LoRA r16 on every linear layer
    from_base: bool = False  # starts from the demo base, not from the SFT'd instruct model


@dataclass(frozen=True)
class Method:
    name: str
    title: str  # the full name
    summary: str  # what it does, in one line
    formats: tuple[str, ...]  # data formats it trains on (tunedeck.engine.data.formats)
    settings: tuple[str, ...]  # the method.* settings that apply (MethodArgs field names)
    demo: Demo
    paired: bool = False  # chosen and rejected go through the model together (2 x batch sequences)
    online: bool = False  # generates during training, scored by reward_funcs
    reference: bool = False  # keeps a reference model (a frozen copy, or the base with the adapter off)
    # How the trainer is built: a TRL (config, trainer) pair in ``trl`` = (module, config class, trainer
    # class), given the recipe's settings over ``fixed``; else ``builder`` "module:function", by default
    # tunedeck.engine.methods.<name>:build_trainer.
    trl: tuple[str, str, str] | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    builder: str = ""


_ONLINE = ("reward_funcs", "beta", "num_generations", "max_completion_length", "temperature")
# Online demos: 2 prompts x 8 samples a step (with 4, most groups were all right or all wrong: no
# advantage to learn from). At temperature 1 the instruct model already earns 0.98 of the reward,
# leaving nothing to show; sampled at 1.5 it earns about 0.8 (stray tokens, wrong digits) and the
# online methods sharpen it (GRPO 0.83 -> 0.93, RLOO 0.82 -> 0.93 over 160 steps on an Intel Xeon).
# Sharpening is what "all-linear" LoRA (no lm_head; RMSNorm cancels any scaling before it) barely
# can: train lm_head too.
_ONLINE_DEMO = dict(
    settings={
        "reward_funcs": ["tunedeck.engine.demo.base:sum_reward"],
        "beta": 0.04,
        "num_generations": 8,
        "max_completion_length": 16,
        "temperature": 1.5,
    },
    train_overrides=dict(
        max_steps=160, learning_rate=1e-3, warmup_steps=5, per_device_train_batch_size=16, logging_steps=10
    ),
    adapter={"modules_to_save": ["lm_head"]},
)
_SHORT = dict(max_steps=100, learning_rate=1e-3)

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("sft", "supervised fine-tuning", "imitate the assistant turns",
               ("alpaca", "sharegpt", "messages", "prompt_completion", "text"), ("assistant_only_loss",),
               Demo("sft.jsonl", from_base=True)),
        Method("pretrain", "continued pretraining", "next-token loss on plain text", ("text",), (),
               Demo("text.jsonl", train_overrides=_SHORT, from_base=True),
               trl=("trl", "SFTConfig", "SFTTrainer"), fixed={"dataset_text_field": "text", "packing": True}),
        Method("dpo", "direct preference optimization", "prefer chosen over rejected, vs a reference",
               ("preference",), ("beta", "loss_type"),
               Demo("preference.jsonl", "preference_eval.jsonl", {"beta": 0.1}, _SHORT), paired=True, reference=True,
               trl=("trl", "DPOConfig", "DPOTrainer")),
        # ORPO folds SFT into its loss, so its demo starts from the base: chat answers against the base's habit.
        Method("orpo", "odds-ratio preference optimization", "SFT plus a preference term, no reference",
               ("preference",), ("beta",),
               Demo("orpo.jsonl", "orpo_eval.jsonl", {"beta": 1.0}, {**_SHORT, "warmup_steps": 5}, from_base=True),
               paired=True, trl=("trl.experimental.orpo", "ORPOConfig", "ORPOTrainer")),
        Method("simpo", "simple preference optimization", "length-normalised margin, no reference",
               ("preference",), ("beta", "simpo_gamma", "cpo_alpha"),
               Demo("preference.jsonl", "preference_eval.jsonl", {"beta": 2.0, "simpo_gamma": 0.5}, _SHORT), paired=True,
               # TRL's CPO trainer with the SimPO loss; cpo_alpha 0: pure SimPO, no NLL term.
               trl=("trl.experimental.cpo", "CPOConfig", "CPOTrainer"), fixed={"loss_type": "simpo", "cpo_alpha": 0.0}),
        # TRL unpairs preference pairs for KTO itself.
        Method("kto", "Kahneman-Tversky optimization", "learn from unpaired good/bad labels", ("kto", "preference"),
               ("beta", "loss_type", "desirable_weight", "undesirable_weight"),
               Demo("kto.jsonl", "kto_eval.jsonl", {"beta": 0.1}, _SHORT), reference=True,
               trl=("trl", "KTOConfig", "KTOTrainer")),
        # The reward model is trained in full, as in the classic RLHF pipeline (a new score head on the
        # SFT model): on an earlier demo base, with LoRA its held-out ranking swung between 0.70 and 0.90
        # across training seeds, in full it stayed within 0.85-0.90 over 12 seeds. It judges form: held-out
        # wrong sums stay at chance at this size (900 wrong-sum pairs did not teach it to check unseen sums).
        Method("reward", "reward model", "score chosen above rejected (for RL)", ("preference",),
               ("center_rewards_coefficient",),
               Demo("preference.jsonl", "preference_eval.jsonl", train_overrides=dict(max_steps=200, learning_rate=3e-4),
                    adapter={"kind": "full"}), paired=True),
        Method("grpo", "group relative policy optimization", "sample a group, score it, update", ("prompt",), _ONLINE,
               Demo("prompts.jsonl", **_ONLINE_DEMO), online=True, reference=True),
        Method("rloo", "REINFORCE leave-one-out", "online RL with a leave-one-out baseline", ("prompt",), _ONLINE,
               Demo("prompts.jsonl", **_ONLINE_DEMO), online=True, reference=True,
               builder="tunedeck.engine.methods.grpo:build_online_trainer"),
        Method("ppo", "proximal policy optimization", "online RL: clipped policy and value updates", ("prompt",),
               ("reward_funcs", "max_completion_length", "temperature", "num_ppo_epochs", "num_mini_batches", "kl_coef",
                "kl_estimator", "cliprange", "cliprange_value", "vf_coef", "gamma", "lam", "whiten_rewards",
                "missing_eos_penalty"),
               # Sampled at 1.5 like the other online demos; 25 rollouts of 8 (reward 0.76 -> 0.86, Intel Xeon).
               Demo("prompts.jsonl", settings={"reward_funcs": ["tunedeck.engine.demo.base:sum_reward"], "kl_coef": 0.05,
                    "num_ppo_epochs": 2, "num_mini_batches": 2, "max_completion_length": 16, "temperature": 1.5},
                    train_overrides=dict(max_steps=100, learning_rate=3e-3, warmup_steps=0, per_device_train_batch_size=8,
                                         logging_steps=4),
                    adapter={"modules_to_save": ["lm_head"]}),
               online=True, reference=True),
    )
}  # fmt: skip


def method_spec(name: str) -> Method:
    """The spec for ``name``; ValueError naming method.name and the choices when there is none."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"method.name: unknown method {name!r}; choose from {', '.join(METHODS)}") from None
