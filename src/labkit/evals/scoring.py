"""Scoring rules: cloze (acc, acc_norm, acc_bytes, acc_token), HCX-style letter choice, and generation.

Cloze rules follow lm-eval 0.4.13 ``ConfigurableTask.process_results``:

* ``acc``: argmax of the summed log-likelihood of each option;
* ``acc_norm``: argmax of ``ll / len(choice)`` in **characters** (the delimiter is not counted;
  lm-eval issue #3278 — a Hangul syllable is one character but three UTF-8 bytes);
* ``acc_bytes``: argmax of ``ll / len(choice.encode("utf-8"))`` (lm-eval PR #3368);
* ``acc_token``: argmax of ``ll / n_tokens`` (per-token mean; tokenizer-dependent).

Letter choice (HyperCLOVA X, arXiv:2404.01954 §3): the options are in the prompt and the prediction
is the label whose token has the highest probability, with the distribution restricted to the label
tokens (softmax over the labels' log-probabilities); ``p_gold`` is that restricted probability.

Generation: exact match, prefix match (HCX's NQ/TriviaQA/ARC rule), the option a generated answer
names (:func:`match_option`, HCX's generative ARC), maj@k, the unbiased pass@k estimator of Chen et
al. (2021, arXiv:2107.03374), and corpus chrF/BLEU through sacrebleu.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

import numpy as np

from .errors import EvalError, UnknownMetricError

__all__ = [
    "CLOZE_METRICS",
    "METRICS",
    "bleu",
    "chrf",
    "cloze_predictions",
    "exact_match",
    "letter_choice",
    "macro_f1",
    "maj_at_k",
    "match_option",
    "normalize_answer",
    "pass_at_k",
    "prefix_match",
]

CLOZE_METRICS = ("acc", "acc_norm", "acc_bytes", "acc_token")
METRICS = (
    *CLOZE_METRICS,
    "acc_letters",
    "exact_match",
    "prefix_match",
    "maj@k",
    "pass@k",
    "chrf",
    "bleu",
    "macro_f1",
)


def check_metric(name: str) -> str:
    """Return ``name`` if it is a known metric, else raise :class:`UnknownMetricError`."""
    if name not in METRICS:
        raise UnknownMetricError(f"unknown metric {name!r}; known metrics: {list(METRICS)}")
    return name


def _argmax(x: Sequence[float]) -> int:
    return int(np.argmax(np.asarray(x, dtype=np.float64)))


def cloze_predictions(
    lls: Sequence[float], choices: Sequence[str], n_tokens: Sequence[int] | None = None
) -> dict[str, int]:
    """Predicted option index under each cloze rule.

    Parameters
    ----------
    lls:
        Summed log-likelihood (nats) of each option's continuation.
    choices:
        Option texts **without** the target delimiter (lengths are measured on these).
    n_tokens:
        Continuation token counts, for ``acc_token`` (omitted → no ``acc_token`` key).
    """
    if len(lls) != len(choices) or not choices:
        raise EvalError(f"got {len(lls)} log-likelihoods for {len(choices)} choices")
    chars = [len(c) for c in choices]
    nbytes = [len(c.encode("utf-8")) for c in choices]
    if min(chars) == 0:
        raise EvalError("empty choice text: cannot length-normalise")
    out = {
        "acc": _argmax(lls),
        "acc_norm": _argmax([ll / n for ll, n in zip(lls, chars, strict=True)]),
        "acc_bytes": _argmax([ll / n for ll, n in zip(lls, nbytes, strict=True)]),
    }
    if n_tokens is not None:
        out["acc_token"] = _argmax([ll / n for ll, n in zip(lls, n_tokens, strict=True)])
    return out


def letter_choice(label_lls: Sequence[float], gold: int) -> tuple[int, float, list[float]]:
    """HCX-style choice from the label tokens' log-probabilities.

    Returns ``(prediction, p_gold, probs)`` where ``probs`` is the softmax over the labels only.
    """
    x = np.asarray(label_lls, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise EvalError(f"need >= 2 label log-probabilities, got {list(label_lls)}")
    if not 0 <= gold < x.size:
        raise EvalError(f"gold={gold} out of range for {x.size} labels")
    p = np.exp(x - x.max())
    p /= p.sum()
    return int(p.argmax()), float(p[gold]), p.tolist()


def macro_f1(golds: Sequence[int], preds: Sequence[int]) -> float:
    """Macro-averaged F1 over the classes present in ``golds`` ∪ ``preds`` (KoBEST's official metric)."""
    if len(golds) != len(preds) or not golds:
        raise EvalError("macro_f1 needs equally long, non-empty gold and prediction lists")
    f1s = []
    for c in sorted(set(golds) | set(preds)):
        tp = sum(g == c and p == c for g, p in zip(golds, preds, strict=True))
        fp = sum(g != c and p == c for g, p in zip(golds, preds, strict=True))
        fn = sum(g == c and p != c for g, p in zip(golds, preds, strict=True))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s))


