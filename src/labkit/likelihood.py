"""Log-likelihood scoring of token continuations: the one scorer that Parts I and II share.

:func:`loglikelihood_tokens` takes ``(context, continuation)`` pairs of token ids and returns, for
each, the summed log-probability (natural log, nats) of the continuation given the context and
whether the continuation is the greedy one. :mod:`labkit.evals` feeds it the token pairs of
lm-evaluation-harness's tokenisation (:func:`labkit.evals.lm.loglikelihood`); :mod:`labkit.moe`
scores its multiple-choice items with it (:func:`labkit.moe.evaluate.mc_accuracy`).

Speed comes from running each distinct context once: requests are grouped by their context tokens
and each group is scored in one forward pass with its options packed after the context ("packed
continuations": a 4-D attention mask keeps options from seeing each other, and position ids
restart after the context), with logits computed only at the scored positions. Groups are sorted
longest first and batched under a token budget (right-padded rows, at most ~15 % padding). The
model's attention must accept a 4-D mask (``sdpa`` or ``eager``, the transformers defaults).
A context too long for the model window loses tokens from its left, with a
:class:`ContextTruncatedWarning` naming the requests.

Reference: Gao et al., *A framework for few-shot language model evaluation* (lm-evaluation-harness).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_TOKEN_BUDGET",
    "ContextTooLongError",
    "ContextTruncatedWarning",
    "ScoringError",
    "loglikelihood_tokens",
    "model_max_length",
]

DEFAULT_TOKEN_BUDGET = 8192  # padded tokens per forward pass when batch_size is None
DEFAULT_MAX_LENGTH = 2048  # lm-eval's fallback
MIN_FILL = 0.85  # token-budget batching: a row joins a batch only if it fills this much of its width
LOGIT_BUDGET_BYTES = 256 * 2**20  # a batch whose kept float32 logits would exceed this is split


class ScoringError(ValueError):
    """A request or setting :func:`loglikelihood_tokens` cannot score (the message names it)."""


class ContextTooLongError(ScoringError):
    """A request that cannot fit the model window even after truncation."""


class ContextTruncatedWarning(UserWarning):
    """Tokens were cut from the left of a context to fit the model window (never silent)."""


def model_max_length(model: Any, tokenizer: Any = None) -> int:
    """Context window in tokens, resolved like lm-eval (config, then tokenizer, then 2048)."""
    cfg = getattr(model, "config", None)
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        val = getattr(cfg, attr, None)
        if isinstance(val, int) and val > 0:
            return val
    tml = getattr(tokenizer, "model_max_length", None)
    if isinstance(tml, int) and 0 < tml < 10**9:
        return tml
    return DEFAULT_MAX_LENGTH


@dataclass
class _Group:
    ctx: list[int]
    conts: list[list[int]]
    req_idx: list[int]

    @property
    def cost(self) -> int:
        """Length of the packed row: the context plus every option but its last token."""
        return len(self.ctx) + sum(len(c) - 1 for c in self.conts)


def _group_requests(encoded: list[tuple[list[int], list[int]]], max_length: int) -> list[_Group]:
    groups: dict[tuple[int, ...], _Group] = {}
    for i, (ctx, cont) in enumerate(encoded):
        if len(cont) > max_length:
            raise ContextTooLongError(
                f"request {i}: continuation of {len(cont)} tokens exceeds the model window of {max_length}"
            )
        key = tuple(ctx)
        if key not in groups:
            groups[key] = _Group(list(ctx), [], [])
        groups[key].conts.append(list(cont))
        groups[key].req_idx.append(i)
    out = list(groups.values())
    for g in out:  # left-truncate a shared context, as lm-eval does per request, and say so
        longest = max(len(c) for c in g.conts)
        excess = len(g.ctx) + longest - 1 - max_length
        if excess > 0:
            if excess >= len(g.ctx):
                raise ContextTooLongError(f"requests {g.req_idx}: nothing of the context fits the window")
            warnings.warn(
                f"requests {g.req_idx}: context of {len(g.ctx)} tokens + continuation of {longest} "
                f"exceeds the model window ({max_length}); truncating {excess} tokens from the left",
                ContextTruncatedWarning,
                stacklevel=3,
            )
            g.ctx = g.ctx[excess:]
    out.sort(key=lambda g: (-g.cost, tuple(g.ctx)))
    return out


def _batches(groups: list[_Group], batch_size: int | None, token_budget: int) -> Iterator[list[_Group]]:
    batch: list[_Group] = []
    for g in groups:
        if batch:
            rows = len(batch) + 1  # one packed row per group
            width = batch[0].cost  # sorted longest first
            if batch_size:
                full = len(batch) >= batch_size
            else:  # a token budget, and at most ~15 % of a row wasted on padding
                full = rows * width > token_budget or g.cost < MIN_FILL * width
            if full:
                yield batch
                batch = []
        batch.append(g)
    if batch:
        yield batch


def _packed_rows(batch: list[_Group]) -> list[tuple[list[int], list[int], list[int], list[int]]]:
    """Per group: packed tokens, position ids, segment ids (-1 context, i option i) and option starts."""
    rows = []
    for g in batch:
        n = len(g.ctx)
        seq, pos, seg, starts = list(g.ctx), list(range(n)), [-1] * n, []
        for c in g.conts:
            starts.append(len(seq))
            seq += c[:-1]
            pos += range(n, n + len(c) - 1)
            seg += [len(starts) - 1] * (len(c) - 1)
        rows.append((seq, pos, seg, starts))
    return rows


def _scored_positions(batch: list[_Group], rows: list) -> list[int]:
    """Sorted positions whose logits are scored in any row: each last context token and option token."""
    wanted: set[int] = set()
    for g, (_, _, _, starts) in zip(batch, rows, strict=True):
        wanted.add(len(g.ctx) - 1)
        for st, c in zip(starts, g.conts, strict=True):
            wanted.update(range(st, st + len(c) - 1))
    return sorted(wanted)


@torch.inference_mode()
def _score_batch(model: Any, batch: list[_Group], pad_id: int) -> list[list[tuple[float, bool]]]:
    """Score every option of every group in one forward pass ("packed continuations").

    Row ``r`` holds one context followed by all its options' tokens (each without its last token).
    A 4-D attention mask lets context tokens see earlier context tokens, and each option's tokens
    see the whole context and their own earlier tokens, never another option; position ids restart
    after the context for every option. So each option is scored exactly as if it followed the
    context alone, while the context is computed once and the model runs once per batch.
    """
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    rows = _packed_rows(batch)
    keep = _scored_positions(batch, rows)
    vocab = model.get_output_embeddings().weight.shape[0]
    if len(batch) > 1 and len(batch) * len(keep) * vocab * 4 > LOGIT_BUDGET_BYTES:
        half = len(batch) // 2  # the kept logits of the whole batch would be too large: split it
        return _score_batch(model, batch[:half], pad_id) + _score_batch(model, batch[half:], pad_id)
    width = max(len(seq) for seq, _, _, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    seg = torch.full((len(rows), width), -2, dtype=torch.long)  # -2: padding
    for r, (seq, p, sg, _) in enumerate(rows):
        ids[r, : len(seq)] = torch.tensor(seq)
        pos[r, : len(seq)] = torch.tensor(p)
        seg[r, : len(seq)] = torch.tensor(sg)
    sq, sk = seg[:, :, None], seg[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    allow = causal & ((sk == -1) | (sk == sq)) & (sq != -2)
    allow |= torch.eye(width, dtype=torch.bool) & (sq == -2)  # padding sees itself (no empty rows)
    mask = torch.zeros(allow.shape, dtype=dtype).masked_fill_(~allow, torch.finfo(dtype).min)
    col = {p: j for j, p in enumerate(keep)}
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask[:, None].to(device),
        position_ids=pos.to(device),
        use_cache=False,
        logits_to_keep=torch.tensor(keep, device=device),
    )
    logp = F.log_softmax(out.logits.float(), dim=-1)  # [B, len(keep), V]
    results: list[list[tuple[float, bool]]] = []
    for r, (_, _, _, starts) in enumerate(rows):
        g = batch[r]
        res = []
        first = col[len(g.ctx) - 1]
        for st, c in zip(starts, g.conts, strict=True):
            cols = torch.tensor([first] + [col[p] for p in range(st, st + len(c) - 1)], device=device)
            lp = logp[r, cols]  # [len(c), V]: row j predicts c[j]
            toks = torch.tensor(c, device=device)
            res.append((float(lp.gather(1, toks[:, None]).sum()), bool((lp.argmax(-1) == toks).all())))
        results.append(res)
    return results


def loglikelihood_tokens(
    model: Any,
    requests: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    batch_size: int | None = None,
    max_length: int | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    pad_id: int = 0,
    progress: bool = False,
) -> list[tuple[float, bool]]:
    """Log-likelihood of each continuation's tokens given its context's tokens.

    Parameters
    ----------
    model:
        A Hugging Face causal LM (eval mode) whose attention takes a 4-D mask.
    requests:
        ``(context ids, continuation ids)`` pairs, both non-empty. Requests with identical context
        tokens share one forward pass over the context.
    batch_size:
        Distinct contexts per forward pass; ``None`` packs contexts until ``rows × padded length``
        exceeds ``token_budget``.
    max_length:
        Model window in tokens (default: :func:`model_max_length`). Longer requests lose tokens from
        the left of the context with a :class:`ContextTruncatedWarning` naming them.
    pad_id:
        Token id of the padding (masked out; any id of the vocabulary).

    Returns
    -------
    list of ``(logprob, is_greedy)``
        In request order; ``logprob`` in nats (natural log).

    Raises
    ------
    ScoringError
        An empty context or continuation, a bad ``batch_size``, or an attention implementation
        that cannot take a 4-D mask (e.g. ``flash_attention_2``).
    ContextTooLongError
        A continuation longer than the window, or a context with nothing left after truncation.
    """
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ScoringError(f"batch_size must be a positive int or None, got {batch_size!r}")
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if impl not in (None, "sdpa", "eager"):
        raise ScoringError(
            f"attention implementation {impl!r} cannot take the 4-D mask that packed scoring needs; "
            "load the model with attn_implementation='sdpa' (or 'eager')"
        )
    encoded = [(list(ctx), list(cont)) for ctx, cont in requests]
    for i, (ctx, cont) in enumerate(encoded):
        if not ctx or not cont:
            raise ScoringError(
                f"request {i}: context of {len(ctx)} and continuation of {len(cont)} tokens; "
                "both need at least one"
            )
    groups = _group_requests(encoded, max_length or model_max_length(model))
    out: list[tuple[float, bool] | None] = [None] * len(encoded)
    with tqdm(total=len(encoded), desc="loglikelihood", disable=not progress, leave=False) as bar:
        for batch in _batches(groups, batch_size, token_budget):
            for g, res in zip(batch, _score_batch(model, batch, pad_id), strict=True):
                for idx, r in zip(g.req_idx, res, strict=True):
                    out[idx] = r
                bar.update(len(g.conts))
    return [r for r in out if r is not None]  # every request is in exactly one group
