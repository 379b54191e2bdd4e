"""PPO with a critic (classic RLHF), on transformers' Trainer and PEFT (TRL no longer has a PPOTrainer).

One optimizer step is one minibatch of a rollout. Every num_ppo_epochs x num_mini_batches steps:

- ``_rollout``: generate responses to a batch of prompts, score them with the reward (Python
  functions or a reward model), and take the policy's and the reference's log-probs and the
  critic's values, without gradients;
- ``_advantages``: per-token KL penalty plus the score on the last token, GAE, whitening
  (the arithmetic is in ``ppo_math``);

then ``compute_loss`` trains on one minibatch of that rollout: clipped policy loss plus vf_coef
times the clipped value loss. The policy ("default") and the critic ("critic", with a value head
on its last hidden state) are two LoRA adapters on one frozen base, and the reference is that
base with the adapters disabled: one copy of the weights for all four roles but the reward model.
(With full fine-tuning the critic adapter sits on a frozen second copy, which is the reference.)
Being a Trainer, a run checkpoints, stops at a step boundary and resumes like every other method;
a checkpoint also holds the critic and the rollout in progress, so a resume repeats the same steps.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer
from trl.trainer.utils import RepeatSampler

from tunedeck.engine.methods import ppo_math as pm
from tunedeck.engine.methods.common import common_args, load_splits
from tunedeck.engine.methods.reward_sources import resolve_rewards
from tunedeck.engine.model.adapters import converts_on_save, peft_config
from tunedeck.engine.model.loading import load_model, load_tokenizer
from tunedeck.engine.recipe import MethodArgs, Recipe, RecipeError

CRITIC = "critic"  # the critic's adapter name; the policy's is PEFT's "default"
ROLLOUT = "rollout.safetensors"  # in a checkpoint: the rollout the next steps train on


def build_trainer(recipe: Recipe, run, callbacks: list):
    from transformers import TrainingArguments

    _check(recipe)
    train, _ = load_splits(recipe)  # no eval: scoring held-out prompts would need its own rollouts
    m, t = recipe.method, recipe.train
    rollout_size = t.per_device_train_batch_size * t.gradient_accumulation_steps * m.num_mini_batches
    if len(train) < rollout_size:
        raise RecipeError(
            "train.per_device_train_batch_size",
            f"a rollout takes per_device_train_batch_size x gradient_accumulation_steps x method.num_mini_batches "
            f"= {rollout_size} prompts but data.train has {len(train)} rows; lower one of them",
        )
    funcs, reward_tokenizers = resolve_rewards(m.reward_funcs, Path(t.runs_dir).parent)
    args = TrainingArguments(**common_args(recipe, run), eval_strategy="no", remove_unused_columns=False)
    policy, critic = policy_and_critic(recipe)
    return PPOTrainer(
        model=policy,
        critic=critic,
        args=args,
        train_dataset=train,
        processing_class=load_tokenizer(recipe),
        data_collator=lambda rows: rows,  # prompts stay rows until the rollout tokenizes them
        callbacks=callbacks,
        settings=m,
        rewards=list(zip(funcs, reward_tokenizers, strict=True)),
        max_length=t.max_length,
    )


def _check(recipe: Recipe) -> None:
    if converts_on_save(recipe):
        raise RecipeError(
            "adapter.init_lora_weights",
            "PiSSA/OLoRA rewrite the base weights, so the base with the adapter disabled is no longer the "
            "reference model; use true or gaussian for ppo",
        )
    if recipe.launch.num_processes > 1 or recipe.launch.num_machines > 1:
        raise RecipeError("launch.num_processes", "ppo runs in a single process for now; set it to 1")
    if recipe.method.max_completion_length >= recipe.train.max_length:
        raise RecipeError(
            "method.max_completion_length",
            f"must be below train.max_length ({recipe.train.max_length}): the prompt needs room too",
        )


def policy_and_critic(recipe: Recipe):
    """(policy, critic): the critic is a LoRA adapter "critic" with a value head ``v_head``, and its model with
    the adapters disabled is the reference.

    LoRA kinds: one PeftModel (the same object twice), the policy adapter "default" and the critic
    adapter on one frozen base. Full fine-tuning: the policy is the whole model; the critic sits on a
    frozen second copy.
    """
    from peft import LoraConfig, get_peft_model

    if recipe.adapter.kind == "full":
        policy, a = load_model(recipe), recipe.adapter
        critic_base = _with_value_head(load_model(recipe))
        lora = LoraConfig(
            r=a.r, lora_alpha=a.lora_alpha, target_modules="all-linear", exclude_modules=["v_head"],
            modules_to_save=["v_head"], task_type="CAUSAL_LM",
        )  # fmt: skip
        critic = get_peft_model(critic_base, lora, adapter_name=CRITIC)
    else:
        policy = critic = get_peft_model(load_model(recipe), peft_config(recipe))
        _with_value_head(critic.get_base_model())  # after the policy's targets resolved: "all-linear" skips it
        lora = critic.peft_config["default"]
        critic.add_adapter(
            CRITIC,
            dataclasses.replace(
                lora, target_modules=set(lora.target_modules), modules_to_save=["v_head"], init_lora_weights=True
            ),
        )
        critic.set_adapter("default")
    _trainable(critic)
    if recipe.train.gradient_checkpointing:
        critic.enable_input_require_grads()
        policy.enable_input_require_grads()
    return policy, critic


def _with_value_head(base):
    """Add ``v_head`` (hidden -> 1), zero-initialised: the first values are 0, the first advantages the whitened scores."""
    base.v_head = torch.nn.Linear(base.config.get_text_config().hidden_size, 1, device=base.device)
    torch.nn.init.zeros_(base.v_head.weight)
    torch.nn.init.zeros_(base.v_head.bias)
    return base


def _trainable(model) -> list[torch.nn.Parameter]:
    """Both adapters' parameters, set trainable (PEFT's set_adapter freezes the inactive one)."""
    params = [p for n, p in model.named_parameters() if ".default." in n or f".{CRITIC}." in n]
    for p in params:
        p.requires_grad_(True)
    return params


class PPOTrainer(Trainer):
    loss_is_scaled_for_ga = False  # compute_loss returns a per-minibatch mean: Trainer divides by accumulation

    def __init__(self, *args, critic, settings: MethodArgs, rewards: list[tuple[Any, Any]], max_length: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.shared = critic is self.model  # LoRA kinds: the policy's PeftModel; full: a frozen copy with an adapter
        self.critic = critic if self.shared else critic.to(self.args.device)
        self.settings = settings
        self.rewards = rewards
        for func, _ in rewards:
            if isinstance(func, torch.nn.Module):
                func.to(self.args.device)
        self.max_prompt_length = max_length - settings.max_completion_length
        self.steps_per_epoch = self.args.gradient_accumulation_steps * settings.num_mini_batches
        self.steps_per_rollout = settings.num_ppo_epochs * self.steps_per_epoch  # micro-steps
        self._buffer: list[dict[str, torch.Tensor]] | None = None
        self._micro: int | None = None
        self._metrics: dict[str, list[float]] = defaultdict(list)
        self._num_tokens = 0

    # ------------------------------------------------------------------ data: one rollout batch per call

    def get_train_dataloader(self):
        """Each batch is a whole rollout's prompts, repeated for every micro-step that trains on it."""
        return self._get_dataloader(
            dataset=self.train_dataset,
            description="Training",
            batch_size=self._train_batch_size * self.steps_per_epoch,
            sampler_fn=self._get_train_sampler,
            is_training=True,
        )

    def _get_train_sampler(self, dataset=None):
        return RepeatSampler(
            data_source=dataset if dataset is not None else self.train_dataset,
            mini_repeat_count=1,
            batch_size=self._train_batch_size * self.steps_per_epoch,
            repeat_count=self.steps_per_rollout,
            shuffle=True,
            seed=self.args.seed,
        )

    def _prepare_inputs(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        if self._micro is None:  # first call, or the first after a resume
            self._micro = self.state.global_step * self.args.gradient_accumulation_steps
        index = self._micro % self.steps_per_rollout
        if index == 0 or self._buffer is None:  # (a resume mid-rollout loads the checkpoint's rollout instead)
            self._buffer = self._minibatches(self._rollout(rows))
        self._micro += 1
        return self._buffer[index]

    # ------------------------------------------------------------------ rollout

    @contextmanager
    def _critic_adapter(self):
        """The critic's model with the critic adapter on; a shared base switches back to the policy after."""
        if not self.shared:
            yield
            return
        self.model.set_adapter(CRITIC)
        _trainable(self.model)  # PEFT's set_adapter freezes the other adapter
        try:
            yield
        finally:
            self.model.set_adapter("default")
            _trainable(self.model)

    @torch.no_grad()
    def _rollout(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        """Responses, scores, log-probs (policy, reference), values and advantages for ``rows``' prompts."""
        s, tok, device = self.settings, self.processing_class, self.args.device
        prompts = [row["prompt"] for row in rows]
        texts = [
            tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False) if isinstance(p, list) else p
            for p in prompts
        ]
        enc = tok(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        prompt_ids = enc["input_ids"][:, -self.max_prompt_length :].to(device)  # left-truncated
        prompt_mask = enc["attention_mask"][:, -self.max_prompt_length :].to(device)
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(
                input_ids=prompt_ids,
                attention_mask=prompt_mask,
                max_new_tokens=s.max_completion_length,
                do_sample=True,
                temperature=s.temperature,
                top_k=0,
                top_p=1.0,
                pad_token_id=tok.pad_token_id,
                eos_token_id=self._eos_ids(),
            )
        finally:
            self.model.train(was_training)
        responses = out[:, prompt_ids.size(1) :]
        is_eos = torch.isin(responses, torch.tensor(self._eos_ids(), device=device))
        ended = is_eos.any(1)
        first_eos = torch.where(ended, is_eos.int().argmax(1), responses.size(1) - 1)
        mask = (torch.arange(responses.size(1), device=device)[None] <= first_eos[:, None]).float()
        completions_text = [
            tok.decode(ids[: int(n)], skip_special_tokens=True) for ids, n in zip(responses, mask.sum(1), strict=True)
        ]
        scores = self._score(rows, prompts, completions_text, responses, mask)
        if s.missing_eos_penalty is not None:
            scores = scores - s.missing_eos_penalty * (~ended).float()
        attention = torch.cat([prompt_mask, mask.long()], dim=1)
        batch = {
            "input_ids": torch.cat([prompt_ids, responses], dim=1),
            "attention_mask": attention,
            "position_ids": (attention.cumsum(1) - 1).clamp(min=0),
            "responses": responses,
            "response_mask": mask,
        }
        logprobs, ref_logprobs, values = [], [], []
        for chunk in _chunks(batch, self.args.per_device_train_batch_size):
            logprobs.append(self._logprobs(self.model, chunk)[0])
            with self.critic.disable_adapter():  # the reference: the frozen base
                ref_logprobs.append(self._logprobs(self.critic, chunk)[0])
            values.append(self._values(chunk))
        batch["logprobs"], batch["values"] = torch.cat(logprobs), torch.cat(values)
        batch.update(self._advantages(batch, torch.cat(ref_logprobs), scores))
        self._num_tokens += int(attention.sum())
        self._record(
            reward=scores.mean(),
            reward_std=scores.std() if len(scores) > 1 else torch.tensor(0.0),
            **{"completions/mean_length": mask.sum(1).mean(), "completions/clipped_ratio": (~ended).float().mean()},
        )
        return batch

    def _eos_ids(self) -> list[int]:
        ids = {self.processing_class.eos_token_id}
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        return sorted(i for i in ids if i is not None)

    def _score(self, rows, prompts, completions_text, responses, mask) -> torch.Tensor:
        """The summed rewards of every response (a reward function's None counts as 0)."""
        conversational = isinstance(prompts[0], list)
        completions = (
            [[{"role": "assistant", "content": c}] for c in completions_text] if conversational else completions_text
        )
        columns = {k: [row[k] for row in rows] for k in rows[0] if k != "prompt"}
        total = torch.zeros(len(rows), device=self.args.device)
        for func, reward_tok in self.rewards:
            if isinstance(func, torch.nn.Module):
                texts = [
                    reward_tok.apply_chat_template(p + c, tokenize=False) if conversational else p + c
                    for p, c in zip(prompts, completions, strict=True)
                ]
                enc = reward_tok(
                    texts, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False
                )
                scores = func(**enc.to(self.args.device)).logits[:, 0].float()
                name = Path(func.config._name_or_path).name or "reward_model"
            else:
                ids = [r[: int(n)].tolist() for r, n in zip(responses, mask.sum(1), strict=True)]
                out = func(prompts=prompts, completions=completions, completion_ids=ids, **columns)
                scores = torch.tensor([float("nan") if r is None else float(r) for r in out], device=self.args.device)
                name = func.__name__
            self._record(**{f"rewards/{name}/mean": scores.nanmean()})
            total += scores.nan_to_num(0.0)
        return total

    def _logprobs(self, model, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probs of the response tokens, their logits) under ``model`` at the sampling temperature."""
        n = batch["responses"].size(1)
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
            use_cache=False,
            logits_to_keep=n + 1,
        ).logits[:, :-1]
        logits = logits / (self.settings.temperature + 1e-7)
        return pm.token_logprobs(logits, batch["responses"]), logits

    def _values(self, batch) -> torch.Tensor:
        """The critic's value of each response position (the state before that token)."""
        n = batch["responses"].size(1)
        base = self.critic.get_base_model()
        with self._critic_adapter():
            hidden = base.get_decoder()(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"],
                use_cache=False,
            ).last_hidden_state
            return base.v_head(hidden[:, -n - 1 : -1].float()).squeeze(-1)

    # ------------------------------------------------------------------ advantages

    def _advantages(self, batch, ref_logprobs, scores) -> dict[str, torch.Tensor]:
        s, mask = self.settings, batch["response_mask"]
        kl = pm.kl_penalty(batch["logprobs"], ref_logprobs, s.kl_estimator) * mask
        rewards = pm.token_rewards(scores, kl, mask, s.kl_coef)
        if s.whiten_rewards:
            rewards = pm.whiten(rewards, mask, shift_mean=False)
        advantages, returns = pm.gae(rewards, batch["values"], mask, s.gamma, s.lam)
        non_score = (-s.kl_coef * kl).sum(1)
        self._record(
            **{
                "objective/kl": kl.sum(1).mean(),
                "objective/non_score_reward": non_score.mean(),
                "objective/rlhf_reward": (scores + non_score).mean(),
            }
        )
        return {"advantages": pm.whiten(advantages, mask), "returns": returns}

    def _minibatches(self, batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """num_ppo_epochs shuffled passes, each cut into micro-batches of per_device_train_batch_size."""
        size = self.args.per_device_train_batch_size
        generator = torch.Generator().manual_seed(self.args.seed + self.state.global_step)
        out = []
        for _ in range(self.settings.num_ppo_epochs):
            order = torch.randperm(len(batch["responses"]), generator=generator)
            for start in range(0, len(order), size):
                out.append({k: v[order[start : start + size].to(v.device)] for k, v in batch.items()})
        return out

    # ------------------------------------------------------------------ losses

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        s, mask = self.settings, inputs["response_mask"]
        logprobs, logits = self._logprobs(model, inputs)
        values = self._values(inputs)
        pg_loss, clipfrac, approx_kl = pm.policy_loss(
            logprobs, inputs["logprobs"], inputs["advantages"], mask, s.cliprange
        )
        vf_loss, vf_clipfrac = pm.value_loss(values, inputs["values"], inputs["returns"], mask, s.cliprange_value)
        with torch.no_grad():
            entropy = pm.masked_mean(pm.entropy_from_logits(logits), mask)
        self._record(
            **{
                "objective/entropy": entropy,
                "loss/policy": pg_loss,
                "loss/value": vf_loss,
                "policy/clipfrac": clipfrac,
                "policy/approxkl": approx_kl,
                "value/clipfrac": vf_clipfrac,
            }
        )
        return pg_loss + s.vf_coef * vf_loss

    # ------------------------------------------------------------------ logging, checkpoints

    def _record(self, **metrics: torch.Tensor) -> None:
        for key, value in metrics.items():
            self._metrics[key].append(float(value.detach()))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log: add the means since the last one
            logs = {**logs, **{k: sum(v) / len(v) for k, v in self._metrics.items()}, "num_tokens": self._num_tokens}
            self._metrics.clear()
        super().log(logs, start_time)

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if not self.shared:  # full: the critic's adapter is not part of the policy
            optimizer.add_param_group({"params": _trainable(self.critic), "weight_decay": 0.0})
        return optimizer

    def _clip_grad_norm(self, model):
        if not self.shared:
            torch.nn.utils.clip_grad_norm_(_trainable(self.critic), self.args.max_grad_norm)
        return super()._clip_grad_norm(model)

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        """The policy; the critic adapter in critic/ (with its value head); the rollout in progress beside them."""
        from safetensors.torch import save_file

        super()._save(output_dir, state_dict)  # with LoRA, PEFT saves both adapters of the shared base
        if not self.shared and output_dir is not None:
            self.critic.save_pretrained(output_dir, safe_serialization=True)  # a non-default adapter: critic/
        if self._buffer is not None and output_dir is not None:  # a stop mid-rollout resumes on the same rollout
            flat = {f"{i}/{k}": v.contiguous() for i, batch in enumerate(self._buffer) for k, v in batch.items()}
            save_file(flat, str(Path(output_dir) / ROLLOUT))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Both adapters, and the rollout being trained on when the checkpoint was taken."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        path, device = Path(resume_from_checkpoint), str(self.args.device)
        adapters = [(self.critic, CRITIC, path / CRITIC)]
        if self.shared:
            adapters.append((self.model, "default", path))
        else:
            super()._load_from_checkpoint(resume_from_checkpoint, model)  # the full policy
        for model_, name, folder in adapters:
            weights = folder / "adapter_model.safetensors"
            if not weights.is_file():
                raise FileNotFoundError(f"{weights}: the checkpoint has no {name} adapter; it cannot resume ppo")
            set_peft_model_state_dict(model_, load_file(weights, device=device), adapter_name=name)
        if self.shared:
            self.model.set_adapter("default")
        _trainable(self.critic)
        if (path / ROLLOUT).is_file():
            flat = load_file(path / ROLLOUT, device=device)
            self._buffer = [{} for _ in range(1 + max(int(k.split("/")[0]) for k in flat))]
            for key, value in flat.items():
                index, name = key.split("/", 1)
                self._buffer[int(index)][name] = value

    def train(self, *args, **kwargs):
        result = super().train(*args, **kwargs)
        if self.shared:  # the run's adapter/ is the policy; the critic lives on in the checkpoints
            self.model.delete_adapter(CRITIC)
        return result


def _chunks(batch: dict[str, torch.Tensor], size: int):
    for start in range(0, len(batch["input_ids"]), size):
        yield {k: v[start : start + size] for k, v in batch.items()}
