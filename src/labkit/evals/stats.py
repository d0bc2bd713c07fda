"""Uncertainty for evaluation scores: every number comes with ``n`` and a standard error.

Follows Miller, *Adding Error Bars to Evals* (arXiv:2411.00640):

* analytic (CLT) standard error of a mean, with Bessel's correction (lm-eval's ``mean_stderr``);
* clustered standard error when items share a passage or are translations of one item: Miller's
  eq. 4 (taught in the statistics chapter) or the cluster-robust CR1 estimator with the small-G
  factor ``G/(G−1)`` and ``t`` intervals on ``G−1`` degrees of freedom (what statsmodels'
  ``cov_type="cluster"`` gives; the default); one cluster gives no standard error (NaN);
* linear combinations of several benchmarks' means (category means, Overall) with a cluster-robust
  SE that keeps the covariance of benchmarks sharing clusters (a Korean item and its English twin);
* bootstrap percentile intervals (item resampling by :func:`scipy.stats.bootstrap`, or cluster
  resampling) for non-mean metrics;
* paired comparisons of two models on the same items: paired SE and CI, McNemar's exact test,
  paired bootstrap (Koehn 2004) of the difference and of the ratio of two means, and approximate
  randomisation (:func:`scipy.stats.permutation_test`);
* the Wilson interval of a proportion (:func:`scipy.stats.binomtest`, ``.proportion_ci``);
* power: minimum detectable difference and the items needed to detect one;
* HCX-style aggregation: unweighted category means and an unweighted Overall, with SEs
  ``sqrt(Σ SE_k²)/K`` for disjoint item sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from .errors import EvalError

__all__ = [
    "Estimate",
    "PairedResult",
    "aggregate",
    "bootstrap",
    "clustered_se",
    "combine_means",
    "holm",
    "mcnemar",
    "mde",
    "mean_se",
    "n_required",
    "paired_bootstrap",
    "paired_difference",
    "paired_ratio_bootstrap",
    "permutation_test",
    "power",
    "wilson_ci",
]

Z95 = float(sps.norm.ppf(0.975))


@dataclass(frozen=True)
class Estimate:
    """A score with its uncertainty. ``ci`` is a 95 % interval; ``n`` items, ``n_clusters`` clusters."""

    value: float
    se: float
    ci: tuple[float, float]
    n: int
    n_clusters: int | None = None
    method: str = "analytic"

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:.4f} (SE {self.se:.4f}, n={self.n})"


def _arr(x: Sequence[float] | np.ndarray, name: str = "scores") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise EvalError(f"{name} must be a non-empty 1-D sequence, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise EvalError(f"{name} contains NaN or inf")
    return a


def _clusters(clusters: Sequence | np.ndarray | None, n: int) -> np.ndarray | None:
    if clusters is None:
        return None
    c = np.asarray([str(x) if x is not None else f"__item{i}" for i, x in enumerate(clusters)])
    if c.size != n:
        raise EvalError(f"clusters has {c.size} entries for {n} scores")
    return c


def mean_se(scores: Sequence[float] | np.ndarray) -> Estimate:
    """Mean and CLT standard error ``sd/sqrt(n)`` (Bessel-corrected sd; 0 for n = 1)."""
    s = _arr(scores)
    se = float(s.std(ddof=1) / np.sqrt(s.size)) if s.size > 1 else 0.0
    m = float(s.mean())
    return Estimate(m, se, (m - Z95 * se, m + Z95 * se), int(s.size))


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (better than ±1.96·SE near 0 or 1).

    ``z`` is the normal quantile of the interval (1.96 for 95 %); the interval is scipy's
    ``binomtest(k, n).proportion_ci(method="wilson")`` at confidence ``2Φ(z) − 1``.
    """
    if n <= 0 or not 0 <= k <= n:
        raise EvalError(f"wilson_ci needs 0 <= k <= n and n > 0, got k={k}, n={n}")
    if not z > 0:
        raise EvalError(f"wilson_ci needs z > 0, got {z}")
    level = float(2 * sps.norm.cdf(z) - 1)
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def _ci(m: float, se: float, df: int | None) -> tuple[float, float]:
    """95 % interval ``m ± q·se`` with ``q`` the normal quantile, or Student's t on ``df`` d.o.f."""
    if not np.isfinite(se):
        return (float("nan"), float("nan"))
    q = Z95 if df is None else float(sps.t.ppf(0.975, df))
    return (m - q * se, m + q * se)


