"""Validation sweeps of the regularized-Stokeslet solvers against exact drags (used by the book and tests).

* :func:`sphere_convergence` — surface blobs on a sphere vs ``6πμa`` and ``8πμa³``;
* :func:`spheroid_centerline` — Stokeslet segments on a prolate spheroid's centreline with
  ``ε(s) = c · b(s)`` vs the exact spheroid drag (:func:`~labkit.flagella.body.spheroid_drag`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .body import spheroid_drag
from .diskcache import JsonCache
from .errors import FlagellaError
from .stokeslets import SQRT_E, fibonacci_sphere, filament_resistance_matrix, resistance_matrix

__all__ = ["SphereSweep", "sphere_convergence", "sphere_sizes", "spheroid_centerline"]

_CACHE_VERSION = 1
_CACHE = JsonCache("sphere")


def sphere_sizes(largest: int, count: int = 5, smallest: int = 200) -> np.ndarray:
    """``count`` geometrically spaced blob counts from ``smallest`` to ``largest`` (integers, unique)."""
    if largest < smallest:
        raise FlagellaError(f"largest ({largest}) must be ≥ smallest ({smallest})")
    return np.unique(np.geomspace(smallest, largest, count).round().astype(int))


@dataclass(frozen=True)
class SphereSweep:
    """Relative errors of the blob-sphere drag (signed: + means too much drag)."""

    sizes: np.ndarray
    ratios: tuple[float, ...]
    translation_error: np.ndarray  # (len(ratios), len(sizes))
    rotation_error: np.ndarray
    seconds: np.ndarray


def sphere_convergence(
    sizes: Sequence[int], ratios: Sequence[float] = (0.35,), *, cache: bool = True
) -> SphereSweep:
    """Drag of a unit sphere of ``n`` Fibonacci blobs, ``ε = ratio · h`` (``h = √(4π/n)``), for each size.

    Each ``(n, ratio)`` result is cached on disk (:class:`~labkit.flagella.diskcache.JsonCache`), so a
    rebuilt book reuses it; ``seconds`` is 0 for a cache hit.
    """
    ns = np.asarray(sizes, dtype=int)
    if ns.ndim != 1 or len(ns) == 0 or np.any(ns < 2):
        raise FlagellaError(f"sizes must be a non-empty list of integers ≥ 2, got {ns.tolist()}")
    if any(not (c > 0 and math.isfinite(c)) for c in ratios):
        raise FlagellaError(f"ratios must be positive, got {list(ratios)}")
    te = np.zeros((len(ratios), len(ns)))
    re = np.zeros_like(te)
    secs = np.zeros_like(te)
    for j, n in enumerate(ns):
        pts = None
        h = math.sqrt(4 * math.pi / n)
        for i, c in enumerate(ratios):
            key = [_CACHE_VERSION, int(n), float(c)]
            hit = _CACHE.get(key, required=("errors",)) if cache else None
            if hit is not None:
                te[i, j], re[i, j] = hit["errors"]
                continue
            if pts is None:
                pts = fibonacci_sphere(int(n))
            t0 = time.perf_counter()
            R = resistance_matrix(pts, c * h, 1.0)
            secs[i, j] = time.perf_counter() - t0
            te[i, j] = np.mean(np.diag(R)[:3]) / (6 * math.pi) - 1
            re[i, j] = np.mean(np.diag(R)[3:]) / (8 * math.pi) - 1
            if cache:
                _CACHE.put(key, {"n": int(n), "ratio": float(c), "errors": [te[i, j], re[i, j]]})
    return SphereSweep(ns, tuple(float(c) for c in ratios), te, re, secs)


def spheroid_centerline(
    aspect: float, n_segments: int = 120, eps_factor: float = SQRT_E
) -> tuple[float, float]:
    """``(axial, transverse)`` drag of a centreline of Stokeslet segments over the exact spheroid drag.

    Semi-axes ``1`` and ``1/aspect``; nodes at Chebyshev (cosine) spacing; ``ε = eps_factor · b(s)``.
    """
    if not aspect > 1:
        raise FlagellaError(f"aspect must be > 1, got {aspect!r}")
    a, b = 1.0, 1.0 / aspect
    th = np.linspace(0, math.pi, int(n_segments) + 1)
    z = -a * np.cos(th)
    nodes = np.stack([0 * z, 0 * z, z], axis=1)
    zm = 0.5 * (z[1:] + z[:-1])
    eps = eps_factor * b * np.sqrt(1 - zm**2 / a**2)
    import warnings

    from scipy.linalg import LinAlgWarning

    with warnings.catch_warnings():
        # the first-kind integral equation is mildly ill-conditioned at the tips; the drag is not
        warnings.simplefilter("ignore", LinAlgWarning)
        R = filament_resistance_matrix([nodes], [eps], 1.0)
    zt, _, ztp, _ = spheroid_drag(2 * a, 2 * b, 1.0, transverse=True)
    return float(R[2, 2] / zt), float(R[0, 0] / ztp)
