"""lm-eval interop: labkit as an lm-eval ``TemplateLM`` and results in lm-eval's ``results.json`` layout.

The adapter tests need lm_eval 0.4.13 (a benchmark peer, not a dependency) and are skipped without it;
the layout and the pooled SE are checked against lm-eval's own functions when it is installed.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from labkit.evals import EvalError, PromptConfig, loglikelihood, run_task
from labkit.evals.lm import generate_until
from labkit.evals.lmeval import lm_eval_model, pooled_sample_stderr, to_lm_eval_results
from labkit.models import tiny_llama

FIX = Path(__file__).parent / "fixtures" / "evals"
HAVE_LM_EVAL = importlib.util.find_spec("lm_eval") is not None
needs_lm_eval = pytest.mark.skipif(not HAVE_LM_EVAL, reason="lm_eval (benchmark peer) not installed")
REQS = [
    ("질문: 대한민국의 수도는?\n정답:", " 서울"),
    ("질문: 대한민국의 수도는?\n정답:", " 부산"),
    ("Question: 2+2?\nAnswer: ", "4"),
    ("", "hello"),
]


@pytest.fixture(scope="module")
def tiny():
    return tiny_llama("tiny-llama", seed=3)


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory):
    m, t = tiny
    root = tmp_path_factory.mktemp("lmeval")
    kw = dict(model_id="tiny", cache=root, progress=False)
    return {
        "kobest_boolq": run_task(m, t, "kobest_boolq", path=FIX / "kobest_boolq.jsonl", **kw),
        "kobest_copa": run_task(m, t, "kobest_copa", path=FIX / "kobest_copa.jsonl", **kw),
        "koen_parallel": run_task(
            m, t, "koen_parallel", path=FIX / "koen_items.jsonl", prompt=PromptConfig(style="cloze"), **kw
        ),
    }


def test_results_layout(runs):
    out = to_lm_eval_results(runs, groups=["kobest"], metrics=["acc"])
    assert set(out) >= {"results", "groups", "group_subtasks", "configs", "n-shot", "n-samples", "versions"}
    r = out["results"]["koen_parallel"]
    x = runs["koen_parallel"].correct("acc")
    assert r["acc,none"] == pytest.approx(x.mean())
    assert r["acc_stderr,none"] == pytest.approx(x.std(ddof=1) / np.sqrt(x.size))
    assert r["acc_clustered_stderr,none"] == runs["koen_parallel"].estimate("acc", clustered=True).se
    g = out["groups"]["kobest"]
    sizes = [len(runs[t].records) for t in ("kobest_boolq", "kobest_copa")]
    vals = [out["results"][t]["acc,none"] for t in ("kobest_boolq", "kobest_copa")]
    assert g["acc,none"] == pytest.approx(np.dot(vals, sizes) / sum(sizes))  # micro, as lm-eval's kobest
    assert out["group_subtasks"]["kobest"] == ["kobest_boolq", "kobest_copa"]
    assert out["n-shot"]["kobest_copa"] == 0 and out["n-samples"]["koen_parallel"]["effective"] == 13
    json.dumps(out)  # serialisable as results.json
    with pytest.raises(EvalError, match="none of its members"):
        to_lm_eval_results(runs, groups=["kmmlu"])
    with pytest.raises(EvalError, match="at least one result"):
        to_lm_eval_results({})


def test_pooled_stderr_formula():
    se, n = [0.1, 0.2, 0.05], [10, 20, 40]
    var = sum((k - 1) * s * s * k for s, k in zip(se, n, strict=True)) / (sum(n) - 3)
    assert pooled_sample_stderr(se, n) == pytest.approx(np.sqrt(var / sum(n)))
    with pytest.raises(EvalError):
        pooled_sample_stderr([0.1], [1])


@needs_lm_eval
def test_layout_reads_with_lm_eval_and_pooled_se_matches(runs):
    from lm_eval.api.metrics import pooled_sample_stderr as ref
    from lm_eval.utils import make_table

    out = to_lm_eval_results(runs, groups=["kobest"], metrics=["acc"])
    table = make_table(out)
    assert "koen_parallel" in table and "kobest_copa" in table and "clustered" not in table
    assert "kobest" in make_table(out, "groups")
    ses = [out["results"][t]["acc_stderr,none"] for t in ("kobest_boolq", "kobest_copa")]
    sizes = [len(runs[t].records) for t in ("kobest_boolq", "kobest_copa")]
    assert out["groups"]["kobest"]["acc_stderr,none"] == pytest.approx(float(ref(ses, sizes)))


@needs_lm_eval
def test_adapter_is_a_template_lm_and_agrees_with_hflm(tiny):
    from lm_eval.api.instance import Instance
    from lm_eval.api.model import TemplateLM
    from lm_eval.models.huggingface import HFLM

    m, t = tiny
    lm = lm_eval_model(m, t)
    assert isinstance(lm, TemplateLM)
    inst = [Instance("loglikelihood", {}, r, i) for i, r in enumerate(REQS)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = HFLM(pretrained=m, tokenizer=t, batch_size=2).loglikelihood(inst, disable_tqdm=True)
    got = lm.loglikelihood(inst, disable_tqdm=True)
    assert got == loglikelihood(m, t, REQS, progress=False)
    for (a, ga), (b, gb) in zip(got, ref, strict=True):
        assert abs(a - b) <= 1e-4 and ga == gb
    # the token-level entry point lm-eval's TemplateLM.loglikelihood would call
    toks = [((c, x), *lm._encode_pair(c, x)) for c, x in REQS[:3]]
    assert lm._loglikelihood_tokens(toks) == got[:3]
    gen = lm.generate_until(
        [Instance("generate_until", {}, ("Question: 2+2?\nAnswer:", {"until": ["\n"], "max_gen_toks": 5}), 0)]
    )
    assert (
        gen
        == generate_until(m, t, ["Question: 2+2?\nAnswer:"], until=["\n"], max_new_tokens=5, progress=False)[
            0
        ]
    )


def test_adapter_without_lm_eval_is_a_typed_error(monkeypatch, tiny):
    import sys

    from labkit.evals import lmeval

    lmeval._adapter_class.cache_clear()
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    try:
        with pytest.raises(EvalError, match=r"pip install lm_eval==0.4.13"):
            lm_eval_model(*tiny)
    finally:
        lmeval._adapter_class.cache_clear()