_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_answer(text: str, *, ignore_case: bool = True, ignore_punctuation: bool = True) -> str:
    """NFC, strip, collapse whitespace, optionally lower-case and drop ASCII punctuation."""
    text = unicodedata.normalize("NFC", text)
    if ignore_case:
        text = text.lower()
    if ignore_punctuation:
        text = _PUNCT.sub("", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str | Sequence[str], **norm) -> bool:
    """Normalised prediction equals (one of) the gold answer(s)."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    p = normalize_answer(prediction, **norm)
    return any(p == normalize_answer(g, **norm) for g in golds)


def prefix_match(prediction: str, gold: str | Sequence[str], **norm) -> bool:
    """HCX's rule: the normalised prediction *starts with* a gold answer, so a model that runs on past
    the answer is not penalised. The match must end at a word boundary ("50" does not match "5")."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    p = normalize_answer(prediction, **norm)
    return any(_starts_at_boundary(p, normalize_answer(x, **norm)) for x in golds)


def _starts_at_boundary(text: str, prefix: str) -> bool:
    """``text`` starts with the non-empty ``prefix`` and the match ends at a word boundary."""
    return (
        bool(prefix)
        and text.startswith(prefix)
        and (len(text) == len(prefix) or not text[len(prefix)].isalnum())
    )


def match_option(generation: str, options: Sequence[str], **norm) -> int | None:
    """The option a generated answer names, by prefix match (HCX's generative ARC); ``None`` if none.

    HCX (arXiv:2404.01954 §3) says only that ARC's options were shuffled and that ARC, like NQ and
    TriviaQA, was scored by *prefix matching*, so that a model which runs on past its answer is not
    penalised; it gives neither the normalisation nor what happens when options share a prefix. labkit's
    rule, stated in full:

    1. Normalise the generation and every option with :func:`normalize_answer` (NFC, lower case,
       ASCII punctuation dropped, whitespace stripped and collapsed; ``norm`` switches the case and
       punctuation steps off).
    2. An option *matches* if its normalised text is non-empty and the normalised generation starts
       with it, the match ending at a word boundary (end of text or a character that is not a letter
       or digit): ``"100 C, because"`` matches ``"100 C"``; ``"100 Cm"`` does not.
    3. Of the matching options the **longest** is the one named, so a generation that names a
       longer option sharing the gold's prefix (``"iron oxide"`` for the gold ``"iron"``) names
       that option, not the gold. If the longest matches are several options with the same
       normalised text, the generation cannot tell them apart and names none (``None``).

    An option whose normalised text is empty (e.g. ``"?"``) can never be named.
    """
    g = normalize_answer(generation, **norm)
    found = [
        (len(o), i) for i, x in enumerate(options) if _starts_at_boundary(g, o := normalize_answer(x, **norm))
    ]
    if not found:
        return None
    longest = max(n for n, _ in found)
    best = [i for n, i in found if n == longest]
    return best[0] if len(best) == 1 else None


def maj_at_k(samples: Sequence[str], gold: str | Sequence[str], **norm) -> bool:
    """Majority vote over ``samples`` (normalised; ties → the earliest) is correct (maj@k)."""
    if not samples:
        raise EvalError("maj@k needs at least one sample")
    normed = [normalize_answer(s, **norm) for s in samples]
    counts = Counter(normed)
    best = max(counts.values())
    winner = next(s for s in normed if counts[s] == best)
    golds = [gold] if isinstance(gold, str) else list(gold)
    return any(winner == normalize_answer(g, **norm) for g in golds)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k = 1 − C(n−c, k)/C(n, k) from ``n`` samples of which ``c`` pass (Chen et al. 2021)."""
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise EvalError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu defaults: character 6-grams, β=2), 0–100."""
    import sacrebleu

    return float(sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score)


def bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> float:
    """Corpus BLEU through sacrebleu, 0–100 (use ``tokenize="ko-mecab"`` for Korean if installed)."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize).score)
