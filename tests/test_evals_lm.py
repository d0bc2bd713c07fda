"""labkit.evals.lm: lm-eval's tokenisation contract and exact agreement with a naive forward pass."""

from __future__ import annotations

import copy
import importlib.util
import unicodedata
import warnings

import pytest
import torch
import torch.nn.functional as F

from labkit.evals import ContextTooLongError, ContextTruncatedWarning, EvalError, encode_pair, loglikelihood
from labkit.evals.lm import generate_until, loglikelihood_reference, tok_encode
from labkit.models import tiny_llama


@pytest.fixture(scope="module")
def tiny():
    return tiny_llama("tiny-llama", seed=3)


def naive_loglikelihood(model, tokenizer, requests):
    """One full forward pass per request, no batching, no cache: the reference."""
    out = []
    for ctx, cont in requests:
        c, k = encode_pair(tokenizer, ctx, cont)
        ids = torch.tensor([c + k])[:, :-1]
        with torch.no_grad():
            logp = F.log_softmax(model(input_ids=ids).logits[0].float(), -1)[-len(k) :]
        tgt = torch.tensor(k)
        out.append((float(logp.gather(1, tgt[:, None]).sum()), bool((logp.argmax(-1) == tgt).all())))
    return out


REQS = [
    ("대한민국의 수도는", " 서울"),
    ("대한민국의 수도는", " 부산광역시"),
    ("대한민국의 수도는 ", "서울"),  # trailing space moves to the continuation
    ("Question: 2+2?\nAnswer:", " 4"),
    ("Question: 2+2?\nAnswer:", " four"),
    ("정답:", " A"),
    ("", "hello"),
    ("짧은 문맥", " 아주 긴 연속 문장입니다. 여러 토큰이 필요합니다."),
]


def test_encode_pair_moves_trailing_space(tiny):
    _, tok = tiny
    a = encode_pair(tok, "질문 ", "예")
    b = encode_pair(tok, "질문", " 예")
    assert a == b
    assert tok.decode(a[1]) == " 예"


def test_encode_pair_empty_context_uses_bos(tiny):
    _, tok = tiny
    ctx, cont = encode_pair(tok, "", "ab")
    assert ctx == [tok.bos_token_id]
    assert tok.decode(cont) == "ab"


def test_encode_pair_splits_whole_encoding():
    # a BPE that merges across the boundary: like lm-eval, the continuation is the tail of the whole
    # encoding after len(encode(context)) tokens, and the context keeps its standalone encoding
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"a": 0, "b": 1, "ab": 2, "<s>": 3}
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.BPE(vocab=vocab, merges=[("a", "b")])), bos_token="<s>"
    )
    assert tok.encode("abb") == [2, 1]
    assert encode_pair(tok, "a", "bb") == ([0], [1])
    with pytest.raises(EvalError, match="encodes to no tokens"):  # lm-eval would hit an assert here
        encode_pair(tok, "a", "b")


def test_loglikelihood_matches_naive_reference(tiny):
    model, tok = tiny
    ref = naive_loglikelihood(model, tok, REQS)
    for (a, ga), (b, gb) in zip(loglikelihood_reference(model, tok, REQS), ref, strict=True):
        assert a == pytest.approx(b, abs=1e-5) and ga == gb
    for bs in (None, 1, 3):
        got = loglikelihood(model, tok, REQS, batch_size=bs, progress=False)
        assert len(got) == len(REQS)
        for (lg, gg), (lr, gr) in zip(got, ref, strict=True):
            assert lg == pytest.approx(lr, abs=1e-4)
            assert gg == gr


