"""A simulated population "experiment": many cells with a length distribution and N(L) flagella.

Cell lengths are log-normal; the flagellar count follows a linear law ``N ≈ slope·L + intercept``
(L in µm; the PNAS paper's SI movie captions reportedly give ``N = L + 2`` — a third-party note, not
verified) with Gaussian counting noise, rounded and floored at 1. Every cell is then solved with
:func:`~labkit.flagella.swim.swim` in one vectorised call, optionally with cell-to-cell motor variability
and additive tracking noise on the measured speed. :func:`binned_mean` and :func:`fit_slope` turn the
cloud into the binned U(L) curve and a slope with its confidence interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import FlagellaError, check_finite_array, check_positive
from .params import SwimmerParams
from .swim import SwimResult, swim

__all__ = [
    "Population",
    "SlopeFit",
    "binned_mean",
    "fit_slope",
    "flagella_number",
    "population_experiment",
    "sample_lengths",
]


def sample_lengths(
    n_cells: int,
    *,
    median: float = 2.8e-6,
    sigma_log: float = 0.3,
    min_length: float = 1.2e-6,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """``n_cells`` log-normal body lengths (m) with the given median (m) and log-s.d., truncated below
    at ``min_length`` (m; rejection sampling) so that every body stays longer than it is wide."""
    if int(n_cells) != n_cells or n_cells < 1:
        raise FlagellaError(f"n_cells must be a positive integer, got {n_cells!r}")
    median = check_positive("median", median)
    sigma_log = check_positive("sigma_log", sigma_log, allow_zero=True)
    min_length = check_positive("min_length", min_length)
    if min_length >= 4 * median:
        raise FlagellaError(f"min_length ({min_length:g} m) is far above the median ({median:g} m)")
    rng = np.random.default_rng(0) if rng is None else rng
    out = np.empty(0)
    while len(out) < n_cells:
        draw = median * np.exp(sigma_log * rng.standard_normal(int(n_cells)))
        out = np.concatenate([out, draw[draw >= min_length]])
    return out[: int(n_cells)]


def flagella_number(
    length,
    *,
    slope: float | np.ndarray = 1.0,
    intercept: float | np.ndarray = 2.0,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Integer flagellar counts ``max(1, round(slope·L_µm + intercept + noise·ξ))``, ``ξ ~ N(0, 1)``.

    ``length`` in m; ``slope`` in flagella per µm.
    """
    L = check_finite_array("length", length, positive=True)
    a = check_finite_array("slope", np.asarray(slope, dtype=float))
    b = check_finite_array("intercept", np.asarray(intercept, dtype=float))
    noise = check_positive("noise", noise, allow_zero=True)
    mean = a * L * 1e6 + b
    if noise:
        rng = np.random.default_rng(0) if rng is None else rng
        mean = mean + noise * rng.standard_normal(L.shape)
    return np.maximum(1, np.rint(mean)).astype(np.int64)


@dataclass(frozen=True)
class Population:
    """Result of :func:`population_experiment`: true operating points and measured speeds (m/s)."""

    lengths: np.ndarray
    n_flagella: np.ndarray
    result: SwimResult
    measured_speed: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)


