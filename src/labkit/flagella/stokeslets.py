"""Regularized Stokeslets (Cortez, Fauci & Medovikov 2005) and regularized Stokeslet segments (Cortez 2018).

Point blobs
    A force ``f`` spread with the blob ``φ_ε(r) = 15 ε⁴ / (8π (r² + ε²)^{7/2})`` induces the exact Stokes
    velocity ``u(x) = S_ε(x − x₀) f`` with

    ``S_ε(r) = [(r² + 2ε²) I + r rᵀ] / (8πμ (r² + ε²)^{3/2})``.

    The self term ``I/(4πμε)`` is finite; for ``|r| ≫ ε`` it tends to the Oseen tensor
    ``(I + r̂r̂ᵀ)/(8πμ|r|)`` with relative error ``O(ε²/r²)``.

Segments
    For slender filaments the force per unit length is taken constant on each straight segment of a
    polyline and ``S_ε`` is integrated *exactly* along the segment. The segment length can then be many
    times ``ε`` (a flagellum has ``ε ≈ 17 nm`` but needs only ~25 segments per 2.5 µm helical turn),
    which is what makes the N-filament bundle affordable. The line of blobs with ``ε = √e · a`` has the
    drag of a slender body of radius ``a`` (checked against the exact prolate-spheroid drag in the
    tests and in the book).

All quantities are SI: positions in m, ``ε`` in m, ``μ`` in Pa·s, forces in N; a *resistance matrix*
maps the rigid motion ``(U, Ω)`` (m/s, rad/s) to the force and torque (N, N·m) the body exerts on the
fluid, taken about ``center``; it is symmetric positive definite for a well-resolved body.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from .errors import FlagellaError, check_finite_array, check_positive

__all__ = [
    "DIRECT_MAX_UNKNOWNS",
    "SQRT_E",
    "SolveInfo",
    "fibonacci_sphere",
    "filament_resistance_matrix",
    "mobility_matrix",
    "oseen_tensor",
    "resistance_matrix",
    "rigid_motion_basis",
    "segment_mobility_matrix",
    "solve_mobility",
    "stokeslet_tensor",
    "velocity",
]

#: √e: the blob size per filament radius that gives a line of blobs the drag of a slender body.
SQRT_E = math.sqrt(math.e)


def _points(name: str, points: np.ndarray | Sequence) -> np.ndarray:
    pts = check_finite_array(name, points)
    if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] < 1:
        raise FlagellaError(f"{name} must have shape (n, 3) with n ≥ 1, got {pts.shape}")
    return pts


def _check_duplicates(name: str, pts: np.ndarray, tol: float) -> None:
    from scipy.spatial import cKDTree

    if len(pts) < 2:
        return
    pairs = cKDTree(pts).query_pairs(r=tol, output_type="ndarray")
    if len(pairs):
        i, j = pairs[0]
        raise FlagellaError(
            f"{name} contains duplicate points: rows {i} and {j} are both at {pts[i].tolist()} "
            f"(closer than {tol:.3g} m); the mobility matrix would be singular"
        )


def stokeslet_tensor(r: np.ndarray, eps: float, mu: float = 1.0) -> np.ndarray:
    """Regularized Stokeslet ``S_ε(r)`` for separations ``r`` of shape ``(..., 3)`` → ``(..., 3, 3)``.

    Parameters
    ----------
    r:
        Separation vectors ``x − x₀`` in m.
    eps:
        Blob size ε in m (> 0).
    mu:
        Dynamic viscosity in Pa·s.
    """
    eps = check_positive("eps", eps)
    mu = check_positive("mu", mu)
    r = np.asarray(r, dtype=np.float64)
    r2 = np.einsum("...i,...i->...", r, r)
    d = 1.0 / (8.0 * math.pi * mu * (r2 + eps**2) ** 1.5)
    out = r[..., :, None] * r[..., None, :] * d[..., None, None]
    diag = (r2 + 2.0 * eps**2) * d
    for k in range(3):
        out[..., k, k] += diag
    return out


def oseen_tensor(r: np.ndarray, mu: float = 1.0) -> np.ndarray:
    """Singular Stokeslet (Oseen tensor) ``(I + r̂r̂ᵀ)/(8πμ|r|)`` for ``r`` of shape ``(..., 3)``, ``r ≠ 0``."""
    mu = check_positive("mu", mu)
    r = np.asarray(r, dtype=np.float64)
    rn = np.sqrt(np.einsum("...i,...i->...", r, r))
    if np.any(rn == 0):
        raise FlagellaError("oseen_tensor is singular at r = 0; use stokeslet_tensor with eps > 0")
    rh = r / rn[..., None]
    out = rh[..., :, None] * rh[..., None, :]
    for k in range(3):
        out[..., k, k] += 1.0
    return out / (8.0 * math.pi * mu * rn)[..., None, None]


def mobility_matrix(points: np.ndarray, eps: float, mu: float, *, check: bool = True) -> np.ndarray:
    """Dense ``(3n, 3n)`` mobility of ``n`` blobs: ``u = M f`` with ``u``, ``f`` stacked point by point.

    Assembled in float64 row blocks (memory ``72 n²`` bytes for the result plus ~``40 n²·b/n`` of
    temporaries per block of ``b`` rows).

    Raises
    ------
    FlagellaError
        If ``points`` is not ``(n, 3)`` finite, has duplicates (when ``check``), or ``eps``/``mu`` ≤ 0.
    """
    pts = _points("points", points)
    eps = check_positive("eps", eps)
    mu = check_positive("mu", mu)
    n = len(pts)
    if check:
        _check_duplicates("points", pts, tol=1e-9 * eps)
    out = np.empty((n, 3, n, 3))
    c = 1.0 / (8.0 * math.pi * mu)
    e2 = eps * eps
    # row blocks small enough (~2 MB per temporary) to stay in cache; the 6 distinct components
    # of the symmetric 3×3 blocks are computed once and written twice.
    block = max(1, min(n, 262_144 // max(n, 1)))
    for s in range(0, n, block):
        e = min(n, s + block)
        r = pts[s:e, None, :] - pts[None, :, :]  # (b, n, 3)
        r2 = np.einsum("ijk,ijk->ij", r, r)
        d = r2 + e2
        d = c / (d * np.sqrt(d))
        diag = (r2 + 2.0 * e2) * d
        for a in range(3):
            ra = r[:, :, a] * d
            for b in range(a, 3):
                blk = ra * r[:, :, b]
                if a == b:
                    blk += diag
                out[s:e, a, :, b] = blk
                if a != b:
                    out[s:e, b, :, a] = blk
    return out.reshape(3 * n, 3 * n)


def velocity(
    targets: np.ndarray, sources: np.ndarray, forces: np.ndarray, eps: float, mu: float
) -> np.ndarray:
    """Velocity (m/s) at ``targets`` ``(m, 3)`` induced by point forces ``forces`` (N) at ``sources``."""
    tg = _points("targets", targets)
    src = _points("sources", sources)
    f = check_finite_array("forces", forces)
    if f.shape != src.shape:
        raise FlagellaError(f"forces must have the shape of sources {src.shape}, got {f.shape}")
    out = np.zeros_like(tg)
    for s in range(0, len(tg), 2048):
        S = stokeslet_tensor(tg[s : s + 2048, None, :] - src[None, :, :], eps, mu)
        out[s : s + 2048] = np.einsum("ijab,jb->ia", S, f)
    return out


def rigid_motion_basis(points: np.ndarray, center: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """``(3n, 6)`` matrix ``K`` with ``u = K (U, Ω)``: the velocities of ``points`` in a rigid motion.

    Column ``k < 3`` is translation along axis ``k``; column ``3 + k`` is rotation about axis ``k``
    through ``center``. Its transpose maps point forces to total force and torque about ``center``.
    """
    x = np.asarray(points, dtype=np.float64) - np.asarray(center, dtype=np.float64)
    n = len(x)
    K = np.zeros((n, 3, 6))
    for k in range(3):
        K[:, k, k] = 1.0
        e = np.zeros(3)
        e[k] = 1.0
        K[:, :, 3 + k] = np.cross(e, x)
    return K.reshape(3 * n, 6)


#: Above this many unknowns (3 per blob) :func:`resistance_matrix` solves by conjugate gradients.
DIRECT_MAX_UNKNOWNS = 6000


@dataclass(frozen=True)
class SolveInfo:
    """How :func:`solve_mobility` solved: ``method`` (``"cholesky"`` or ``"cg"``), CG ``iterations``
    (0 for Cholesky) and the largest relative residual ``‖M f − u‖/‖u‖`` over the right-hand sides."""

    method: str
    iterations: int
    residual: float


def _orthonormal_columns(P: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the column space of ``P`` (pivoted QR; dependent columns dropped)."""
    Q, R, _ = sla.qr(P, mode="economic", pivoting=True, check_finite=False)
    d = np.abs(np.diag(R))
    keep = d > 1e-13 * d[0] if d.size and d[0] > 0 else np.zeros(d.shape, dtype=bool)
    return Q[:, keep]


