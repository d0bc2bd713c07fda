"""labkit.evals.stats against hand computations and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from labkit.evals import EvalError
from labkit.evals.stats import (
    Estimate,
    aggregate,
    bootstrap,
    clustered_se,
    holm,
    mcnemar,
    mde,
    mean_se,
    n_required,
    paired_bootstrap,
    paired_difference,
    permutation_test,
    power,
    wilson_ci,
)

X = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1]


def test_mean_se_formula():
    e = mean_se(X)
    assert e.value == 0.7 and e.n == 10
    assert e.se == pytest.approx(np.std(X, ddof=1) / np.sqrt(10))
    assert e.ci[0] < e.value < e.ci[1]


def test_clustered_equals_analytic_for_singletons_and_hand_value():
    assert clustered_se(X, list(range(10))).se == pytest.approx(mean_se(X).se)
    s = np.array([1.0, 1.0, 0.0, 0.0])
    e = clustered_se(s, ["a", "a", "b", "b"], correction="miller")
    d = s - s.mean()
    by_hand = np.sqrt(np.var(s, ddof=1) / 4 + (2 * d[0] * d[1] + 2 * d[2] * d[3]) / 16)
    assert e.se == pytest.approx(by_hand) and e.n_clusters == 2
    assert e.se > mean_se(s).se  # positively correlated clusters inflate the SE


def test_bootstrap_deterministic_and_contains_mean():
    a = bootstrap(X, B=500, seed=1)
    b = bootstrap(X, B=500, seed=1)
    assert a == b and a.ci[0] <= 0.7 <= a.ci[1]
    assert a.se == pytest.approx(mean_se(X).se, rel=0.3)
    c = bootstrap(X, B=500, seed=1, clusters=[i // 2 for i in range(10)])
    assert c.n_clusters == 5


def test_mcnemar_matches_scipy_binomtest():
    rng = np.random.default_rng(0)
    a = rng.random(200) < 0.6
    b = rng.random(200) < 0.5
    r = mcnemar(a, b)
    bb, cc = int((a & ~b).sum()), int((~a & b).sum())
    assert (r["b"], r["c"]) == (bb, cc)
    assert r["p_exact"] == pytest.approx(sps.binomtest(bb, bb + cc, 0.5).pvalue)
    assert mcnemar([1, 0], [1, 0])["p_exact"] == 1.0
    with pytest.raises(EvalError, match="0/1"):
        mcnemar([2, 0], [1, 0])


def test_paired_methods_agree_roughly():
    rng = np.random.default_rng(1)
    skill = rng.random(300)
    a = (rng.random(300) < 0.3 + 0.5 * skill).astype(float)
    b = (rng.random(300) < 0.2 + 0.5 * skill).astype(float)
    pd = paired_difference(a, b)
    pb = paired_bootstrap(a, b, B=2000, seed=0)
    assert pd.diff == pytest.approx(a.mean() - b.mean()) == pytest.approx(pb.diff)
    assert pb.se == pytest.approx(pd.se, rel=0.15)
    assert pd.ci[0] < pd.diff < pd.ci[1]
    p_perm = permutation_test(a, b, B=2000, seed=0)
    assert abs(p_perm - mcnemar(a, b)["p_exact"]) < 0.05
    unpaired = np.sqrt(mean_se(a).se ** 2 + mean_se(b).se ** 2)
    assert pd.se < unpaired  # positive correlation: pairing helps
    with pytest.raises(EvalError, match="equal lengths"):
        paired_difference([1, 0], [1])


def test_power_and_mde_are_consistent():
    # Miller's worked example: δ = 3 pp, ω² = 1/9, 80 % power → about 969 questions
    assert n_required(0.03, 1 / 9) == pytest.approx(969, abs=3)
    n = 1000
    d = mde(n, 0.3)
    assert power(d, n, 0.3) == pytest.approx(0.8, abs=0.01)
    assert mde(35030, 0.3) * 100 == pytest.approx(0.82, abs=0.02)  # KMMLU row of the notes
    with pytest.raises(EvalError):
        mde(0, 0.3)


def test_aggregate_hcx_style():
    e = {k: Estimate(v, 0.02, (v, v), 100) for k, v in {"a": 0.5, "b": 0.7, "c": 0.9}.items()}
    out = aggregate(e, {"a": "Kor.", "b": "Kor.", "c": "Eng."})
    assert out["categories"]["Kor."].value == pytest.approx(0.6)
    assert out["categories"]["Kor."].se == pytest.approx(np.sqrt(2 * 0.02**2) / 2)
    assert out["overall"].value == pytest.approx(0.75)  # mean of categories, not of benchmarks
    with pytest.raises(EvalError, match="no score"):
        aggregate(e, {"zz": "Kor."})


def test_wilson_and_holm():
    lo, hi = wilson_ci(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.2 < hi < 0.35
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
