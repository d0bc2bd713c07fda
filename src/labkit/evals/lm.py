"""Model API with the contract of lm-evaluation-harness's HF backend, but faster.

:func:`loglikelihood` takes ``(context, continuation)`` string pairs and returns, for each, the summed
log-probability (natural log, nats) of the continuation tokens given the context and whether the
continuation is the greedy one. Tokenisation follows ``lm_eval.api.model.TemplateLM._encode_pair`` and
``HFLM.tok_encode`` (lm-eval 0.4.13) exactly:

* trailing whitespace of the context is moved to the front of the continuation;
* ``context + continuation`` is encoded as a whole and split at ``len(encode(context))``; the model
  input is ``encode(context) + that tail`` (so a merge across the boundary is never scored);
* ``encode`` uses the tokenizer's own special-token default (``add_special_tokens=True``) unless the
  text already starts with the BOS string;
* an empty context becomes the prefix token (BOS, else EOS), unless the continuation starts with it.

Speed comes from running each distinct context once: requests are grouped by their context tokens
and each group is scored in one forward pass with its options packed after the context ("packed
continuations": a 4-D attention mask keeps options from seeing each other, and position ids
restart after the context), with logits computed only at the scored positions. Groups are sorted
longest first and batched under a token budget (right-padded rows, at most ~15 % padding). The
model's attention must accept a 4-D mask (``sdpa`` or ``eager``, the transformers defaults).
Numbers agree with ``HFLM.loglikelihood`` to ~1e-5 in float32 (see ``benchmarks/bench_evals.py``).

Reference: Gao et al., *A framework for few-shot language model evaluation* (lm-evaluation-harness).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .errors import ContextTooLongError, ContextTruncatedWarning, EvalError

__all__ = [
    "encode_pair",
    "generate_until",
    "loglikelihood",
    "loglikelihood_reference",
    "model_max_length",
    "tok_encode",
]

DEFAULT_TOKEN_BUDGET = 8192  # padded tokens per forward pass when batch_size is None
DEFAULT_MAX_LENGTH = 2048  # lm-eval's fallback
MIN_FILL = 0.85  # token-budget batching: a row joins a batch only if it fills this much of its width
LOGIT_BUDGET_BYTES = 256 * 2**20  # a batch whose kept float32 logits would exceed this is split


def tok_encode(tokenizer, text: str, add_special_tokens: bool | None = None) -> list[int]:
    """Encode like ``HFLM.tok_encode``: tokenizer default, but no second BOS if ``text`` starts with it."""
    kwargs: dict = {}
    if add_special_tokens is not None:
        kwargs["add_special_tokens"] = add_special_tokens
    else:
        prefix = _prefix_token_id(tokenizer)
        if prefix is not None and text.startswith(tokenizer.decode(prefix)):
            kwargs["add_special_tokens"] = False
    return list(tokenizer.encode(text, **kwargs))


def _prefix_token_id(tokenizer) -> int | None:
    if tokenizer.bos_token_id is not None:
        return int(tokenizer.bos_token_id)
    return None if tokenizer.eos_token_id is None else int(tokenizer.eos_token_id)


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Context and continuation token ids, split exactly as lm-eval's causal ``_encode_pair`` does.

    Raises
    ------
    EvalError
        If the continuation is empty or encodes to no tokens.
    """
    if not isinstance(context, str) or not isinstance(continuation, str):
        raise EvalError(
            f"request must be (str, str), got ({type(context).__name__}, {type(continuation).__name__})"
        )
    if context == "":
        cont = tok_encode(tokenizer, continuation, add_special_tokens=False)
        if not cont:
            raise EvalError(f"continuation {continuation!r} encodes to no tokens")
        prefix = _prefix_token_id(tokenizer)
        if prefix is None:
            raise EvalError("empty context needs a BOS or EOS token, and the tokenizer has neither")
        if cont[0] != prefix:
            return [prefix], cont
        if len(cont) == 1:
            raise EvalError(f"continuation {continuation!r} is only the prefix token")
        return cont[:1], cont[1:]
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
        if context == "":
            return encode_pair(tokenizer, "", continuation)
    whole = tok_encode(tokenizer, context + continuation)
    ctx = tok_encode(tokenizer, context)
    cont = whole[len(ctx) :]
    if not cont:
        raise EvalError(f"continuation {continuation!r} encodes to no tokens after context {context[-40:]!r}")
    return ctx, cont


def model_max_length(model, tokenizer=None) -> int:
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


def _pad_id(tokenizer) -> int:
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if tid is not None:
            return int(tid)
    return 0  # pragma: no cover


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


def _batches(groups: list[_Group], batch_size: int | None, token_budget: int):
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
def _score_batch(model, batch: list[_Group], pad_id: int) -> list[list[tuple[float, bool]]]:
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