def _block_cg(M: np.ndarray, b: np.ndarray, rtol: float, maxiter: int) -> tuple[np.ndarray, int]:
    """Block conjugate gradients (O'Leary 1980) for SPD ``M`` and the ``k`` right-hand sides ``b`` (n, k).

    Every iteration is one product ``M P`` with an ``(n, k)`` block of search directions, i.e. one read
    of ``M`` for all right-hand sides, and the Galerkin step is taken over their whole span (a ``k``
    times larger Krylov space per read than ``k`` separate CG runs: 23 against 30 products for the
    10⁴-unknown sphere). The directions are re-orthonormalised every step (pivoted QR), which keeps
    ``Pᵀ M P`` well conditioned when some columns converge before others. Stops when every column's
    residual ``‖b − M x‖/‖b‖`` (by recurrence) is at most ``rtol``.

    Returns ``(x, iterations)``; raises :class:`FlagellaError` if ``Pᵀ M P`` is not positive definite
    or the tolerance is not reached in ``maxiter`` products.
    """
    n, k = b.shape
    x = np.zeros((n, k))
    r = b.copy()
    scale = np.linalg.norm(b, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    if np.all(np.linalg.norm(r, axis=0) / scale <= rtol):
        return x, 0
    P = _orthonormal_columns(r)
    for it in range(1, maxiter + 1):
        Q = M @ P
        PQ = P.T @ Q
        try:
            cf = sla.cho_factor(0.5 * (PQ + PQ.T), lower=True, check_finite=False)
        except np.linalg.LinAlgError as exc:
            raise FlagellaError(
                f"the blob mobility matrix is not positive definite (n={n} unknowns, CG step {it})"
            ) from exc
        alpha = sla.cho_solve(cf, P.T @ r, check_finite=False)
        x += P @ alpha
        r -= Q @ alpha
        if np.all(np.linalg.norm(r, axis=0) / scale <= rtol):
            return x, it
        beta = sla.cho_solve(cf, Q.T @ r, check_finite=False)
        P = _orthonormal_columns(r - P @ beta)
        if P.shape[1] == 0:
            break
    raise FlagellaError(f"CG did not converge to rtol={rtol:g} in {maxiter} iterations (n={n})")


def solve_mobility(
    M: np.ndarray, rhs: np.ndarray, *, method: str = "auto", rtol: float = 1e-8, maxiter: int | None = None
) -> tuple[np.ndarray, SolveInfo]:
    """Solve ``M f = rhs`` for a symmetric positive-definite blob mobility ``M`` and several right-hand sides.

    ``method="cholesky"`` factors ``M`` (LAPACK, O(n³) work, overwrites ``M``); ``"cg"`` runs block
    conjugate gradients (D. P. O'Leary, Linear Algebra Appl. 29:293, 1980) on all right-hand sides at
    once, so each iteration reads ``M`` once (one matrix–matrix product) and needs only a few
    ``(n, k)`` blocks of extra memory; ``"auto"``
    picks Cholesky up to :data:`DIRECT_MAX_UNKNOWNS` unknowns. CG stops when every right-hand side's
    residual falls below ``rtol`` relative to its norm; ``SolveInfo.residual`` is then recomputed
    from ``M`` (one more product), not taken from the recurrence.

    Neighbourhood (block-Jacobi) preconditioners did not pay here: on the 10⁴-unknown sphere they raised
    the count of products from 30 to 31–36 (see ``benchmarks/NOTES_flagella.md``), because the smooth,
    regularized kernel's small eigenvalues belong to global, not local, modes.

    Raises
    ------
    FlagellaError
        An unknown method, a matrix that is not positive definite (Cholesky, or a CG step), or CG that
        does not reach ``rtol`` within ``maxiter`` iterations (default ``max(100, n)``).
    """
    if method not in ("auto", "cholesky", "cg"):
        raise FlagellaError(f"method must be 'auto', 'cholesky' or 'cg', got {method!r}")
    b = np.asarray(rhs, dtype=np.float64)
    b2 = b.reshape(len(b), -1)
    n, _ = b2.shape
    if method == "auto":
        method = "cholesky" if n <= DIRECT_MAX_UNKNOWNS else "cg"
    if method == "cholesky":
        try:  # M is overwritten by its factor: callers pass a matrix they own
            cf = sla.cho_factor(M, lower=True, overwrite_a=True, check_finite=False)
        except np.linalg.LinAlgError as exc:
            raise FlagellaError(
                f"the blob mobility matrix is not positive definite (n={n} unknowns); points too close "
                "relative to eps?"
            ) from exc
        f = sla.cho_solve(cf, b2, check_finite=False)
        return f.reshape(b.shape), SolveInfo("cholesky", 0, float("nan"))
    f, iterations = _block_cg(M, b2, rtol, int(maxiter) if maxiter is not None else max(100, n))
    bnorm = np.linalg.norm(b2, axis=0)
    res = np.linalg.norm(M @ f - b2, axis=0) / np.where(bnorm > 0, bnorm, 1.0)
    return f.reshape(b.shape), SolveInfo("cg", iterations, float(res.max()))


def resistance_matrix(
    points: np.ndarray,
    eps: float,
    mu: float,
    *,
    center: Sequence[float] = (0.0, 0.0, 0.0),
    method: str = "auto",
    rtol: float = 1e-8,
) -> np.ndarray:
    """6×6 resistance matrix of a rigid body represented by regularized-Stokeslet blobs at ``points``.

    Solves the ``3n`` system ``M f = K (U, Ω)`` for the six unit rigid motions (``M`` is symmetric
    positive definite; :func:`solve_mobility`: Cholesky up to :data:`DIRECT_MAX_UNKNOWNS` unknowns,
    conjugate gradients above) and returns ``R = Kᵀ f``, so ``(F, T) = R (U, Ω)`` with ``F`` in N,
    ``T`` in N·m about ``center``. For a sphere of radius ``a``: ``R → diag(6πμa·I, 8πμa³·I)``.
    Memory: the dense ``M`` takes ``72 n²`` bytes (0.8 GB at 10⁴ unknowns).

    Parameters
    ----------
    points:
        Blob positions ``(n, 3)`` in m, e.g. :func:`fibonacci_sphere`.
    eps:
        Blob size in m; on a surface with spacing ``h`` the book uses ``ε ≈ 0.3 h`` (see
        :func:`fibonacci_sphere`).
    mu:
        Viscosity in Pa·s.
    method, rtol:
        Passed to :func:`solve_mobility`.

    Raises
    ------
    FlagellaError
        Non-finite or duplicate points, ``eps ≤ 0``, ``mu ≤ 0``, or a singular system.
    """
    pts = _points("points", points)
    M = mobility_matrix(pts, eps, mu)
    K = rigid_motion_basis(pts, center)
    f, _ = solve_mobility(M, K, method=method, rtol=rtol)
    R = K.T @ f
    return 0.5 * (R + R.T)


def fibonacci_sphere(n: int, radius: float = 1.0) -> np.ndarray:
    """``n`` nearly uniform points (m) on a sphere (golden-angle spiral); spacing ``h = √(4π/n)·radius``."""
    if int(n) != n or n < 2:
        raise FlagellaError(f"n must be an integer ≥ 2, got {n!r}")
    radius = check_positive("radius", radius)
    n = int(n)
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    rho = np.sqrt(1.0 - z * z)
    phi = math.pi * (1.0 + math.sqrt(5.0)) * k
    return radius * np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)


