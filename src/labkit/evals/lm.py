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

The token pairs are scored by :func:`labkit.likelihood.loglikelihood_tokens`, the scorer Part I
shares: each distinct context runs once, its options packed after it in one forward pass under a
4-D attention mask, so the model's attention must accept such a mask (``sdpa`` or ``eager``).
Numbers agree with ``HFLM.loglikelihood`` to ~1e-5 in float32 (see ``benchmarks/bench_evals.py``).

Reference: Gao et al., *A framework for few-shot language model evaluation* (lm-evaluation-harness).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import likelihood
from ..likelihood import DEFAULT_TOKEN_BUDGET, loglikelihood_tokens, model_max_length
from .errors import ContextTooLongError, ContextTruncatedWarning, EvalError

__all__ = [
    "encode_pair",
    "generate_until",
    "loglikelihood",
    "loglikelihood_reference",
    "model_max_length",
    "tok_encode",
]


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


def _pad_id(tokenizer) -> int:
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if tid is not None:
            return int(tid)
    return 0  # pragma: no cover


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
    encoded = [encode_pair(tokenizer, ctx, cont) for ctx, cont in requests]
    try:
        return loglikelihood_tokens(
            model,
            encoded,
            batch_size=batch_size,
            max_length=max_length or model_max_length(model, tokenizer),
            token_budget=token_budget,
            pad_id=_pad_id(tokenizer),
            progress=progress,
        )
    except likelihood.ContextTooLongError as err:
        raise ContextTooLongError(str(err)) from None
    except likelihood.ScoringError as err:
        raise EvalError(str(err)) from None


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