def loglikelihood(
    model,
    tokenizer,
    requests: Sequence[tuple[str, str]],
    *,
    batch_size: int | None = None,
    max_length: int | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    progress: bool = True,
) -> list[tuple[float, bool]]:
    """Log-likelihood of each continuation given its context, like lm-eval's ``HFLM.loglikelihood``.

    Parameters
    ----------
    model, tokenizer:
        A Hugging Face causal LM (eval mode) and its tokenizer.
    requests:
        ``(context, continuation)`` string pairs. Requests with identical context tokens share one
        forward pass over the context.
    batch_size:
        Distinct contexts per forward pass; ``None`` packs contexts until ``rows × padded length``
        exceeds ``token_budget``.
    max_length:
        Model window in tokens (default: :func:`model_max_length`). Longer requests lose tokens from
        the left of the context with a :class:`ContextTruncatedWarning` naming them.

    Returns
    -------
    list of ``(logprob, is_greedy)``
        In request order; ``logprob`` in nats (natural log).

    Raises
    ------
    EvalError
        Malformed requests, a bad ``batch_size``, or an attention implementation that cannot take a
        4-D mask (e.g. ``flash_attention_2``).
    ContextTooLongError
        A continuation longer than the window, or a context with nothing left after truncation.
    """
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise EvalError(f"batch_size must be a positive int or None, got {batch_size!r}")
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if impl not in (None, "sdpa", "eager"):
        raise EvalError(
            f"attention implementation {impl!r} cannot take the 4-D mask that packed scoring needs; "
            "load the model with attn_implementation='sdpa' (or 'eager')"
        )
    max_length = max_length or model_max_length(model, tokenizer)
    encoded = [encode_pair(tokenizer, ctx, cont) for ctx, cont in requests]
    groups = _group_requests(encoded, max_length)
    out: list[tuple[float, bool] | None] = [None] * len(encoded)
    pad = _pad_id(tokenizer)
    with tqdm(total=len(encoded), desc="loglikelihood", disable=not progress, leave=False) as bar:
        for batch in _batches(groups, batch_size, token_budget):
            for g, res in zip(batch, _score_batch(model, batch, pad), strict=True):
                for idx, r in zip(g.req_idx, res, strict=True):
                    out[idx] = r
                bar.update(len(g.conts))
    return out  # type: ignore[return-value]


@torch.inference_mode()
def loglikelihood_reference(
    model, tokenizer, requests: Sequence[tuple[str, str]]
) -> list[tuple[float, bool]]:
    """Reference mode: one full forward pass per request, batch size 1, no cache, no grouping.

    Slow but transparent (lm-eval's own loop with ``batch_size=1``); use it to check
    :func:`loglikelihood` on a sample.
    """
    device = next(model.parameters()).device
    out = []
    for ctx, cont in requests:
        c, k = encode_pair(tokenizer, ctx, cont)
        ids = torch.tensor([(c + k)[:-1]], device=device)
        logp = F.log_softmax(model(input_ids=ids).logits[0, -len(k) :].float(), dim=-1)
        tgt = torch.tensor(k, device=device)
        out.append((float(logp.gather(1, tgt[:, None]).sum()), bool((logp.argmax(-1) == tgt).all())))
    return out


def _cut(text: str, stops: Sequence[str]) -> str:
    for s in stops:
        if s and s in text:
            text = text.split(s, 1)[0]
    return text


@torch.inference_mode()
def generate_until(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    until: Sequence[str] = (),
    max_new_tokens: int = 64,
    num_samples: int = 1,
    temperature: float = 0.0,
    seed: int = 1234,
    batch_size: int = 8,
    progress: bool = True,
) -> list[list[str]]:
    """Generate continuations, cut at the first stop string (lm-eval's ``generate_until`` contract).

    ``temperature=0`` is greedy decoding (``num_samples`` must then be 1); otherwise ``num_samples``
    samples per prompt are drawn with a fixed ``seed`` (for maj@k and pass@k). Prompts are left-padded
    and left-truncated to ``window - max_new_tokens`` with a :class:`ContextTruncatedWarning`.
    Generation of a row stops once its new text ends in a stop string (``generate(stop_strings=...)``,
    transformers' ``StopStringCriteria``, which matches tokens without decoding the output).

    Returns one list of ``num_samples`` strings per prompt.
    """
    if temperature < 0:
        raise EvalError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0 and num_samples != 1:
        raise EvalError(f"greedy decoding (temperature=0) gives one sample, got num_samples={num_samples}")
    if max_new_tokens < 1:
        raise EvalError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    device = next(model.parameters()).device
    window = model_max_length(model, tokenizer) - max_new_tokens
    pad = _pad_id(tokenizer)
    stops = [s for s in until if s]
    out: list[list[str]] = []
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    texts: dict[int, list[str]] = {}
    gen_rng = torch.random.fork_rng(devices=[])
    with gen_rng, tqdm(total=len(prompts), desc="generate", disable=not progress, leave=False) as bar:
        torch.manual_seed(seed)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            encs = []
            for i in idx:
                enc = tok_encode(tokenizer, prompts[i])
                if len(enc) > window:
                    warnings.warn(
                        f"prompt {i}: truncating {len(enc) - window} tokens from the left to "
                        f"leave {max_new_tokens} for generation",
                        ContextTruncatedWarning,
                        stacklevel=2,
                    )
                    enc = enc[-window:]
                encs.append(enc)
            width = max(len(e) for e in encs)
            ids = torch.full((len(encs), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, e in enumerate(encs):
                ids[r, width - len(e) :] = torch.tensor(e)
                mask[r, width - len(e) :] = 1
            kwargs: dict[str, Any] = dict(do_sample=temperature > 0, num_return_sequences=num_samples)
            if temperature > 0:
                kwargs.update(temperature=temperature, top_k=0, top_p=1.0)
            if stops:  # a row stops once its new tokens end in a stop string (StopStringCriteria)
                kwargs.update(stop_strings=stops, tokenizer=tokenizer)
            gen = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                pad_token_id=pad,
                **kwargs,
            )
            decoded = tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)
            for r, i in enumerate(idx):
                texts[i] = [_cut(t, stops) for t in decoded[r * num_samples : (r + 1) * num_samples]]
            bar.update(len(idx))
    out = [texts[i] for i in range(len(prompts))]
    return out