# ---------------------------------------------------------------------------------------------------
# Regularized Stokeslet segments
# ---------------------------------------------------------------------------------------------------


def _segment_kernel(x: np.ndarray, p0: np.ndarray, t: np.ndarray, h: np.ndarray, eps: np.ndarray, mu: float):
    """∫₀ʰ S_ε(x − p0 − α t) dα for targets ``x`` (m, 3) and segments (s,) → (m, 3, s, 3).

    Closed form: with ``x − p0 = b t + p`` (``p ⊥ t``), ``β = α − b``, ``R² = β² + |p|² + ε²`` the
    integrand is ``[(R² + ε²) I + (p − βt)(p − βt)ᵀ]/R³``; the primitives of ``1/R``, ``1/R³``,
    ``β/R³``, ``β²/R³`` are elementary.
    """
    x0 = x[:, None, :] - p0[None, :, :]  # (m, s, 3)
    b = np.einsum("msk,sk->ms", x0, t)
    p = x0 - b[..., None] * t[None, :, :]
    c2 = np.einsum("msk,msk->ms", p, p)
    e2 = np.broadcast_to(eps**2, b.shape)
    d2 = c2 + e2
    d = np.sqrt(d2)
    b1 = -b
    b2 = h[None, :] - b
    R1 = np.sqrt(b1 * b1 + d2)
    R2 = np.sqrt(b2 * b2 + d2)
    I0 = np.arcsinh(b2 / d) - np.arcsinh(b1 / d)
    q = b2 / R2 - b1 / R1  # = d² ∫ 1/R³
    I1 = q / d2
    J1 = -(1.0 / R2 - 1.0 / R1)
    J2 = I0 - q
    c = 1.0 / (8.0 * math.pi * mu)
    out = np.empty(b.shape + (3, 3))
    iso = (I0 + e2 * I1) * c
    I1c, J1c, J2c = I1 * c, J1 * c, J2 * c
    for a in range(3):
        for bb in range(3):
            blk = (
                p[..., a] * p[..., bb] * I1c
                - (p[..., a] * t[None, :, bb] + t[None, :, a] * p[..., bb]) * J1c
                + (t[:, a] * t[:, bb])[None, :] * J2c
            )
            if a == bb:
                blk = blk + iso
            out[..., a, bb] = blk
    return out.transpose(0, 2, 1, 3)