def clustered_se(
    scores: Sequence[float] | np.ndarray, clusters: Sequence | np.ndarray, *, correction: str = "CR1"
) -> Estimate:
    """Cluster-robust SE of the mean. ``None`` cluster entries are singletons.

    ``correction="CR1"`` (default): ``SE² = G/(G−1) · Σ_c (Σ_{i∈c} (s_i − s̄))² / n²`` with ``G``
    clusters, the small-G factor of statsmodels' ``cov_type="cluster"``, and a 95 % interval from
    Student's t on ``G − 1`` degrees of freedom. With singleton clusters it equals :func:`mean_se`.

    ``correction="miller"``: Miller (2024) eq. 4,
    ``SE² = SE_CLT² + (1/n²) Σ_c Σ_i Σ_{j≠i} (s_ic − s̄)(s_jc − s̄)``, with a normal interval (the
    formula the statistics chapter teaches).

    With a single cluster the SE cannot be estimated: it is NaN (so is the interval).
    """
    if correction not in ("CR1", "miller"):
        raise EvalError(f"correction={correction!r} must be 'CR1' or 'miller'")
    s = _arr(scores)
    c = _clusters(clusters, s.size)
    if c is None:
        raise EvalError("clustered_se needs clusters (one id per score; None entries are singletons)")
    d = s - s.mean()
    uniq, inv = np.unique(c, return_inverse=True)
    g = int(uniq.size)
    sums = np.bincount(inv, weights=d)
    m = float(s.mean())
    if g < 2:
        return Estimate(
            m, float("nan"), (float("nan"), float("nan")), int(s.size), g, f"clustered-{correction}"
        )
    if correction == "miller":
        sq = np.bincount(inv, weights=d * d)
        cross = float((sums**2 - sq).sum())  # Σ_c Σ_{i≠j} d_i d_j
        var = mean_se(s).se ** 2 + cross / s.size**2
        se = float(np.sqrt(max(var, 0.0)))
        return Estimate(m, se, _ci(m, se, None), int(s.size), g, "clustered-miller")
    se = float(np.sqrt(g / (g - 1) * float((sums**2).sum()))) / s.size
    return Estimate(m, se, _ci(m, se, g - 1), int(s.size), g, "clustered-CR1")


def combine_means(
    cells: Sequence[tuple[Sequence[float] | np.ndarray, Sequence | np.ndarray | None, float]],
) -> Estimate:
    """``θ = Σ_k a_k · mean(s_k)`` over cells ``(scores_k, clusters_k, a_k)`` with a CR1 cluster-robust SE.

    Cluster ids are shared *across* cells: a Korean item and its English twin (same pair id) or two
    questions on one passage are one cluster even when they sit in different benchmarks, so the
    covariance between the cells' means enters the SE. Each item contributes the influence
    ``a_k (s_i − mean_k)/n_k``; ``SE² = G/(G−1) Σ_c (Σ_{i∈c} influence_i)²``, t interval on ``G−1``
    d.o.f. ``None`` clusters are singletons. Returns ``n`` = all items, ``n_clusters`` = distinct
    clusters (the independent units).
    """
    if not cells:
        raise EvalError("combine_means needs at least one cell")
    infl, ids = [], []
    value = 0.0
    for k, (scores, clusters, a) in enumerate(cells):
        x = _arr(scores, f"cell {k} scores")
        cl = (
            [f"__cell{k}_item{i}" for i in range(x.size)]
            if clusters is None
            else [str(v) if v is not None else f"__cell{k}_item{i}" for i, v in enumerate(clusters)]
        )
        if len(cl) != x.size:
            raise EvalError(f"cell {k}: clusters has {len(cl)} entries for {x.size} scores")
        value += float(a) * float(x.mean())
        infl.append(float(a) * (x - x.mean()) / x.size)
        ids += cl
    psi = np.concatenate(infl)
    uniq, inv = np.unique(np.asarray(ids), return_inverse=True)
    g = int(uniq.size)
    if g < 2:
        return Estimate(value, float("nan"), (float("nan"), float("nan")), psi.size, g, "combined-CR1")
    sums = np.bincount(inv, weights=psi)
    se = float(np.sqrt(g / (g - 1) * float((sums**2).sum())))
    return Estimate(value, se, _ci(value, se, g - 1), int(psi.size), g, "combined-CR1")