def test_packed_options_do_not_see_each_other(tiny):
    """An option's score is the same alone, among siblings of other lengths, and with eager attention."""
    model, tok = tiny
    ctx = "질문: 하늘은 무슨 색인가?\n정답:"
    opts = [" 파란색", " 아주 아주 길고 긴 빨간색 대답", " x", " 초록"]
    together = loglikelihood(model, tok, [(ctx, o) for o in opts], progress=False)
    for o, (lp, g) in zip(opts, together, strict=True):
        alone = loglikelihood(model, tok, [(ctx, o)], progress=False)[0]
        assert lp == pytest.approx(alone[0], abs=1e-5) and g == alone[1]
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    again = loglikelihood(eager, tok, [(ctx, o) for o in opts] + REQS, batch_size=2, progress=False)
    for (a, ga), (b, gb) in zip(again[: len(opts)], together, strict=True):
        assert a == pytest.approx(b, abs=1e-4) and ga == gb


def test_batches_too_large_for_the_logit_budget_are_split(tiny, monkeypatch):
    import labkit.likelihood as lk  # the scorer evals.lm.loglikelihood shares with labkit.moe

    model, tok = tiny
    whole = loglikelihood(model, tok, REQS, batch_size=3, progress=False)
    calls = []
    score = lk._score_batch
    monkeypatch.setattr(lk, "_score_batch", lambda m, b, p: calls.append(len(b)) or score(m, b, p))
    monkeypatch.setattr(lk, "LOGIT_BUDGET_BYTES", 1)  # every batch splits down to single groups
    split = loglikelihood(model, tok, REQS, batch_size=3, progress=False)
    assert max(calls) == 3 and calls.count(1) > 2  # batches of 3 were split into single groups
    for (a, ga), (b, gb) in zip(split, whole, strict=True):
        assert a == pytest.approx(b, abs=1e-5) and ga == gb


def test_loglikelihood_greedy_flag_is_true_for_greedy_continuation(tiny):
    model, tok = tiny
    ctx = "안녕"
    ids = tok_encode(tok, ctx)
    with torch.no_grad():
        nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
    cont = tok.decode([nxt])
    (ll, greedy), (ll2, greedy2) = loglikelihood(model, tok, [(ctx, cont), (ctx, cont + "x")], progress=False)
    ids2 = encode_pair(tok, ctx, cont)[1]
    if ids2 == [nxt]:  # decode/encode round trip kept the token
        assert greedy


def test_nfc_and_nfd_differ_without_normalisation(tiny):
    # loglikelihood itself is byte-exact like lm-eval; the loaders normalise (see test_evals_tasks)
    model, tok = tiny
    nfd = unicodedata.normalize("NFD", "서울")
    a, b = loglikelihood(model, tok, [("수도:", " 서울"), ("수도:", " " + nfd)], progress=False)
    assert len(encode_pair(tok, "수도:", " " + nfd)[1]) > len(encode_pair(tok, "수도:", " 서울")[1])
    assert a[0] != b[0]


def test_truncation_warns_and_names_requests(tiny):
    model, tok = tiny
    long_ctx = "가" * 40  # 120 byte tokens
    with pytest.warns(ContextTruncatedWarning, match="truncating"):
        got = loglikelihood(model, tok, [(long_ctx, " 나")], max_length=50, progress=False)
    c, k = encode_pair(tok, long_ctx, " 나")
    ids = torch.tensor([(c + k)[-51:][:-1]])  # lm-eval's rule: keep the last max_length + 1 tokens
    with torch.no_grad():
        logp = F.log_softmax(model(input_ids=ids).logits[0], -1)[-len(k) :]
    ref = float(logp.gather(1, torch.tensor(k)[:, None]).sum())
    assert got[0][0] == pytest.approx(ref, abs=1e-4)


def test_continuation_longer_than_window_raises(tiny):
    model, tok = tiny
    with pytest.raises(ContextTooLongError, match="exceeds the model window"):
        loglikelihood(model, tok, [("a", "b" * 100)], max_length=50, progress=False)


def test_bad_requests_raise(tiny):
    model, tok = tiny
    with pytest.raises(EvalError, match="encodes to no tokens"):
        loglikelihood(model, tok, [("ctx", "")], progress=False)
    with pytest.raises(EvalError, match="batch_size"):
        loglikelihood(model, tok, REQS, batch_size=0, progress=False)
    with pytest.raises(EvalError, match="request must be"):
        loglikelihood(model, tok, [("ctx", None)], progress=False)


