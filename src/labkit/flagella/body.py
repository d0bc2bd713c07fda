"""Drag of the cell body: exact prolate spheroid (Perrin; Chwang & Wu 1975) and a cylinder fit.

Spheroid (semi-axes ``a ≥ b``, eccentricity ``e = √(1 − b²/a²)``, ``L_e = ln((1+e)/(1−e))``), in
Kim & Karrila's notation::

    X_A = (8/3) e³ / (−2e + (1+e²) L_e)          F_axial      = 6πμ a X_A U
    Y_A = (16/3) e³ / (2e + (3e²−1) L_e)         F_transverse = 6πμ a Y_A U
    X_C = (4/3) e³ (1−e²) / (2e − (1−e²) L_e)    T_axial      = 8πμ a³ X_C Ω
    Y_C = (4/3) e³ (2−e²) / (−2e + (1+e²) L_e)   T_transverse = 8πμ a³ Y_C Ω

All four tend to 1 for a sphere. The denominators cancel to ``O(e³)``; they are evaluated through
``S = (artanh e − e)/e³`` (a series for small ``e``) so the sphere limit is exact, not round-off.

Cylinder (length ``L``, diameter ``d``, ``p = L/d``): Tirado & García de la Torre fits as coded in
``croelmiyn/RFTMultiflagella`` (``getBodyParamsThetaCst.m``).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import FlagellaError, check_finite_array

__all__ = ["cylinder_drag", "spheroid_drag", "spheroid_resistance_functions"]


def _s3(e: np.ndarray) -> np.ndarray:
    """``(artanh(e) − e)/e³``, accurate for all ``0 ≤ e < 1`` (→ 1/3 at e = 0)."""
    e = np.asarray(e, dtype=np.float64)
    small = e < 0.1
    out = np.empty_like(e)
    es = np.where(small, e, 0.0)
    e2 = es * es
    series = np.zeros_like(es)
    for k in range(14, 0, -1):
        series = series * e2 + 1.0 / (2 * k + 1)
    out[small] = series[small]
    eb = np.where(small, 0.5, e)
    out[~small] = ((np.arctanh(eb) - eb) / eb**3)[~small]
    return out


def spheroid_resistance_functions(eccentricity) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X_A, Y_A, X_C, Y_C)`` of a prolate spheroid of eccentricity ``0 ≤ e < 1`` (dimensionless)."""
    e = check_finite_array("eccentricity", eccentricity)
    if np.any((e < 0) | (e >= 1)):
        raise FlagellaError(f"eccentricity must lie in [0, 1), got {e.min()!r}..{e.max()!r}")
    s = _s3(e)
    e2 = e * e
    xa = (8.0 / 3.0) / (2.0 + 2.0 * (1.0 + e2) * s)
    ya = (16.0 / 3.0) / (6.0 + 2.0 * (3.0 * e2 - 1.0) * s)
    xc = (4.0 / 3.0) * (1.0 - e2) / (2.0 - 2.0 * (1.0 - e2) * s)
    yc = (4.0 / 3.0) * (2.0 - e2) / (2.0 + 2.0 * (1.0 + e2) * s)
    return xa, ya, xc, yc


def _lengths(length, width) -> tuple[np.ndarray, np.ndarray]:
    L = check_finite_array("length", length)
    w = check_finite_array("width", width)
    if np.any(L <= 0):
        raise FlagellaError(f"length must be positive, got {L[L <= 0].ravel()[0]!r} m")
    if np.any(w <= 0):
        raise FlagellaError(f"width must be positive, got {w[w <= 0].ravel()[0]!r} m")
    L, w = np.broadcast_arrays(L, w)
    return L, w


def spheroid_drag(length, width, mu: float, *, transverse: bool = False):
    """Axial translational and rotational resistance of a prolate spheroid.

    Parameters
    ----------
    length, width:
        Full length ``2a`` and full width ``2b`` in m (arrays broadcast); ``length ≥ width``.
    mu:
        Viscosity in Pa·s.
    transverse:
        Also return the transverse pair.

    Returns
    -------
    ``(zeta_T, zeta_R)``: axial drag in N·s/m and axial rotational drag in N·m·s; with ``transverse``
    ``(zeta_T, zeta_R, zeta_T_perp, zeta_R_perp)``. Sphere limit: ``6πμa``, ``8πμa³``.

    Raises
    ------
    FlagellaError
        Non-positive or non-finite sizes or viscosity, or ``width > length`` (oblate).
    """
    from .errors import check_positive

    mu = check_positive("mu", mu)
    L, w = _lengths(length, width)
    if np.any(w > L * (1 + 1e-12)):
        raise FlagellaError(f"width must not exceed length (prolate spheroid), got width={w.max()!r} m")
    a = 0.5 * L
    ratio = np.minimum(w / L, 1.0)
    e = np.sqrt(1.0 - ratio**2)
    xa, ya, xc, yc = spheroid_resistance_functions(e)
    zt = 6.0 * math.pi * mu * a * xa
    zr = 8.0 * math.pi * mu * a**3 * xc
    if transverse:
        return zt, zr, 6.0 * math.pi * mu * a * ya, 8.0 * math.pi * mu * a**3 * yc
    return zt, zr


def cylinder_drag(length, width, mu: float) -> tuple[np.ndarray, np.ndarray]:
    """Axial ``(zeta_T, zeta_R)`` of a cylinder, length ``L``, diameter ``d`` (Tirado–García de la Torre).

    ``ζ_∥ = 2πμL / (ln p − 0.207 + 0.980/p − 0.133/p²)`` and
    ``ζ_r∥ = 3.841 πμ L d²/4 · (1 + 1.119e-4 + 0.6884/p − 0.2019/p²)`` with ``p = L/d``; the fits are
    meant for ``2 ≲ p ≲ 30`` (a warning-free extrapolation otherwise).
    """
    from .errors import check_positive

    mu = check_positive("mu", mu)
    L, d = _lengths(length, width)
    p = L / d
    zt = 2.0 * math.pi * mu * L / (np.log(p) - 0.207 + 0.980 / p - 0.133 / p**2)
    zr = 3.841 * math.pi * mu * L * d**2 / 4.0 * (1.0 + 1.119e-4 + 0.6884 / p - 0.2019 / p**2)
    return zt, zr