def _resample_index(rng: np.random.Generator, n: int, c: np.ndarray | None, B: int) -> Iterator[np.ndarray]:
    """``B`` index vectors of a cluster bootstrap (whole clusters drawn with replacement)."""
    if c is None:
        for _ in range(B):
            yield rng.integers(0, n, n)
        return
    uniq, inv = np.unique(c, return_inverse=True)
    members = [np.flatnonzero(inv == k) for k in range(uniq.size)]
    for _ in range(B):
        pick = rng.integers(0, uniq.size, uniq.size)
        yield np.concatenate([members[k] for k in pick])


#: Statistics scipy may call on a whole batch of resamples at once (``axis=-1``).
_VECTORISABLE: tuple[Callable[..., Any], ...] = (np.mean, np.median, np.sum)


def _batch(n: int) -> int:
    """Resamples per vectorised batch, so one batch holds about 2²² numbers whatever ``n`` is."""
    return max(1, (1 << 22) // max(n, 1))


def _one_sample(statistic: Callable[[np.ndarray], float]) -> tuple[Callable[..., Any], bool]:
    """``statistic`` in the form scipy's resampling functions call it, and whether it is vectorised."""
    stat: Any = statistic  # the vectorisable ones take ``axis``
    if statistic in _VECTORISABLE:
        return (lambda x, axis=-1: stat(x, axis=axis)), True
    return (lambda x: stat(x)), False


def _two_sample(
    statistic: Callable[[np.ndarray], float], absolute: bool = False
) -> tuple[Callable[..., Any], bool]:
    """``statistic(x) − statistic(y)`` (or its absolute value) for scipy, and whether it is vectorised."""
    stat: Any = statistic  # the vectorisable ones take ``axis``
    post: Callable[[Any], Any] = np.abs if absolute else (lambda v: v)
    if statistic in _VECTORISABLE:
        return (lambda x, y, axis=-1: post(stat(x, axis=axis) - stat(y, axis=axis))), True
    return (lambda x, y: post(stat(x) - stat(y))), False


def bootstrap(
    scores: Sequence[float] | np.ndarray,
    *,
    B: int = 2000,
    seed: int = 0,
    clusters: Sequence | np.ndarray | None = None,
    statistic: Callable[[np.ndarray], float] = np.mean,
) -> Estimate:
    """Percentile bootstrap CI and bootstrap SE (std of replicates) of ``statistic``.

    Items are resampled by :func:`scipy.stats.bootstrap` (``method="percentile"``). With
    ``clusters`` whole clusters are resampled (cluster bootstrap, which scipy does not offer).
    """
    s = _arr(scores)
    if B < 10:
        raise EvalError(f"B={B} bootstrap resamples is too few (>= 10)")
    c = _clusters(clusters, s.size)
    rng = np.random.default_rng(seed)
    if c is None:
        fn, vec = _one_sample(statistic)
        res = sps.bootstrap(
            (s,),
            fn,
            n_resamples=B,
            vectorized=vec,
            batch=_batch(s.size),
            method="percentile",
            rng=rng,
        )
        se = float(res.standard_error)
        ci = (float(res.confidence_interval.low), float(res.confidence_interval.high))
        return Estimate(float(statistic(s)), se, ci, int(s.size), None, f"bootstrap(B={B})")
    reps = np.array([statistic(s[idx]) for idx in _resample_index(rng, s.size, c, B)])
    lo, hi = np.quantile(reps, [0.025, 0.975])
    return Estimate(
        float(statistic(s)),
        float(reps.std(ddof=1)),
        (float(lo), float(hi)),
        int(s.size),
        int(np.unique(c).size),
        f"bootstrap(B={B})",
    )


@dataclass(frozen=True)
class PairedResult:
    """Model A minus model B on the same items."""

    diff: float
    se: float
    ci: tuple[float, float]
    n: int
    corr: float
    p_value: float
    method: str

    def as_dict(self) -> dict:
        return asdict(self)


def _pair(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _arr(a, "a"), _arr(b, "b")
    if x.size != y.size:
        raise EvalError(f"paired scores need equal lengths, got {x.size} and {y.size}")
    return x, y


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    clusters: Sequence | np.ndarray | None = None,
) -> PairedResult:
    """Paired difference ``mean(a − b)`` with a two-sided p-value and the item-level correlation.

    Without ``clusters``: SE ``sd(a−b)/sqrt(n)`` and Student's t on ``n − 1`` d.o.f. (the paired
    t-test, :func:`scipy.stats.ttest_rel`). With ``clusters``: the CR1 cluster-robust SE of the mean
    difference and t on ``G − 1`` d.o.f. (statsmodels' OLS of ``a − b`` on a constant with
    ``cov_type="cluster"``, ``use_t=True``). A zero SE gives p = 1 for a zero difference, else 0.
    """
    x, y = _pair(a, b)
    d = x - y
    if clusters is not None:
        est = clustered_se(d, clusters)
        df = (est.n_clusters or 1) - 1
    else:
        est = mean_se(d)
        df = est.n - 1
        est = Estimate(est.value, est.se, _ci(est.value, est.se, df if df > 0 else None), est.n)
    corr = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else float("nan")
    if not np.isfinite(est.se) or df < 1:
        p = float("nan")
    elif est.se > 0:
        p = float(2 * sps.t.sf(abs(est.value) / est.se, df))
    else:
        p = 1.0 if est.value == 0 else 0.0
    return PairedResult(est.value, est.se, est.ci, est.n, corr, p, "paired-" + est.method)


def mcnemar(a_correct: Sequence[bool] | np.ndarray, b_correct: Sequence[bool] | np.ndarray) -> dict:
    """McNemar's test on paired correctness.

    Returns ``b`` (A right, B wrong), ``c`` (A wrong, B right), the exact two-sided p-value
    ``min(1, 2·BinomCDF(min(b, c); b + c, ½))``, and the continuity-corrected chi-square and its p.
    """
    x, y = _pair(np.asarray(a_correct, float), np.asarray(b_correct, float))
    if not set(np.unique(np.concatenate([x, y]))) <= {0.0, 1.0}:
        raise EvalError("mcnemar needs 0/1 (bool) correctness vectors")
    b = int(((x == 1) & (y == 0)).sum())
    c = int(((x == 0) & (y == 1)).sum())
    m = b + c
    p_exact = 1.0 if m == 0 else float(min(1.0, 2 * sps.binom.cdf(min(b, c), m, 0.5)))
    chi2 = 0.0 if m == 0 else (abs(b - c) - 1) ** 2 / m
    p_chi2 = 1.0 if m == 0 else float(sps.chi2.sf(chi2, 1))
    return dict(b=b, c=c, n=int(x.size), p_exact=p_exact, chi2=float(chi2), p_chi2=p_chi2)


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    B: int = 2000,
    seed: int = 0,
    clusters: Sequence | np.ndarray | None = None,
    statistic: Callable[[np.ndarray], float] = np.mean,
) -> PairedResult:
    """Paired bootstrap (Koehn 2004): resample items (or clusters) once for both models.

    The p-value is two-sided: ``2·min(P(Δ* ≤ 0), P(Δ* ≥ 0))``, capped at 1.
    """
    x, y = _pair(a, b)
    c = _clusters(clusters, x.size)
    rng = np.random.default_rng(seed)
    reps = np.array([statistic(x[i]) - statistic(y[i]) for i in _resample_index(rng, x.size, c, B)])
    lo, hi = np.quantile(reps, [0.025, 0.975])
    p = float(min(1.0, 2 * min((reps <= 0).mean(), (reps >= 0).mean())))
    corr = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else float("nan")
    return PairedResult(
        float(statistic(x) - statistic(y)),
        float(reps.std(ddof=1)),
        (float(lo), float(hi)),
        int(x.size),
        corr,
        p,
        f"paired-bootstrap(B={B})",
    )


