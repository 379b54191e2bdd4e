"""Fidelity of a GGUF to the HF model it came from: perplexity, top-1 agreement, KL, task accuracy.

Both sides see the same token ids (the HF tokenizer's), so the numbers compare the weights and the
runtime, not two tokenizers. Parity of the tokenizers themselves is checked in ``parity``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tunedeck.engine.export.samples import Conversation

MAX_TEXT_TOKENS = 512
Text = tuple[list[int], int]  # token ids, first position whose token counts towards perplexity
CACHE_BUDGET_BYTES = 1 << 30  # HF log-probabilities kept in memory; beyond this they are recomputed


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64, copy=False)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


class HFReference:
    """The merged HF model (float32): the yardstick every exported file is measured against."""

    def __init__(self, model_dir: Path):
        import torch
        from transformers import AutoConfig

        from tunedeck.engine.model.tokenizers import load_saved_tokenizer

        self.model_dir = Path(model_dir)
        self.tokenizer = load_saved_tokenizer(model_dir)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.config = AutoConfig.from_pretrained(model_dir)
        self._model = None
        trained = getattr(self.config, "max_position_embeddings", None) or MAX_TEXT_TOKENS
        self.max_tokens = min(MAX_TEXT_TOKENS, trained)
        self._cache: dict[int, np.ndarray] = {}
        self._cached_bytes = 0

    @property
    def model(self):
        """The model, loaded on first use (an export with --checks none and no importance matrix never needs it)."""
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32, use_safetensors=True)
            self._model = model.to(self.device).eval()
        return self._model

    # ------------------------------------------------------------------ tokens and text

    def render(self, conv: Conversation | str, add_generation_prompt: bool = False) -> str:
        if isinstance(conv, str):
            return conv
        return self.tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[: self.max_tokens]

    def scored_text(self, conv: Conversation | str) -> Text:
        """Token ids, and where the scored part starts: the final assistant reply, or all of plain text."""
        ids = self.encode(self.render(conv))
        if isinstance(conv, list) and len(conv) > 1 and conv[-1]["role"] == "assistant":
            prompt = self.encode(self.render(conv[:-1], add_generation_prompt=True))
            if 0 < len(prompt) < len(ids) and ids[: len(prompt)] == prompt:
                return ids, len(prompt)
        return ids, 1

    def stop_ids(self) -> list[int]:
        """Token ids the HF model ends a reply on: the tokenizer's EOS and generation_config's."""
        from transformers import GenerationConfig

        ids: list[int] = []
        if self._model is not None:
            gen = self._model.generation_config
        else:
            try:
                gen = GenerationConfig.from_pretrained(self.model_dir)
            except OSError:  # no generation_config.json: what the model would derive from config.json
                gen = GenerationConfig.from_model_config(self.config)
        for value in (self.tokenizer.eos_token_id, getattr(gen, "eos_token_id", None)):
            for i in value if isinstance(value, list) else [value]:
                if i is not None and i not in ids:
                    ids.append(int(i))
        return ids

    # ------------------------------------------------------------------ logits

    def logprobs(self, key: int, ids: list[int]) -> np.ndarray:
        """Log-probabilities (positions x vocab) for ``ids``; cached by ``key`` within a budget."""
        if key in self._cache:
            return self._cache[key]
        import torch

        with torch.no_grad():
            logits = self.model(torch.tensor([ids], device=self.device)).logits[0].float().cpu().numpy()
        lp = _log_softmax(logits).astype(np.float32)
        if self._cached_bytes + lp.nbytes <= CACHE_BUDGET_BYTES:
            self._cache[key] = lp
            self._cached_bytes += lp.nbytes
        return lp

    # ------------------------------------------------------------------ generation

    def generate(self, prompts: list[Conversation], max_new_tokens: int) -> list[dict]:
        """Greedy replies; ``stopped`` when the reply ended on one of ``stop_ids()``."""
        import torch

        stops = self.stop_ids()
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else (stops[0] if stops else 0)
        out = []
        for conv in prompts:
            ids = self.encode(self.render(conv, add_generation_prompt=True))
            with torch.no_grad():
                gen = self.model.generate(
                    torch.tensor([ids], device=self.device),
                    attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=self.device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=stops or None,
                    pad_token_id=pad,
                )[0, len(ids) :].tolist()
            stopped = bool(gen) and gen[-1] in stops
            out.append({"tokens": gen, "stopped": stopped, "text": self.tokenizer.decode(gen, skip_special_tokens=True)})
        return out

    def accuracy(self, rows: list[dict]) -> float:
        from tunedeck.engine.evaluate import hf_exact_match, reply_budget

        side = self.tokenizer.padding_side
        try:
            return hf_exact_match(self.model, self.tokenizer, rows, max_new_tokens=reply_budget(self.tokenizer, rows))
        finally:
            self.tokenizer.padding_side = side

    def close(self) -> None:
        import gc

        self._model = None
        self._cache.clear()
        gc.collect()


def reference_scores(ref: HFReference, texts: list[Text]) -> dict:
    """The HF model's own perplexity on the texts (the number each file's perplexity sits beside)."""
    acc = _Agreement()
    for i, (ids, start) in enumerate(texts):
        if len(ids) > start:
            lp = ref.logprobs(i, ids)
            acc.add((ids, start), lp.astype(np.float64), lp)
    out = acc.result()
    return {
        "perplexity": out["perplexity"],
        "perplexity_on": "the final assistant reply of each held-out conversation (all tokens of plain text)",
        "tokens": out["tokens"],
        "scored_tokens": out["scored_tokens"],
        "texts": len(texts),
    }


class _Agreement:
    """Running perplexity, top-1 agreement and KL(HF || other) over texts."""

    def __init__(self) -> None:
        self.nll, self.kl, self.agree, self.n_next, self.n_pos = 0.0, 0.0, 0, 0, 0

    def add(self, text: Text, lp: np.ndarray, hf: np.ndarray) -> None:
        """Perplexity on the scored tokens; agreement and KL on every position."""
        ids, start = text
        hf = hf.astype(np.float64)
        self.nll -= float(lp[np.arange(start - 1, len(ids) - 1), ids[start:]].sum())
        self.agree += int((lp.argmax(-1) == hf.argmax(-1)).sum())
        self.kl += float((np.exp(hf) * (hf - lp)).sum())
        self.n_next += len(ids) - start
        self.n_pos += len(ids)

    def result(self) -> dict:
        if not self.n_next:
            return {"perplexity": None, "top1_agreement": None, "mean_kl": None, "tokens": 0, "scored_tokens": 0}
        return {
            "perplexity": round(math.exp(self.nll / self.n_next), 4),
            "top1_agreement": round(self.agree / self.n_pos, 4),
            "mean_kl": round(max(self.kl, 0.0) / self.n_pos, 6),
            "tokens": self.n_pos,
            "scored_tokens": self.n_next,
        }


def gguf_scores(path: Path, ref: HFReference, texts: list[Text], threads: int | None = None) -> dict:
    """Perplexity of the GGUF, top-1 agreement and mean KL(HF || GGUF) per token, on the same ids."""
    from tunedeck.engine.chat import open_llama

    n_ctx = max((len(ids) for ids, _ in texts), default=8) + 8
    llm = open_llama(path, n_ctx=n_ctx, n_batch=min(n_ctx, 512), logits_all=True, n_threads=threads, verbose=False)
    acc = _Agreement()
    try:
        for i, (ids, start) in enumerate(texts):
            if len(ids) <= start:
                continue
            llm.reset()
            llm.eval(ids)
            acc.add((ids, start), _log_softmax(np.array(llm.scores[: len(ids)], dtype=np.float32)), ref.logprobs(i, ids))
    finally:
        llm.close()
    return acc.result()


def gguf_generation(path: Path, prompts: list[tuple[Conversation, int]], eval_rows: list[dict], reply_tokens: int = 24) -> dict:
    """Load once through the chat path: replies to the probes (each up to its token limit: do they stop?) and task
    accuracy (replies up to ``reply_tokens``, the HF side's budget). Nothing to generate: the file is not loaded."""
    from tunedeck.engine.chat import ChatSession
    from tunedeck.engine.evaluate import exact_match

    if not prompts and not eval_rows:
        return {"replies": [], "accuracy": None}
    with ChatSession(path, n_ctx=512) as chat:
        replies = []
        for conv, max_tokens in prompts:
            out = chat.llm.create_chat_completion(messages=conv, temperature=0.0, max_tokens=max_tokens)
            choice = out["choices"][0]
            replies.append({"text": choice["message"]["content"], "stopped": choice["finish_reason"] == "stop"})
        accuracy = None
        if eval_rows:
            accuracy = exact_match(lambda msgs: chat.reply(msgs, temperature=0.0, max_tokens=reply_tokens), eval_rows)
    return {"replies": replies, "accuracy": accuracy}


def torch_scores(model, ref: HFReference, texts: list[Text]) -> dict:
    """Like ``gguf_scores`` for a transformers model (GPTQ/AWQ exports), on the same ids."""
    import torch

    device = next(model.parameters()).device
    acc = _Agreement()
    for i, (ids, start) in enumerate(texts):
        if len(ids) <= start:
            continue
        with torch.no_grad():
            logits = model(torch.tensor([ids], device=device)).logits[0].float().cpu().numpy()
        acc.add((ids, start), _log_softmax(logits), ref.logprobs(i, ids))
    return acc.result()
