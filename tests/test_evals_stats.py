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


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (57, 200)])
def test_wilson_ci_equals_the_textbook_formula(k, n):
    z = sps.norm.ppf(0.975)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    assert wilson_ci(k, n) == pytest.approx((centre - half, centre + half), abs=1e-12)
    z90 = sps.norm.ppf(0.95)  # another z: the confidence level scipy is given follows it
    lo90, hi90 = wilson_ci(k, n, z=z90)
    lo, hi = wilson_ci(k, n)
    assert lo <= lo90 <= hi90 <= hi
    with pytest.raises(EvalError):
        wilson_ci(11, 10)


def test_permutation_test_exact_for_small_n_matches_enumeration():
    a = np.array([1.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    b = np.array([0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    obs = abs(a.mean() - b.mean())
    hits = 0
    for mask in range(2**a.size):  # every swap pattern
        swap = np.array([(mask >> i) & 1 for i in range(a.size)], bool)
        xa, ya = np.where(swap, b, a), np.where(swap, a, b)
        hits += abs(xa.mean() - ya.mean()) >= obs - 1e-12
    assert permutation_test(a, b, B=2000) == pytest.approx(hits / 2**a.size)


def test_permutation_test_randomised_matches_a_hand_loop():
    rng = np.random.default_rng(3)
    a = (rng.random(120) < 0.6).astype(float)
    b = (rng.random(120) < 0.45).astype(float)
    obs = abs(a.mean() - b.mean())
    loop = np.random.default_rng(7)
    hits = 0
    for _ in range(4000):
        swap = loop.random(a.size) < 0.5
        hits += abs(np.where(swap, b, a).mean() - np.where(swap, a, b).mean()) >= obs - 1e-12
    by_hand = (hits + 1) / 4001
    assert permutation_test(a, b, B=4000, seed=0) == pytest.approx(by_hand, abs=0.02)
    # a statistic scipy cannot vectorise goes through the same path
    p_med = permutation_test(a, b, B=200, seed=0, statistic=lambda v: float(np.median(v)))
    assert 0 < p_med <= 1


def test_item_bootstrap_matches_a_hand_resampling():
    rng = np.random.default_rng(5)
    x = (rng.random(400) < 0.3).astype(float)
    e = bootstrap(x, B=4000, seed=2)
    loop = np.random.default_rng(11)
    reps = np.array([x[loop.integers(0, x.size, x.size)].mean() for _ in range(4000)])
    assert e.se == pytest.approx(reps.std(ddof=1), rel=0.08)
    assert e.ci == pytest.approx(tuple(np.quantile(reps, [0.025, 0.975])), abs=0.01)
    assert e.value == x.mean() and e.n == 400 and e.n_clusters is None
    custom = bootstrap(x, B=200, seed=2, statistic=lambda v: float(np.mean(v)))
    assert custom.value == pytest.approx(x.mean()) and custom.se > 0