def test_generate_until_greedy_matches_manual_loop_and_stops(tiny):
    model, tok = tiny
    prompt = "질문: 하늘은?"
    ids = tok_encode(tok, prompt)
    manual = []
    with torch.no_grad():
        for _ in range(12):
            nxt = int(model(input_ids=torch.tensor([ids + manual])).logits[0, -1].argmax())
            manual.append(nxt)
    full = tok.decode(manual)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (out,), (out2,) = generate_until(model, tok, [prompt, prompt], max_new_tokens=12, progress=False)
    assert out == full and out2 == full
    stop = full[3:5]
    if stop and full.find(stop) > 0:
        (cut,) = generate_until(model, tok, [prompt], until=[stop], max_new_tokens=12, progress=False)
        assert cut == [full.split(stop, 1)[0]]


def test_generate_sampling_is_seeded(tiny):
    model, tok = tiny
    a = generate_until(
        model, tok, ["x"], max_new_tokens=5, num_samples=3, temperature=1.0, seed=7, progress=False
    )
    b = generate_until(
        model, tok, ["x"], max_new_tokens=5, num_samples=3, temperature=1.0, seed=7, progress=False
    )
    assert a == b and len(a[0]) == 3
    with pytest.raises(EvalError, match="num_samples"):
        generate_until(model, tok, ["x"], num_samples=2)


@pytest.mark.skipif(
    importlib.util.find_spec("lm_eval") is None, reason="lm_eval (benchmark peer) not installed"
)
def test_agrees_with_lm_eval_hflm(tiny):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    model, tok = tiny
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=2)
        ref = lm.loglikelihood(
            [Instance("loglikelihood", {}, r, i) for i, r in enumerate(REQS)], disable_tqdm=True
        )
    got = loglikelihood(model, tok, REQS, progress=False)
    for (lg, gg), (lr, gr) in zip(got, ref, strict=True):
        assert abs(lg - lr) <= 1e-4
        assert gg == gr


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("lm_eval") is None, reason="lm_eval (benchmark peer) not installed"
)
def test_smollm2_agrees_with_lm_eval_fp32():
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from labkit.models import load_causal_lm

    model, tok = load_causal_lm("smollm2-135m", dtype="float32", device="cpu")
    reqs = [("질문: 대한민국의 수도는?\n정답:", c) for c in (" 서울", " 부산", " A")] + [
        ("Question: 2+2?\nAnswer: ", "4"),
        ("", "안녕하세요"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=1)
        ref = lm.loglikelihood(
            [Instance("loglikelihood", {}, r, i) for i, r in enumerate(reqs)], disable_tqdm=True
        )
    got = loglikelihood(model, tok, reqs, progress=False)
    assert max(abs(a[0] - b[0]) for a, b in zip(got, ref, strict=True)) <= 1e-4
    assert [a[1] for a in got] == [b[1] for b in ref]


def test_works_on_part1_moe_model():
    """Part I's converted MoE (a LlamaForCausalLM with MoE MLPs) goes through the packed path."""
    construct = pytest.importorskip("labkit.moe.construct")
    model, tok = tiny_llama("tiny-llama", seed=4)
    moe = construct.moefy(model, num_experts=4)
    construct.set_policy(moe, "top2")
    ref = naive_loglikelihood(moe, tok, REQS)
    got = loglikelihood(moe, tok, REQS, progress=False)
    for (lg, gg), (lr, gr) in zip(got, ref, strict=True):
        assert lg == pytest.approx(lr, abs=1e-4) and gg == gr


def test_attention_without_4d_masks_is_refused(tiny):
    from types import SimpleNamespace

    _, tok = tiny
    fake = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2"))
    with pytest.raises(EvalError, match="flash_attention_2.*sdpa"):
        loglikelihood(fake, tok, REQS, progress=False)