def _quantiles_with_inf(reps: np.ndarray, qs: Sequence[float]) -> list[float]:
    """:func:`numpy.quantile`'s linear interpolation on values that may hold ``+inf``: an
    interpolation that reaches an infinite value is ``+inf`` (numpy gives NaN there)."""
    r = np.sort(reps)
    out = []
    for q in qs:
        pos = q * (r.size - 1)
        lo, hi = int(np.floor(pos)), int(np.ceil(pos))
        if np.isinf(r[lo]) or (hi > lo and np.isinf(r[hi])):
            out.append(float("inf"))
        else:
            out.append(float(r[lo] + (r[hi] - r[lo]) * (pos - lo)))
    return out


def paired_ratio_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    B: int = 2000,
    seed: int = 0,
    clusters: Sequence | np.ndarray | None = None,
) -> Estimate:
    """Ratio of means ``mean(a)/mean(b)`` with a paired percentile-bootstrap 95 % interval.

    Items (or whole clusters) are resampled once for both systems, with the resamples
    :func:`paired_bootstrap` draws for the same ``seed`` and ``clusters``, so the two intervals
    describe the same replicates. The ratio is NaN when ``mean(b)`` is 0. A resample with
    ``mean(b*) = 0`` gives ``+inf`` when ``mean(a*) > 0`` and is left out when both are 0 (the
    ratio is then undefined); the interval is NaN when no resample is left. ``se`` is the standard
    deviation of the finite replicates. Use it for "system A keeps x % of system B's accuracy".
    """
    x, y = _pair(a, b)
    if B < 10:
        raise EvalError(f"B={B} bootstrap resamples is too few (>= 10)")
    c = _clusters(clusters, x.size)
    rng = np.random.default_rng(seed)
    num, den = [], []
    for i in _resample_index(rng, x.size, c, B):
        num.append(x[i].mean())
        den.append(y[i].mean())
    top, bottom = np.asarray(num), np.asarray(den)
    keep = (bottom != 0) | (top != 0)  # 0/0: no ratio
    top, bottom = top[keep], bottom[keep]
    reps = np.full(top.size, np.inf)  # a/0 with a > 0
    np.divide(top, bottom, out=reps, where=bottom != 0)
    value = float(x.mean() / y.mean()) if y.mean() != 0 else float("nan")
    n_clusters = int(np.unique(c).size) if c is not None else None
    method = f"paired-ratio-bootstrap(B={B})"
    if reps.size == 0:
        return Estimate(value, float("nan"), (float("nan"), float("nan")), int(x.size), n_clusters, method)
    lo, hi = _quantiles_with_inf(reps, (0.025, 0.975))
    finite = reps[np.isfinite(reps)]
    se = float(finite.std(ddof=1)) if finite.size > 1 else float("nan")
    return Estimate(value, se, (float(lo), float(hi)), int(x.size), n_clusters, method)


