"""Cluster-aware inference checked against statsmodels (cluster-robust OLS) and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from labkit.evals import EvalError
from labkit.evals.stats import clustered_se, combine_means, mean_se, paired_difference

sm = pytest.importorskip("statsmodels.api")


def _data(seed=0, g=12, per=(1, 5)):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(per[0], per[1] + 1, g)
    cl = np.repeat(np.arange(g), sizes)
    effect = rng.normal(0, 0.3, g)[cl]
    x = (rng.random(cl.size) < 0.5 + effect.clip(-0.45, 0.45)).astype(float)
    return x, [f"c{c}" for c in cl]


def _sm_mean(y, groups):
    fit = sm.OLS(y, np.ones((len(y), 1))).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    return fit


@pytest.mark.parametrize("seed,g", [(0, 4), (1, 12), (2, 40)])
def test_cr1_matches_statsmodels_cluster_ols(seed, g):
    x, cl = _data(seed, g)
    e = clustered_se(x, cl)
    fit = _sm_mean(x, np.unique(cl, return_inverse=True)[1])
    assert e.se == pytest.approx(float(fit.bse[0]), rel=1e-10)
    lo, hi = fit.conf_int(0.05)[0]
    assert e.ci == pytest.approx((lo, hi), rel=1e-10)  # t on G - 1 d.o.f.
    assert e.n_clusters == g and e.method == "clustered-CR1"


def test_cr1_singletons_equal_clt_and_one_cluster_has_no_se():
    x, _ = _data(3, 30)
    assert clustered_se(x, list(range(x.size))).se == pytest.approx(mean_se(x).se, rel=1e-12)
    one = clustered_se([1.0, 0.0, 1.0, 1.0], ["a"] * 4)
    assert np.isnan(one.se) and np.isnan(one.ci[0]) and one.n_clusters == 1
    assert np.isnan(clustered_se([1.0, 0.0, 1.0], ["a"] * 3, correction="miller").se)
    with pytest.raises(EvalError, match="correction='CR2'"):
        clustered_se([1.0, 0.0], ["a", "b"], correction="CR2")


def test_small_g_correction_widens_with_few_clusters():
    x, cl = _data(5, 4)
    g = 4
    cr0 = np.sqrt(sum(((x - x.mean())[np.array(cl) == c].sum()) ** 2 for c in set(cl))) / x.size
    assert clustered_se(x, cl).se == pytest.approx(cr0 * np.sqrt(g / (g - 1)))


def test_paired_difference_clustered_matches_statsmodels_and_unclustered_matches_ttest_rel():
    rng = np.random.default_rng(7)
    a = (rng.random(60) < 0.6).astype(float)
    b = (rng.random(60) < 0.45).astype(float)
    cl = [f"p{i // 4}" for i in range(60)]
    pd = paired_difference(a, b, cl)
    fit = _sm_mean(a - b, np.arange(60) // 4)
    assert pd.se == pytest.approx(float(fit.bse[0]), rel=1e-10)
    assert pd.p_value == pytest.approx(float(fit.pvalues[0]), rel=1e-8)
    assert pd.ci == pytest.approx(tuple(fit.conf_int(0.05)[0]), rel=1e-10)
    plain = paired_difference(a, b)
    ref = sps.ttest_rel(a, b)
    assert plain.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert plain.ci == pytest.approx(tuple(ref.confidence_interval(0.95)), rel=1e-10)


def test_combine_means_matches_statsmodels_with_shared_clusters():
    # ko and en scores of the same 30 pairs (+ 6 Korean-only items): pairs are clusters across cells
    rng = np.random.default_rng(11)
    know = rng.random(30)
    ko = (rng.random(36) < np.r_[know, rng.random(6)]).astype(float)
    en = (rng.random(30) < know).astype(float)
    cl_ko = [f"pair{i}" for i in range(36)]
    cl_en = [f"pair{i}" for i in range(30)]
    est = combine_means([(ko, cl_ko, 0.5), (en, cl_en, 0.5)])
    # statsmodels: OLS of all scores on the two cell dummies, clusters = pairs
    y = np.r_[ko, en]
    X = np.zeros((66, 2))
    X[:36, 0] = 1
    X[36:, 1] = 1
    groups = np.unique(cl_ko + cl_en, return_inverse=True)[1]
    fit = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": groups})
    w = np.array([0.5, 0.5])
    n, k = 66, 2
    var_sm = float(w @ fit.cov_params() @ w) * (n - k) / (n - 1)  # statsmodels adds (N-1)/(N-K)
    assert est.value == pytest.approx(0.5 * ko.mean() + 0.5 * en.mean())
    assert est.se == pytest.approx(np.sqrt(var_sm), rel=1e-10)
    assert est.n == 66 and est.n_clusters == 36
    # treating the languages as independent benchmarks understates the SE when twins agree
    indep = np.sqrt(clustered_se(ko, cl_ko).se ** 2 + clustered_se(en, cl_en).se ** 2) / 2
    assert est.se > indep


def test_combine_means_bad_input():
    with pytest.raises(EvalError, match="at least one cell"):
        combine_means([])
    with pytest.raises(EvalError, match="cell 0: clusters has 1 entries for 2 scores"):
        combine_means([([1.0, 0.0], ["a"], 1.0)])
