"""RLOO: REINFORCE with a leave-one-out baseline (TRL RLOOTrainer); same settings as GRPO."""

from engine.methods.grpo import build_online_trainer as build_trainer

__all__ = ["build_trainer"]