def permutation_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    B: int = 2000,
    seed: int = 0,
    statistic: Callable[[np.ndarray], float] = np.mean,
) -> float:
    """Approximate randomisation: swap A/B per item at random; two-sided p with the +1 correction.

    :func:`scipy.stats.permutation_test` with ``permutation_type="samples"`` (the pairs are kept,
    A and B swapped within each) on ``|statistic(a) − statistic(b)|``: the p-value is
    ``(#{resamples at least as extreme} + 1)/(B + 1)``. When ``2**n ≤ B`` every swap pattern is
    enumerated instead and the p-value is exact.
    """
    x, y = _pair(a, b)
    fn, vec = _two_sample(statistic, absolute=True)
    res = sps.permutation_test(
        (x, y),
        fn,
        permutation_type="samples",
        vectorized=vec,
        n_resamples=B,
        batch=_batch(x.size),
        alternative="greater",
        rng=np.random.default_rng(seed),
    )
    return float(res.pvalue)


def _z(alpha: float, power_: float) -> float:
    if not (0 < alpha < 1 and 0 < power_ < 1):
        raise EvalError(f"alpha and power must lie in (0, 1), got {alpha}, {power_}")
    return float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power_))


def mde(n: int, omega2: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable difference of a paired comparison: ``(z_{α/2}+z_β)·sqrt(ω²/n)``.

    ``ω²`` is the variance of the per-item difference; for deterministic 0/1 scoring it is about the
    discordance rate (fraction of items the two models disagree on).
    """
    if n <= 0 or omega2 < 0:
        raise EvalError(f"mde needs n > 0 and omega2 >= 0, got n={n}, omega2={omega2}")
    return _z(alpha, power) * float(np.sqrt(omega2 / n))


def n_required(delta: float, omega2: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Items needed to detect a paired difference ``delta``: ``(z_{α/2}+z_β)²·ω²/δ²`` (Miller §5)."""
    if delta <= 0:
        raise EvalError(f"delta must be > 0, got {delta}")
    return int(np.ceil(_z(alpha, power) ** 2 * omega2 / delta**2))


def power(delta: float, n: int, omega2: float, *, alpha: float = 0.05) -> float:
    """Power of the two-sided paired z-test to detect ``delta`` with ``n`` items."""
    if n <= 0 or omega2 <= 0:
        raise EvalError(f"power needs n > 0 and omega2 > 0, got n={n}, omega2={omega2}")
    z = abs(delta) / np.sqrt(omega2 / n)
    za = sps.norm.ppf(1 - alpha / 2)
    return float(sps.norm.cdf(z - za) + sps.norm.cdf(-z - za))


def aggregate(scores: Mapping[str, Estimate], categories: Mapping[str, str]) -> dict:
    """HCX aggregation: each category = unweighted mean of its benchmarks; Overall = unweighted mean of
    the categories. SEs assume disjoint item sets: ``SE(mean of K) = sqrt(Σ SE_k²)/K``.

    Returns ``{"categories": {cat: Estimate}, "overall": Estimate}``.
    """
    missing = [k for k in categories if k not in scores]
    if missing:
        raise EvalError(f"no score for benchmark(s) {missing}")
    cats: dict[str, list[Estimate]] = {}
    for bench, cat in categories.items():
        cats.setdefault(cat, []).append(scores[bench])

    def _mean(ests: list[Estimate], method: str) -> Estimate:
        k = len(ests)
        m = float(np.mean([e.value for e in ests]))
        se = float(np.sqrt(sum(e.se**2 for e in ests)) / k)
        return Estimate(m, se, (m - Z95 * se, m + Z95 * se), sum(e.n for e in ests), None, method)

    cat_est = {c: _mean(v, "category-mean") for c, v in cats.items()}
    return {"categories": cat_est, "overall": _mean(list(cat_est.values()), "overall-mean")}


def holm(p_values: Sequence[float] | np.ndarray) -> list[float]:
    """Holm–Bonferroni adjusted p-values (family-wise error control), in input order."""
    p = _arr(p_values, "p_values")
    order = np.argsort(p)
    m = p.size
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        adj[i] = min(1.0, running)
    return adj.tolist()
