import numpy as np
import pytest
from scipy import stats as sps

from labkit.flagella import (
    FlagellaError,
    binned_mean,
    ecoli,
    fit_slope,
    flagella_number,
    population_experiment,
    sample_lengths,
)


def test_lengths_are_lognormal_and_truncated():
    L = sample_lengths(50_000, median=3e-6, sigma_log=0.3, rng=np.random.default_rng(1))
    assert L.min() >= 1.2e-6
    assert np.median(L) == pytest.approx(3e-6, rel=0.02)


def test_flagella_number_rule():
    assert flagella_number(np.array([1e-6, 2.4e-6, 2.6e-6])).tolist() == [3, 4, 5]
    assert flagella_number(np.array([0.1e-6]), slope=1.0, intercept=-3.0).tolist() == [1]
    noisy = flagella_number(np.full(20_000, 3e-6), noise=1.0, rng=np.random.default_rng(0))
    assert noisy.mean() == pytest.approx(5.0, abs=0.05) and noisy.std() > 0.9


def test_binned_mean_against_loop():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 10, 1000), rng.normal(size=1000)
    edges = np.array([0, 2.5, 5, 10.0])
    c, m, s, n = binned_mean(x, y, edges)
    for k in range(3):
        sel = (x >= edges[k]) & (x < edges[k + 1])
        assert n[k] == sel.sum()
        assert m[k] == pytest.approx(y[sel].mean())
        assert s[k] == pytest.approx(y[sel].std(ddof=1) / np.sqrt(sel.sum()))
    with pytest.raises(FlagellaError, match="bins"):
        binned_mean(x, y, [3.0, 1.0])


def test_fit_slope_recovers_truth_with_ci():
    rng = np.random.default_rng(7)
    x = rng.uniform(1, 6, 5000)
    y = -1.5 * x + 40 + rng.normal(0, 2.0, x.size)
    f = fit_slope(x, y)
    assert f.ci_low < -1.5 < f.ci_high
    assert f.ci_high - f.ci_low < 0.1
    assert f.intercept == pytest.approx(40, abs=0.2)
    with pytest.raises(FlagellaError, match="spread"):
        fit_slope(np.ones(5), np.arange(5.0))


def test_population_experiment_reproduces_the_paper_qualitatively():
    multi = population_experiment(ecoli(), 20_000, seed=1)
    uni = population_experiment(ecoli(), 20_000, seed=1, uniflagellar=True)
    assert len(multi) == 20_000 and multi.n_flagella.min() >= 1
    fm = fit_slope(multi.lengths * 1e6, multi.measured_speed * 1e6)
    fu = fit_slope(uni.lengths * 1e6, uni.measured_speed * 1e6)
    # uniflagellar: clearly slower when longer (> 3 % of its mean speed per µm)
    assert fu.ci_high < -0.03 * uni.measured_speed.mean() * 1e6
    assert abs(fm.slope) < 0.3 * abs(fu.slope)
    with pytest.raises(FlagellaError, match="n_cells"):
        population_experiment(ecoli(), 0)


def test_binned_mean_is_stable_for_a_large_offset():
    # the old one-pass variance Σy² − n·ȳ² lost every digit here; binned_statistic does not
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, 2000)
    y = 1e9 + rng.normal(0, 1e-3, x.size)
    _, m, s, n = binned_mean(x, y, [0.0, 0.5, 1.0])
    for k, sel in enumerate((x < 0.5, x >= 0.5)):
        assert s[k] == pytest.approx(y[sel].std(ddof=1) / np.sqrt(sel.sum()), rel=1e-6)
    _, m1, s1, n1 = binned_mean([0.1, 0.7], [1.0, 2.0], [0.0, 0.5, 1.0, 2.0])
    assert n1.tolist() == [1, 1, 0] and np.isnan(s1).all() and np.isnan(m1[2])


def test_fit_slope_matches_the_normal_equations():
    rng = np.random.default_rng(9)
    x = rng.uniform(0, 5, 50)
    y = 2.0 * x + 1.0 + rng.normal(0, 0.5, x.size)
    f = fit_slope(x, y, confidence=0.9)
    X = np.column_stack([x, np.ones_like(x)])
    coef, rss, *_ = np.linalg.lstsq(X, y, rcond=None)
    se = np.sqrt(rss[0] / (x.size - 2) / np.sum((x - x.mean()) ** 2))
    t = sps.t.ppf(0.95, x.size - 2)
    assert (f.slope, f.intercept, f.stderr) == pytest.approx((coef[0], coef[1], se), rel=1e-10)
    assert (f.ci_low, f.ci_high) == pytest.approx((coef[0] - t * se, coef[0] + t * se), rel=1e-10)
