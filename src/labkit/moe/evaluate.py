"""Evaluation helpers: held-out perplexity, multiple-choice accuracy, prefill/decode latency.

Perplexity is ``exp(mean token NLL)`` over all next-token predictions inside the blocks.
Multiple-choice items are scored by the summed log-probability of each continuation given the
context (all continuations have the same length, so no length normalisation is needed), through
:func:`labkit.likelihood.loglikelihood_tokens`, the scorer Part II uses.
Latency is measured with :mod:`torch.utils.benchmark` (``Timer.blocked_autorange``: a warm-up
call, then blocks of calls for at least :data:`MIN_RUN_S`; accelerators synchronised), median of
repeats after a warm-up.
"""

from __future__ import annotations

import inspect
import math
import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F
from torch.utils import benchmark

from ..likelihood import loglikelihood_tokens
from .data import ChoiceItem

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["MIN_RUN_S", "head_nll", "latency", "latency_side_by_side", "mc_accuracy", "perplexity"]

MIN_RUN_S = 0.05  # seconds each latency measurement runs for at least (blocked_autorange)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def perplexity(
    model: PreTrainedModel, blocks: torch.Tensor, *, batch_size: int = 4, head_chunk: int = 1024
) -> float:
    """Perplexity of ``model`` on token blocks ``[B, L]`` (every position after the first is scored).

    The LM head runs on ``head_chunk`` positions at a time, so the vocabulary-sized logits never
    exist for a whole batch (4 × 512 positions × 49,152 tokens would be 400 MB in float32, twice
    over for the softmax); models without a separate ``model.model`` body fall back to full logits.
    """
    dev = _device(model)
    body, head = getattr(model, "model", None), model.get_output_embeddings()
    nll, count = 0.0, 0
    for s in range(0, blocks.shape[0], batch_size):
        ids = blocks[s : s + batch_size].to(dev)
        targets = ids[:, 1:].reshape(-1)
        if body is None or head is None:
            logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
            nll += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets, reduction="sum"))
        else:
            hidden = body(input_ids=ids, use_cache=False).last_hidden_state
            nll += head_nll(head, hidden, ids, head_chunk=head_chunk)
        count += targets.numel()
    return math.exp(nll / count)


@torch.no_grad()
def head_nll(
    head: torch.nn.Module, hidden: torch.Tensor, ids: torch.Tensor, *, head_chunk: int = 1024
) -> float:
    """Summed next-token NLL (nats) of token ``ids`` ``[B, L]`` from the final hidden states ``hidden``
    ``[B, L, d]`` (after the last norm), running the LM ``head`` on ``head_chunk`` positions at a time."""
    targets = ids[:, 1:].reshape(-1)
    flat = hidden[:, :-1].reshape(-1, hidden.shape[-1])
    nll = 0.0
    for c in range(0, flat.shape[0], head_chunk):
        logits = head(flat[c : c + head_chunk]).float()
        nll += float(F.cross_entropy(logits, targets[c : c + head_chunk], reduction="sum"))
    return nll


@torch.no_grad()
def mc_accuracy(model: torch.nn.Module, items: Sequence[ChoiceItem], *, batch_size: int = 16) -> float:
    """Fraction of items whose true continuation gets the highest log-probability.

    Scored by :func:`labkit.likelihood.loglikelihood_tokens`: each item's context runs once with
    its choices packed after it, ``batch_size`` items per forward pass.
    """
    requests = [(it.context.tolist(), c.tolist()) for it in items for c in it.choices]
    lls = loglikelihood_tokens(model, requests, batch_size=batch_size)
    score = torch.tensor([ll for ll, _ in lls]).view(len(items), -1)
    pred = score.argmax(-1)
    answers = torch.tensor([it.answer for it in items])
    return float((pred == answers).float().mean())


