"""Evaluation helpers: held-out perplexity, multiple-choice accuracy, prefill/decode latency.

Perplexity is ``exp(mean token NLL)`` over all next-token predictions inside the blocks.
Multiple-choice items are scored by the summed log-probability of each continuation given the
context (all continuations have the same length, so no length normalisation is needed).
Latency is wall-clock (``time.perf_counter``; CUDA synchronised), median of repeats after a warm-up.
"""

from __future__ import annotations

import inspect
import math
import statistics
import time
from collections.abc import Sequence

import torch
from torch.nn import functional as F

from .data import ChoiceItem

__all__ = ["latency", "latency_side_by_side", "mc_accuracy", "perplexity"]


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def perplexity(
    model: torch.nn.Module, blocks: torch.Tensor, *, batch_size: int = 4, head_chunk: int = 1024
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
            hidden = body(input_ids=ids, use_cache=False).last_hidden_state[:, :-1]
            hidden = hidden.reshape(-1, hidden.shape[-1])
            for c in range(0, hidden.shape[0], head_chunk):
                logits = head(hidden[c : c + head_chunk]).float()
                nll += float(F.cross_entropy(logits, targets[c : c + head_chunk], reduction="sum"))
        count += targets.numel()
    return math.exp(nll / count)


@torch.no_grad()
def mc_accuracy(model: torch.nn.Module, items: Sequence[ChoiceItem], *, batch_size: int = 16) -> float:
    """Fraction of items whose true continuation gets the highest log-probability."""
    dev = _device(model)
    rows, owners = [], []
    for j, it in enumerate(items):
        for c in it.choices:
            rows.append(torch.cat([it.context, c]))
            owners.append(j)
    ctx = items[0].context.numel()
    scores = []
    for s in range(0, len(rows), batch_size):
        ids = torch.stack(rows[s : s + batch_size]).to(dev)
        logp = model(input_ids=ids, use_cache=False).logits[:, ctx - 1 : -1].float().log_softmax(-1)
        scores.append(logp.gather(-1, ids[:, ctx:, None]).squeeze(-1).sum(-1).cpu())
    score = torch.cat(scores).view(len(items), -1)
    pred = score.argmax(-1)
    answers = torch.tensor([it.answer for it in items])
    return float((pred == answers).float().mean())


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timers(model: torch.nn.Module, prefill_tokens: int, decode_tokens: int, vocab: int | None, seed: int):
    """``(prefill, decode)``: functions timing one prefill (s) and one decode step (s per token)."""
    dev = _device(model)
    vocab = vocab or model.config.vocab_size
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(vocab, (1, prefill_tokens), generator=gen).to(dev)
    prompt = ids[:, :32]

    def prefill() -> float:
        _sync(dev)
        t = time.perf_counter()
        model(input_ids=ids, use_cache=False)
        _sync(dev)
        return time.perf_counter() - t

    # transformers ≥ 5.2x names the KV cache ``cache`` (``past_key_values`` is deprecated)
    new_api = "cache" in inspect.signature(model.forward).parameters
    kwarg = "cache" if new_api else "past_key_values"

    def decode() -> float:
        out = model(input_ids=prompt, use_cache=True)
        cache = getattr(out, kwarg)
        nxt = out.logits[:, -1:].argmax(-1)
        _sync(dev)
        t = time.perf_counter()
        for _ in range(decode_tokens):
            out = model(input_ids=nxt, use_cache=True, **{kwarg: cache})
            cache = getattr(out, kwarg)
            nxt = out.logits[:, -1:].argmax(-1)
        _sync(dev)
        return (time.perf_counter() - t) / decode_tokens

    return prefill, decode


def latency(
    model: torch.nn.Module,
    *,
    prefill_tokens: int = 256,
    decode_tokens: int = 16,
    repeats: int = 3,
    vocab: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Median prefill time (s for ``prefill_tokens``) and decode time per token (s) with a KV cache.

    Decode: after a 32-token prompt, ``decode_tokens`` greedy single-token steps reuse the cache.
    To compare models, use :func:`latency_side_by_side` (interleaved, so drifts in machine speed
    hit every model alike).
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
    models: dict[str, torch.nn.Module],
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
    Returns ``{name: {"prefill_s", "decode_s_per_token"}}``, medians over ``repeats``.
    """
    if not models:
        raise ValueError("latency_side_by_side needs at least one model")
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    vocab = vocab or next(iter(models.values())).config.vocab_size
    timers = {name: _timers(m, prefill_tokens, decode_tokens, vocab, seed) for name, m in models.items()}
    for prefill, decode in timers.values():  # warm-up: kernels built, caches and plans filled
        prefill()
        decode()
    samples: dict[str, dict[str, list[float]]] = {
        n: {"prefill_s": [], "decode_s_per_token": []} for n in models
    }
    for _ in range(repeats):
        for name, (prefill, _decode) in timers.items():
            samples[name]["prefill_s"].append(prefill())
        for name, (_prefill, decode) in timers.items():
            samples[name]["decode_s_per_token"].append(decode())
    return {n: {k: statistics.median(v) for k, v in per.items()} for n, per in samples.items()}
