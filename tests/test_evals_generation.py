"""Generation track: translation pairs, sacrebleu scores and paired bootstrap, response language, caching."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sacrebleu

from labkit.evals import EvalDataError, EvalError, load_task
from labkit.evals.generation import (
    TranslationPair,
    compare_translations,
    hangul_share,
    response_language,
    translate,
    translation_pairs,
    translation_prompt,
    translation_scores,
)
from labkit.evals.scoring import exact_match, prefix_match
from labkit.models import tiny_llama

FIX = Path(__file__).parent / "fixtures" / "evals"
KOEN = FIX / "koen_items.jsonl"


def test_hangul_share_and_response_language():
    assert hangul_share("서울") == 1.0 and hangul_share("Seoul") == 0.0
    assert hangul_share("서울 is big") == pytest.approx(2 / 7)
    assert hangul_share("123 !?") == 0.0 and response_language("123") == "none"
    assert response_language("대한민국의 수도는 서울입니다.") == "ko"
    assert response_language("The capital is 서울.") == "en"
    with pytest.raises(EvalError, match="threshold"):
        response_language("x", threshold=0)


def test_translation_pairs_from_the_parallel_set():
    items = load_task("koen_parallel", path=KOEN)
    ko_en = translation_pairs(items, "ko-en")
    en_ko = translation_pairs(items, "en-ko")
    assert len(ko_en) == len(en_ko) == 6  # the Korean-only item has no partner
    p = ko_en[0]
    assert p.src_lang == "ko" and p.tgt_lang == "en" and hangul_share(p.source) > 0.5
    assert {(x.id, x.source) for x in ko_en} == {(x.id, x.reference) for x in en_ko}
    prompt = translation_prompt(p, ko_en[1:3])
    assert prompt.endswith(f"Korean: {p.source}\nEnglish:") and prompt.count("\n\n") == 2
    with pytest.raises(EvalError, match="direction='ko-ja'"):
        translation_pairs(items, "ko-ja")


def test_empty_side_is_a_typed_error():
    items = load_task("koen_parallel", path=KOEN)
    bad = [dataclasses.replace(it, question=" ") if it.id == items[0].id else it for it in items]
    side = "source" if items[0].lang == "ko" else "reference"
    with pytest.raises(
        EvalDataError, match=rf"pair '{items[0].meta['pair_id']}' \(ko-en\): the {side} is empty"
    ):
        translation_pairs(bad, "ko-en")
    with pytest.raises(EvalDataError, match="no en-ko translation pair"):
        translation_pairs([it for it in items if it.lang == "ko"], "en-ko")


def test_scores_match_sacrebleu_and_paired_bootstrap_prefers_the_better_system():
    pairs = [
        TranslationPair(str(i), "x", ref, "ko", "en")
        for i, ref in enumerate(
            ["the cat sat on the mat", "a dog runs fast", "it is raining today", "I like green tea"] * 3
        )
    ]
    good = ["the cat sat on a mat", "a dog runs quickly", "it rains today", "I like tea"] * 3
    bad = ["cat", "dog", "rain", "tea"] * 3
    s = translation_scores(good, pairs)
    refs = [[p.reference for p in pairs]]
    assert s["chrf"] == pytest.approx(sacrebleu.corpus_chrf(good, refs).score)
    assert s["bleu"] == pytest.approx(sacrebleu.corpus_bleu(good, refs).score)
    assert s["in_target_language"] == 1.0
    cmp = compare_translations(good, bad, pairs, B=200)
    assert cmp["chrf"]["diff"] > 0 and cmp["chrf"]["p_value"] < 0.05 and cmp["B"] == 200
    with pytest.raises(EvalError, match="3 hypotheses for 12 pairs"):
        translation_scores(good[:3], pairs)


def test_translate_is_cached(tmp_path):
    m, t = tiny_llama("tiny-llama", seed=5)
    pairs = translation_pairs(load_task("koen_parallel", path=KOEN), "en-ko")[:3]
    a = translate(m, t, pairs, model_id="tiny", max_new_tokens=4, cache=tmp_path)
    files = list(tmp_path.rglob("translations.json"))
    assert len(a) == 3 and len(files) == 1
    assert translate(m, t, pairs, model_id="tiny", max_new_tokens=4, cache=tmp_path) == a
    assert translate(m, t, pairs, model_id="tiny", max_new_tokens=4, cache=False) == a  # greedy
    with pytest.raises(EvalDataError, match="mix directions"):
        translate(m, t, [*pairs, translation_pairs(load_task("koen_parallel", path=KOEN))[0]], model_id="t")


def test_exact_and_prefix_match_fixture():
    cases = [
        ("42", "42", True, True),
        ("42 apples", "42", False, True),
        ("420", "42", False, False),
        (" 서울입니다", "서울", False, False),
        ("서울, 대한민국", "서울", False, True),
    ]
    for pred, gold, em, pm in cases:
        assert exact_match(pred, gold) is em and prefix_match(pred.strip(), gold) is pm, pred
