"""labkit.evals.prompts: golden templates (incl. lm-eval's Korean quirks) and deterministic few-shot."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.evals import EvalError, PromptConfig, build_prompt, load_fewshot, load_task
from labkit.evals.prompts import select_shots
from labkit.models import load_causal_lm

FIX = Path(__file__).parent / "fixtures" / "evals"


def _one(task, i=0):
    return load_task(task, path=FIX / f"{task}.jsonl")[i]


def test_boolq_double_space_quirk_fixed_and_reproducible():
    it = _one("kobest_boolq")
    fixed = build_prompt(it, "kobest_boolq", PromptConfig(style="cloze"))
    compat = build_prompt(it, "kobest_boolq", PromptConfig(style="cloze", compat=True))
    assert fixed.context.endswith("답변:") and fixed.continuations == (" 아니오", " 예")
    assert compat.context.endswith("답변: ")  # lm-eval's doc_to_text verbatim
    # after _encode_pair moves the trailing space, lm-eval scores "  예" (two spaces)
    from labkit.evals.lm import encode_pair
    from labkit.models import byte_tokenizer

    tok = byte_tokenizer()
    assert tok.decode(encode_pair(tok, compat.context, compat.continuations[1])[1]) == "  예"
    assert tok.decode(encode_pair(tok, fixed.context, fixed.continuations[1])[1]) == " 예"


def test_copa_connector_spacing():
    it = _one("kobest_copa")
    assert (
        build_prompt(it, "kobest_copa", PromptConfig(style="cloze")).context == "바닥이 젖어 있었다. 왜냐하면"
    )
    assert build_prompt(it, "kobest_copa", PromptConfig(style="cloze", compat=True)).context == (
        "바닥이 젖어 있었다.  왜냐하면"
    )


def test_kmmlu_fullwidth_colon():
    it = _one("kmmlu")
    fixed = build_prompt(it, "kmmlu", PromptConfig(style="letters")).context
    compat = build_prompt(it, "kmmlu", PromptConfig(style="letters", compat=True)).context
    assert compat == "다음 중 조선을 건국한 인물은?\nA. 왕건\nB. 이성계\nC. 세종\nD. 정도전\n정답\uff1a"
    assert fixed.endswith("정답:") and "\uff1a" not in fixed


def test_click_csat_shows_all_five_options():
    it = _one("click", 2)  # 5 options, gold is E
    fixed = build_prompt(it, "click", PromptConfig(style="letters"))
    compat = build_prompt(it, "click", PromptConfig(style="letters", compat=True))
    assert fixed.continuations == (" A", " B", " C", " D", " E")
    assert "E. 봄" in fixed.context
    assert "봄" not in compat.context.split("보기:")[1]  # lm-eval never shows the gold option E
    assert "A:여름, B: 가을" in compat.context


def test_haerae_uses_query_and_parenthesised_labels():
    it = _one("haerae")
    p = build_prompt(it, "haerae", PromptConfig(style="letters"))
    assert p.context.endswith("### 정답:") and p.continuations[0] == " (A)"


def test_koen_templates_per_language():
    ko, en = load_task("koen_parallel", path=FIX / "koen_items.jsonl")[:2]
    pk = build_prompt(ko, "generic", PromptConfig(style="letters"))
    pe = build_prompt(en, "generic", PromptConfig(style="letters"))
    assert pk.context == "질문: 대한민국의 수도는 어디입니까?\nA. 부산\nB. 서울\nC. 인천\nD. 대구\n정답:"
    assert pe.context.startswith("Question: What is the capital") and pe.context.endswith("\nAnswer:")
    forced = build_prompt(ko, "generic", PromptConfig(style="letters", lang="en"))
    assert forced.context.startswith("Question: 대한민국")


def test_fewshot_deterministic_excludes_item_and_cluster():
    items = load_task("koen_parallel", path=FIX / "koen_items.jsonl")
    cfg = PromptConfig(shots=3, seed=1)
    for it in items:
        shots = select_shots(it, items, cfg)
        assert len(shots) == 3
        assert all(s.id != it.id and s.cluster != it.cluster for s in shots)
        assert [s.id for s in shots] == [s.id for s in select_shots(it, list(items), cfg)]
    a = [s.id for s in select_shots(items[0], items, PromptConfig(shots=3, seed=1))]
    b = [s.id for s in select_shots(items[0], items, PromptConfig(shots=3, seed=2))]
    assert a != b or len(items) < 5
    first = select_shots(items[0], items, PromptConfig(shots=2, sampler="first_n"))
    assert [s.id for s in first] == [items[2].id, items[3].id]  # items[1] is the English twin


def test_fewshot_rendering_in_context():
    pool = load_fewshot("koen_parallel", path=FIX / "koen_fewshot.jsonl", lang="en")
    it = load_task("koen_parallel", path=FIX / "koen_items.jsonl", lang="en")[0]
    cfg = PromptConfig(style="cloze", shots=2, sampler="first_n")
    p = build_prompt(it, "generic", cfg, select_shots(it, pool, cfg))
    assert p.context.startswith(
        "Question: What is the capital of Japan?\nAnswer: Tokyo\n\nQuestion: What is 2"
    )
    assert p.shot_ids == ("fs-001-en", "fs-002-en")


def test_chat_wrapping_needs_template():
    it = load_task("koen_parallel", path=FIX / "koen_items.jsonl")[0]
    with pytest.raises(EvalError, match="chat template"):
        build_prompt(it, "generic", PromptConfig(chat=True))


@pytest.mark.slow
def test_chat_wrapping_smollm2():
    _, tok = load_causal_lm("smollm2-135m")
    it = load_task("koen_parallel", path=FIX / "koen_items.jsonl")[0]
    p = build_prompt(it, "generic", PromptConfig(chat=True), tokenizer=tok)
    assert p.context.rstrip().endswith("assistant") and p.continuations[0] == "A"


def test_bad_config():
    with pytest.raises(EvalError, match="style"):
        PromptConfig(style="mc")
    with pytest.raises(EvalError, match="shots"):
        PromptConfig(shots=-1)
