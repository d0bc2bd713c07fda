"""Tokenizer fertility and the Korean-vs-English token premium on parallel text.

Definitions (all after NFC normalisation; special tokens are not counted):

* tokens per character, per whitespace word (for Korean an *eojeol*: stem plus particles, so longer
  than an English word), and per UTF-8 byte (a Hangul syllable is 3 bytes);
* premium (Petrov et al. 2023, "Language Model Tokenizers Introduce Unfairness Between Languages"):
  ``tokens(Korean text) / tokens(its English translation)`` on **parallel** text, both as the ratio
  of totals and per pair.

A "tokenizer" is anything with ``encode(text, add_special_tokens=False)`` (Hugging Face), or a
callable ``text -> list``; :class:`CharTokenizer` and :class:`ByteTokenizer` are the trivial baselines.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

from .errors import EvalError

__all__ = ["ByteTokenizer", "CharTokenizer", "count_tokens", "fertility", "premium"]


class CharTokenizer:
    """One token per Unicode character (after NFC)."""

    name = "characters"

    def __call__(self, text: str) -> list[str]:
        return list(text)


class ByteTokenizer:
    """One token per UTF-8 byte."""

    name = "UTF-8 bytes"

    def __call__(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))


def count_tokens(tokenizer, text: str) -> int:
    """Number of tokens of NFC-normalised ``text`` (no BOS/EOS)."""
    text = unicodedata.normalize("NFC", text)
    if hasattr(tokenizer, "encode"):
        return len(tokenizer.encode(text, add_special_tokens=False))
    if callable(tokenizer):
        return len(tokenizer(text))
    raise EvalError(f"{type(tokenizer).__name__} is not a tokenizer (no encode() and not callable)")


def fertility(tokenizer, texts: Sequence[str]) -> dict:
    """Token, character, word and byte counts of ``texts`` and their ratios."""
    if not texts:
        raise EvalError("fertility needs at least one text")
    texts = [unicodedata.normalize("NFC", t) for t in texts]
    tokens = sum(count_tokens(tokenizer, t) for t in texts)
    chars = sum(len(t) for t in texts)
    words = sum(len(t.split()) for t in texts)
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    if chars == 0:
        raise EvalError("fertility: texts are empty")
    return dict(
        texts=len(texts),
        tokens=tokens,
        chars=chars,
        words=words,
        bytes=nbytes,
        tokens_per_char=tokens / chars,
        tokens_per_word=tokens / max(words, 1),
        tokens_per_byte=tokens / nbytes,
        chars_per_token=chars / max(tokens, 1),
    )


def premium(tokenizer, ko_texts: Sequence[str], en_texts: Sequence[str]) -> dict:
    """Korean/English token premium on parallel texts (``ko_texts[i]`` translates ``en_texts[i]``).

    Returns the ratio of totals, the median and geometric mean of the per-pair ratios, and both
    sides' :func:`fertility`.
    """
    if len(ko_texts) != len(en_texts) or not ko_texts:
        raise EvalError(f"premium needs equally many parallel texts, got {len(ko_texts)} and {len(en_texts)}")
    ko = [count_tokens(tokenizer, t) for t in ko_texts]
    en = [count_tokens(tokenizer, t) for t in en_texts]
    if min(en) == 0:
        raise EvalError("an English text has no tokens")
    ratios = np.array(ko, float) / np.array(en, float)
    return dict(
        ratio_of_totals=sum(ko) / sum(en),
        median_ratio=float(np.median(ratios)),
        geomean_ratio=float(np.exp(np.log(np.maximum(ratios, 1e-12)).mean())),
        pairs=len(ko),
        ko=fertility(tokenizer, ko_texts),
        en=fertility(tokenizer, en_texts),
    )
