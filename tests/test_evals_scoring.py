"""labkit.evals.scoring: cloze normalisations, letter choice, generation metrics."""

from __future__ import annotations

import itertools
import math

import pytest

from labkit.evals import UnknownMetricError
from labkit.evals.scoring import (
    bleu,
    check_metric,
    chrf,
    cloze_predictions,
    exact_match,
    letter_choice,
    macro_f1,
    maj_at_k,
    pass_at_k,
    prefix_match,
)


def test_acc_norm_counts_characters_not_bytes():
    # "서울" = 2 chars / 6 bytes; "NYC 1" = 5 chars / 5 bytes
    choices = ["서울", "NYC 1"]
    lls = [-5.0, -9.0]
    p = cloze_predictions(lls, choices, n_tokens=[4, 3])
    assert p["acc"] == 0  # -5 > -9
    assert p["acc_norm"] == 1  # -2.5 vs -1.8 per character
    assert p["acc_bytes"] == 0  # -0.833 vs -1.8 per byte
    assert p["acc_token"] == 0  # -1.25 vs -3.0 per token


def test_pure_hangul_char_and_byte_norm_agree():
    p = cloze_predictions([-3.0, -5.0, -4.0], ["가나", "다라마바", "사"])
    assert p["acc_norm"] == p["acc_bytes"]


def test_letter_choice_restricted_softmax():
    pred, p_gold, probs = letter_choice([math.log(0.1), math.log(0.3), math.log(0.1)], gold=1)
    assert pred == 1 and p_gold == pytest.approx(0.6) and sum(probs) == pytest.approx(1.0)


def test_pass_at_k_matches_brute_force():
    for n, c, k in [(5, 2, 1), (5, 2, 3), (6, 0, 2), (4, 4, 2), (7, 3, 7)]:
        combos = list(itertools.combinations(range(n), k))
        brute = sum(any(i < c for i in s) for s in combos) / len(combos)
        assert pass_at_k(n, c, k) == pytest.approx(brute)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_match_rules():
    assert exact_match(" Seoul. ", "seoul")
    assert not exact_match("Seoul is the capital", "Seoul")
    assert prefix_match("Seoul is the capital", "Seoul")
    assert not prefix_match("It is Seoul", "Seoul")
    assert prefix_match("5 apples", "5") and not prefix_match("50", "5")
    assert maj_at_k(["42", "41", "42."], "42")
    assert not maj_at_k(["41", "41", "42"], "42")


def test_macro_f1_and_mt_metrics():
    assert macro_f1([0, 1, 1, 0], [0, 1, 0, 0]) == pytest.approx((0.8 + 2 / 3) / 2)
    assert chrf(["서울은 한국의 수도이다"], ["서울은 한국의 수도이다"]) == pytest.approx(100.0)
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert chrf(["완전히 다른 문장"], ["서울은 한국의 수도이다"]) < 30


def test_unknown_metric():
    assert check_metric("acc_norm") == "acc_norm"
    with pytest.raises(UnknownMetricError, match="unknown metric 'accuracy'"):
        check_metric("accuracy")