def _polylines(polylines: Sequence[np.ndarray], eps) -> tuple[np.ndarray, ...]:
    if isinstance(polylines, np.ndarray) and polylines.ndim == 2:
        polylines = [polylines]
    starts, tans, lens, mids, epss = [], [], [], [], []
    eps_list = eps if isinstance(eps, (list, tuple)) else [eps] * len(polylines)
    if len(eps_list) != len(polylines):
        raise FlagellaError(f"eps must be a scalar or one entry per polyline, got {len(eps_list)} entries")
    for i, (pl, ei) in enumerate(zip(polylines, eps_list, strict=True)):
        nodes = _points(f"polylines[{i}]", pl)
        if len(nodes) < 2:
            raise FlagellaError(f"polylines[{i}] needs at least 2 nodes, got {len(nodes)}")
        seg = np.diff(nodes, axis=0)
        h = np.linalg.norm(seg, axis=1)
        if np.any(h <= 0):
            k = int(np.argmin(h))
            raise FlagellaError(f"polylines[{i}] has duplicate consecutive nodes at index {k}")
        e = check_finite_array(f"eps[{i}]", np.broadcast_to(np.asarray(ei, dtype=float), h.shape))
        if np.any(e <= 0):
            raise FlagellaError(f"eps must be positive, got {float(e.min())!r} for polyline {i}")
        starts.append(nodes[:-1])
        tans.append(seg / h[:, None])
        lens.append(h)
        mids.append(0.5 * (nodes[:-1] + nodes[1:]))
        epss.append(e)
    return tuple(np.concatenate(v) for v in (starts, tans, lens, mids, epss))


