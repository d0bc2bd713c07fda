"""labkit.evals.fertility: counts after NFC, premium on parallel text."""

from __future__ import annotations

import unicodedata

import pytest

from labkit.evals import EvalError
from labkit.evals.fertility import ByteTokenizer, CharTokenizer, count_tokens, fertility, premium
from labkit.models import byte_tokenizer

KO = ["서울은 한국의 수도이다.", "나는 밥을 먹었다."]
EN = ["Seoul is the capital of Korea.", "I ate rice."]


def test_trivial_tokenizers():
    f = fertility(CharTokenizer(), KO)
    assert f["tokens_per_char"] == 1.0 and f["chars"] == sum(len(t) for t in KO)
    b = fertility(ByteTokenizer(), ["가"])
    assert b["tokens"] == 3 and b["tokens_per_char"] == 3.0 and b["tokens_per_byte"] == 1.0


def test_hf_tokenizer_counts_without_specials_and_after_nfc():
    tok = byte_tokenizer()
    assert count_tokens(tok, "가") == 3
    assert count_tokens(tok, unicodedata.normalize("NFD", "가")) == 3  # NFD jamo (6 bytes) normalised first


def test_premium_on_parallel_text():
    p = premium(ByteTokenizer(), KO, EN)
    ko_bytes = sum(len(t.encode()) for t in KO)
    en_bytes = sum(len(t.encode()) for t in EN)
    assert p["ratio_of_totals"] == pytest.approx(ko_bytes / en_bytes)
    assert p["pairs"] == 2 and p["ko"]["tokens"] == ko_bytes
    with pytest.raises(EvalError, match="parallel"):
        premium(ByteTokenizer(), KO, EN[:1])
    with pytest.raises(EvalError, match="not a tokenizer"):
        count_tokens(object(), "x")