def population_experiment(
    params: SwimmerParams,
    n_cells: int,
    *,
    bundle="thick",
    seed: int = 0,
    median_length: float = 2.8e-6,
    sigma_log: float = 0.3,
    slope: float = 1.0,
    intercept: float = 2.0,
    count_noise: float = 0.7,
    motor_variability: float = 0.1,
    tracking_noise: float = 2e-6,
    uniflagellar: bool = False,
    **swim_kwargs,
) -> Population:
    """Simulate ``n_cells`` cells (one vectorised solve) and their measured speeds.

    Parameters
    ----------
    motor_variability:
        Log-normal s.d. of a per-cell proton-motive-force factor (cell-to-cell variability): the cell's
        whole motor curve is scaled, so its speed scales by the same factor (see ``swim``'s
        ``motor_scale``).
    tracking_noise:
        S.d. (m/s) of additive Gaussian noise on each measured speed.
    uniflagellar:
        Give every cell one flagellum instead of ``N(L)``.
    """
    for name, value in (
        ("count_noise", count_noise),
        ("motor_variability", motor_variability),
        ("tracking_noise", tracking_noise),
    ):
        check_positive(name, value, allow_zero=True)
    rng = np.random.default_rng(seed)
    L = sample_lengths(n_cells, median=median_length, sigma_log=sigma_log, rng=rng)
    if uniflagellar:
        N = np.ones(L.shape, dtype=np.int64)
    else:
        N = flagella_number(L, slope=slope, intercept=intercept, noise=count_noise, rng=rng)
    scale = np.exp(motor_variability * rng.standard_normal(L.shape)) if motor_variability else 1.0
    res = swim(params, n_flagella=N, body_length=L, bundle=bundle, motor_scale=scale, **swim_kwargs)
    measured = res.speed + (tracking_noise * rng.standard_normal(L.shape) if tracking_noise else 0.0)
    return Population(L, N, res, measured)


def binned_mean(x, y, bins) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean of ``y`` in bins of ``x``: ``(centres, mean, standard error, count)``; empty bins are NaN.

    Computed with :func:`scipy.stats.binned_statistic` (bins are half-open ``[a, b)``, the last one
    closed; points outside the edges are left out). The standard error is ``s/√n`` with the
    Bessel-corrected standard deviation ``s`` of the bin (NaN for a bin of one point).
    """
    from scipy.stats import binned_statistic

    x = check_finite_array("x", x).ravel()
    y = check_finite_array("y", y).ravel()
    if x.shape != y.shape:
        raise FlagellaError(f"x and y need the same length, got {len(x)} and {len(y)}")
    edges = np.asarray(bins, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise FlagellaError("bins must be an increasing 1-D array of at least 2 edges")
    mean = binned_statistic(x, y, statistic="mean", bins=edges).statistic
    cnt = binned_statistic(x, y, statistic="count", bins=edges).statistic
    sd0 = binned_statistic(x, y, statistic="std", bins=edges).statistic  # ddof = 0
    with np.errstate(invalid="ignore", divide="ignore"):
        sem = np.where(cnt > 1, sd0 / np.sqrt(cnt - 1), np.nan)  # s·√(n/(n−1))/√n
    return 0.5 * (edges[1:] + edges[:-1]), mean, sem, cnt.astype(np.int64)


@dataclass(frozen=True)
class SlopeFit:
    """Ordinary least-squares line ``y = slope·x + intercept`` with a two-sided CI on the slope."""

    slope: float
    intercept: float
    stderr: float
    ci_low: float
    ci_high: float
    confidence: float
    n: int


def fit_slope(x, y, *, confidence: float = 0.95) -> SlopeFit:
    """OLS fit with Student-t confidence interval of the slope (units of ``y`` per unit of ``x``).

    The line and the slope's standard error come from :func:`scipy.stats.linregress`; the interval
    is ``slope ± t·stderr`` with ``t`` Student's quantile on ``n − 2`` degrees of freedom.
    """
    from scipy import stats

    x = check_finite_array("x", x).ravel()
    y = check_finite_array("y", y).ravel()
    if x.shape != y.shape or len(x) < 3:
        raise FlagellaError(f"x and y need the same length ≥ 3, got {len(x)} and {len(y)}")
    if not 0 < confidence < 1:
        raise FlagellaError(f"confidence must be in (0, 1), got {confidence!r}")
    if np.ptp(x) == 0:
        raise FlagellaError("x has no spread; the slope is undefined")
    fit = stats.linregress(x, y)
    n = len(x)
    slope, se = float(fit.slope), float(fit.stderr)
    t = float(stats.t.ppf(0.5 + confidence / 2, n - 2))
    return SlopeFit(slope, float(fit.intercept), se, slope - t * se, slope + t * se, confidence, n)