def segment_mobility_matrix(
    polylines: Sequence[np.ndarray] | np.ndarray, eps, mu: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collocation matrix of regularized Stokeslet segments.

    Returns ``(G, midpoints, lengths)``: ``G`` is ``(3s, 3s)`` with ``u(midpoint_i) = Σ_j G_ij g_j``,
    ``g_j`` the constant force per length (N/m) on segment ``j``.

    Parameters
    ----------
    polylines:
        One ``(k, 3)`` array of nodes (m) per filament.
    eps:
        Blob size(s) in m: a scalar, or per polyline a scalar or an array with one value per segment.
    mu:
        Viscosity in Pa·s.
    """
    mu = check_positive("mu", mu)
    p0, t, h, mid, e = _polylines(polylines, eps)
    _check_duplicates("segment midpoints", mid, tol=1e-9 * float(e.min()))
    s = len(h)
    G = np.empty((s, 3, s, 3))
    block = max(1, min(s, 1_500_000 // max(s, 1)))
    for i in range(0, s, block):
        G[i : i + block] = _segment_kernel(mid[i : i + block], p0, t, h, e, mu)
    return G.reshape(3 * s, 3 * s), mid, h


def filament_resistance_matrix(
    polylines: Sequence[np.ndarray] | np.ndarray,
    eps,
    mu: float,
    *,
    center: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """6×6 resistance matrix (about ``center``) of rigid filaments discretised as Stokeslet segments.

    Each segment carries a constant force per length; velocities are matched at segment midpoints
    (dense LU solve of size ``3s``). ``(F, T) = R (U, Ω)``: force (N) and torque (N·m) on the fluid.
    Use ``eps = SQRT_E * filament_radius`` for a filament of radius ``a``.
    """
    G, mid, h = segment_mobility_matrix(polylines, eps, mu)
    K = rigid_motion_basis(mid, center)
    try:
        g = sla.solve(G, K, overwrite_a=True, check_finite=False)
    except (np.linalg.LinAlgError, ValueError) as exc:  # pragma: no cover - singular only for bad input
        raise FlagellaError(f"singular segment system ({len(h)} segments): {exc}") from exc
    return K.T @ (g * np.repeat(h, 3)[:, None])