class _Bench:
    """Latency measurements of one model: ``prefill()`` (s) and ``decode()`` (s per token), each
    one ``Timer.blocked_autorange``; ``warm_up()`` runs both workloads once, untimed."""

    def __init__(
        self, model: PreTrainedModel, prefill_tokens: int, decode_tokens: int, vocab: int, seed: int
    ) -> None:
        self.model, self.decode_tokens = model, decode_tokens
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(vocab, (1, prefill_tokens), generator=gen).to(_device(model))
        self.prompt = self.ids[:, :32]
        # transformers ≥ 5.2x names the KV cache ``cache`` (``past_key_values`` is deprecated)
        new_api = "cache" in inspect.signature(model.forward).parameters
        self.kwarg = "cache" if new_api else "past_key_values"
        self.threads = torch.get_num_threads()

    def _prefill_once(self) -> None:
        self.model(input_ids=self.ids, use_cache=False)

    def _decoder(self) -> Callable[[], None]:
        """A function running the greedy decode steps after the prompt: the prompt runs now
        (untimed) and each call first crops the KV cache back to it."""
        out = self.model(input_ids=self.prompt, use_cache=True)
        cache, first, n = getattr(out, self.kwarg), out.logits[:, -1:].argmax(-1), self.prompt.shape[1]

        def steps() -> None:
            extra = cache.get_seq_length() - n
            if extra:
                cache.crop(-extra)  # negative: tokens to remove (transformers ≥ 5.2x refuses a length)
            nxt = first
            for _ in range(self.decode_tokens):
                nxt = (
                    self.model(input_ids=nxt, use_cache=True, **{self.kwarg: cache}).logits[:, -1:].argmax(-1)
                )

        return steps

    def _median(self, fn: Callable[[], None]) -> float:
        timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=self.threads)
        return float(timer.blocked_autorange(min_run_time=MIN_RUN_S).median)

    def warm_up(self) -> None:
        self._prefill_once()
        self._decoder()()

    def prefill(self) -> float:
        return self._median(self._prefill_once)

    def decode(self) -> float:
        return self._median(self._decoder()) / self.decode_tokens


def latency(
    model: PreTrainedModel,
    *,
    prefill_tokens: int = 256,
    decode_tokens: int = 16,
    repeats: int = 3,
    vocab: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Median prefill time (s for ``prefill_tokens``) and decode time per token (s) with a KV cache.

    Decode: after a 32-token prompt, ``decode_tokens`` greedy single-token steps reuse the cache
    (cropped back to the prompt before each timed run). To compare models, use
    :func:`latency_side_by_side` (interleaved, so drifts in machine speed hit every model alike).
    """
    return latency_side_by_side(
        {"model": model},
        prefill_tokens=prefill_tokens,
        decode_tokens=decode_tokens,
        repeats=repeats,
        vocab=vocab,
        seed=seed,
    )["model"]


@torch.no_grad()
def latency_side_by_side(
    models: dict[str, PreTrainedModel],
    *,
    prefill_tokens: int = 256,
    decode_tokens: int = 16,
    repeats: int = 5,
    vocab: int | None = None,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """:func:`latency` of several models measured round-robin: each repeat times every model's
    prefill, then every model's decode, so a slow phase of a shared or throttled machine falls on
    all of them. Same token ids for every model (``vocab``: the first model's unless given).
    Each measurement is one ``Timer.blocked_autorange`` (:mod:`torch.utils.benchmark`, at least
    :data:`MIN_RUN_S` seconds, the model's thread count). Returns
    ``{name: {"prefill_s", "decode_s_per_token"}}``, medians over ``repeats``.
    """
    if not models:
        raise ValueError("latency_side_by_side needs at least one model")
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    vocab = vocab or int(next(iter(models.values())).config.vocab_size)
    benches = {name: _Bench(m, prefill_tokens, decode_tokens, vocab, seed) for name, m in models.items()}
    for bench in benches.values():  # warm-up: kernels built, caches and plans filled
        bench.warm_up()
    samples: dict[str, dict[str, list[float]]] = {
        n: {"prefill_s": [], "decode_s_per_token": []} for n in models
    }
    for _ in range(repeats):
        for name, bench in benches.items():
            samples[name]["prefill_s"].append(bench.prefill())
        for name, bench in benches.items():
            samples[name]["decode_s_per_token"].append(bench.decode())
    return {n: {k: statistics.median(v) for k, v in per.items()} for n, per in samples.items()}
