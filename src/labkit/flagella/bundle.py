"""Propulsion matrices of a bundle of N flagella: three models.

``"independent"``
    N helices that do not feel each other: ``(A, B, D)_N = N (A, B, D)_1`` (RFT).
``"thick"``
    The bundle as one helix of filament radius ``a√N`` (same cross-section area; the convention of
    ``croelmiyn/RFTMultiflagella``), RFT.
``"stokeslet"``
    First principles: N identical coaxial helices, phase-shifted by ``2πk/N`` (a rigid intertwined
    bundle turning about its axis), every filament discretised into regularized Stokeslet segments with
    ``ε = √e · a`` (the blob size for which a line of blobs has the exact drag of a slender body of radius
    ``a``; see :mod:`labkit.flagella.stokeslets`). All hydrodynamic interactions between filaments are
    resolved by a dense solve. Results are cached on disk (:class:`~labkit.flagella.diskcache.JsonCache`),
    keyed by every input. This is the default model of :func:`~labkit.flagella.swim.swim`
    (:data:`~labkit.flagella.swim.DEFAULT_BUNDLE`): ``bundle_model(params, "stokeslet")`` without an
    ``n_max`` gives a table at :data:`DEFAULT_POINTS_PER_TURN` that computes each N the first time it is
    asked for.

Every model is an object with ``propulsion(n) -> (A, B, D)`` vectorised over integer ``n``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .diskcache import JsonCache
from .errors import FlagellaError
from .params import SwimmerParams
from .rft import Helix
from .stokeslets import SQRT_E, filament_resistance_matrix

__all__ = [
    "ARRANGEMENTS",
    "BUNDLE_MODELS",
    "DEFAULT_POINTS_PER_TURN",
    "ConvergenceStudy",
    "GrowingBundle",
    "IndependentBundle",
    "StokesletBundle",
    "ThickHelixBundle",
    "bundle_helices",
    "bundle_model",
    "bundle_resistance_matrix",
    "convergence_study",
    "lisevich_bundle_length",
    "richardson",
    "stokeslet_bundle",
]

BUNDLE_MODELS = ("independent", "thick", "stokeslet")
_CACHE_VERSION = 1

#: Segments per helical turn of the default Stokeslet bundle. At 64 the Richardson-estimated error of
#: A, B and D is at most 0.5 % for N = 1 and 4 (chapter 4's convergence study; 32 per turn is 1.4–1.7 %
#: off in D). Each N is computed once and cached on disk (costs: benchmarks/NOTES_flagella.md).
DEFAULT_POINTS_PER_TURN = 64

#: In-process copies of the disk cache, keyed like the cache files.
_MEMO: dict[str, np.ndarray] = {}
#: The bundle matrices on disk, one JSON file per ``_key(...)`` (``cache_dir()/flagella/bundle_*``).
_DISK = JsonCache("bundle")


def _counts(n) -> np.ndarray:
    arr = np.asarray(n)
    if arr.size and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) or np.any(arr < 1)):
        raise FlagellaError(f"n_flagella must be integers ≥ 1, got {np.ravel(arr)[:5].tolist()}")
    return arr.astype(np.int64)


@dataclass(frozen=True)
class IndependentBundle:
    """N non-interacting RFT helices: ``(A, B, D)`` grow exactly like N."""

    params: SwimmerParams
    name: str = "independent"

    def propulsion(self, n) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(A, B, D)`` in N·s/m, N·s, N·s·m for bundles of ``n`` flagella."""
        k = _counts(n)
        A, B, D = self.params.helix().propulsion_matrix(self.params.viscosity, self.params.drag_method)
        return A * k, B * k, D * k


@dataclass(frozen=True)
class ThickHelixBundle:
    """The bundle as one RFT helix of filament radius ``a√N``."""

    params: SwimmerParams
    name: str = "thick"

    def propulsion(self, n) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(A, B, D)`` for bundles of ``n`` flagella (sub-linear in N, only through ln a)."""
        k = _counts(n)
        p = self.params
        out = np.zeros((3,) + k.shape)
        for m in np.unique(k):
            a = min(p.filament_radius * math.sqrt(int(m)), 0.99 * p.helix_radius)
            out[:, k == m] = np.array(p.helix(a).propulsion_matrix(p.viscosity, p.drag_method))[:, None]
        return out[0], out[1], out[2]


ARRANGEMENTS = ("cable", "spread")


def _hex_offsets(n: int) -> np.ndarray:
    """The ``n`` points of a unit hexagonal lattice nearest the origin (ties broken by angle), centred."""
    m = int(math.ceil(math.sqrt(n))) + 2
    ij = np.array([(i, j) for i in range(-m, m + 1) for j in range(-m, m + 1)], dtype=float)
    pts = np.stack([ij[:, 0] + 0.5 * ij[:, 1], ij[:, 1] * math.sqrt(3) / 2], axis=1)
    d = np.round(np.hypot(pts[:, 0], pts[:, 1]), 9)
    ang = np.round(np.mod(np.arctan2(pts[:, 1], pts[:, 0]), 2 * math.pi), 9)
    sel = pts[np.lexsort((ang, d))[:n]]
    return sel - sel.mean(axis=0)


def bundle_helices(
    params: SwimmerParams, n: int, *, arrangement: str = "cable", spacing: float | None = None
) -> list[Helix]:
    """The N helices of a rigid bundle about the z axis.

    ``arrangement="cable"`` (default)
        Filaments packed side by side along the common helical path: their cross-section centres sit
        on a hexagonal lattice of centre-to-centre ``spacing`` (default ``3a``) in the plane normal to
        the path. A radial offset ``x`` gives a helix of radius ``R + x`` (same pitch and axial extent);
        an offset ``y`` along the surface binormal is an axial shift ``y / sin ψ`` (a phase shift).
    ``arrangement="spread"``
        Coaxial multi-start helix: the same helix turned by ``2πk/N`` (filaments far apart).
    """
    n = int(_counts(n))
    p = params
    if arrangement == "spread":
        return [
            Helix(
                p.pitch,
                p.helix_radius,
                p.contour_length,
                p.filament_radius,
                p.chirality,
                phase=2 * math.pi * k / n,
            )
            for k in range(n)
        ]
    if arrangement != "cable":
        raise FlagellaError(f"arrangement must be one of {ARRANGEMENTS}, got {arrangement!r}")
    d = 3.0 * p.filament_radius if spacing is None else float(spacing)
    if not (math.isfinite(d) and d >= 2.0 * p.filament_radius):
        raise FlagellaError(
            f"spacing must be at least the filament diameter {2 * p.filament_radius:g} m, got {d!r}"
        )
    base = p.helix()
    psi, axial = base.pitch_angle, base.axial_length
    out = []
    for x, y in _hex_offsets(n) * d:
        Rk = p.helix_radius + x
        if Rk <= p.filament_radius:
            raise FlagellaError(f"bundle of {n} filaments is too thick for helix radius {p.helix_radius:g} m")
        psik = math.atan2(2 * math.pi * Rk, p.pitch)
        phase = 2 * math.pi * (y / math.sin(psi)) / p.pitch
        out.append(Helix(p.pitch, Rk, axial / math.cos(psik), p.filament_radius, p.chirality, phase=phase))
    return out


def bundle_resistance_matrix(
    params: SwimmerParams,
    n: int,
    *,
    points_per_turn: int = 24,
    eps_factor: float = SQRT_E,
    arrangement: str = "cable",
    spacing: float | None = None,
) -> np.ndarray:
    """6×6 resistance matrix (about the origin on the bundle axis, z = bundle axis) of an N-filament bundle.

    Regularized Stokeslet segments, ``points_per_turn`` segments per helical turn per filament,
    ``ε = eps_factor · a``; geometry from :func:`bundle_helices`. Entries ``[2, 2]``, ``[2, 5]``,
    ``[5, 5]`` are the bundle's ``A, B, D``.
    """
    if not (eps_factor > 0 and math.isfinite(eps_factor)):
        raise FlagellaError(f"eps_factor must be positive, got {eps_factor!r}")
    helices = bundle_helices(params, n, arrangement=arrangement, spacing=spacing)
    lines = [h.polyline(points_per_turn) for h in helices]
    return filament_resistance_matrix(lines, eps_factor * params.filament_radius, params.viscosity)


def _key(
    params: SwimmerParams,
    n: int,
    points_per_turn: int,
    eps_factor: float,
    arrangement: str,
    spacing: float | None,
) -> dict[str, object]:
    """The inputs that determine one cached bundle matrix (its :data:`_DISK` key)."""
    return {
        "v": _CACHE_VERSION,
        "pitch": params.pitch,
        "R": params.helix_radius,
        "Lc": params.contour_length,
        "a": params.filament_radius,
        "chir": params.chirality,
        "mu": params.viscosity,
        "n": int(n),
        "ppt": int(points_per_turn),
        "epsf": float(eps_factor),
        "arr": arrangement,
        "spacing": spacing,
    }


@dataclass(frozen=True)
class StokesletBundle:
    """Bundle propulsion computed from regularized Stokeslets, tabulated for ``n = 1 … n_max``.

    Attributes
    ----------
    matrices:
        ``{n: 6×6 resistance matrix}``.
    points_per_turn:
        Resolution used.
    seconds:
        ``{n: wall time of the solve}`` (0 for a cache hit).
    arrangement:
        ``"cable"`` or ``"spread"`` (:func:`bundle_helices`).
    extend:
        When not ``None``, the ``(params, keyword arguments)`` of :func:`stokeslet_bundle` with which
        :meth:`propulsion` computes (and caches) an N not yet in the table; ``None``: a fixed table.
    """

    matrices: dict[int, np.ndarray]
    points_per_turn: int
    seconds: dict[int, float] = field(default_factory=dict)
    arrangement: str = "cable"
    name: str = "stokeslet"
    extend: tuple[SwimmerParams, dict] | None = field(default=None, repr=False, compare=False)

    @property
    def n_max(self) -> int:
        """Largest tabulated N (0 for an empty table)."""
        return max(self.matrices, default=0)

    def table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(n, A, B, D)`` arrays over the tabulated N."""
        ns = np.array(sorted(self.matrices))
        M = np.array([self.matrices[k] for k in ns])
        return ns, M[:, 2, 2], M[:, 2, 5], M[:, 5, 5]

    def propulsion(self, n) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(A, B, D)`` for integer ``n`` within the table.

        An extendable table (``extend``) first computes the missing N (disk-cached).

        Raises
        ------
        FlagellaError
            If some ``n`` was not computed and the table is fixed (rebuild with a larger ``n_max``).
        """
        k = _counts(n)
        missing = sorted(set(np.unique(k).tolist()) - set(self.matrices))
        if missing and self.extend is not None:
            params, kwargs = self.extend
            more = stokeslet_bundle(params, missing, **kwargs)
            self.matrices.update(more.matrices)
            self.seconds.update(more.seconds)
            missing = []
        if missing:
            raise FlagellaError(
                f"n_flagella={missing[:5]} not in the Stokeslet table (n_max={self.n_max}); "
                "call stokeslet_bundle with a larger n_max"
            )
        ns, A, B, D = self.table()
        idx = np.searchsorted(ns, k)
        return A[idx], B[idx], D[idx]


def stokeslet_bundle(
    params: SwimmerParams,
    n_max: int | Iterable[int] = 10,
    *,
    points_per_turn: int = DEFAULT_POINTS_PER_TURN,
    eps_factor: float = SQRT_E,
    arrangement: str = "cable",
    spacing: float | None = None,
    cache: bool = True,
    progress: bool = False,
    extend: bool = False,
) -> StokesletBundle:
    """Compute (or load from the disk cache) the Stokeslet bundle matrices for ``n = 1 … n_max``.

    ``n_max`` is the largest N, or the N to compute (an iterable; may be empty). Each N is cached in
    its own file as soon as it is solved, so an interrupted sweep resumes; with ``cache=True`` the
    process also keeps them in memory. ``extend=True`` returns a table that computes any further N on
    first use (its ``extend`` attribute).
    """
    import time

    ns = list(range(1, int(n_max) + 1)) if np.ndim(n_max) == 0 else [int(x) for x in n_max]
    if ns:
        _counts(ns)
    mats: dict[int, np.ndarray] = {}
    secs: dict[int, float] = {}
    it = ns
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(ns, desc="Stokeslet bundle", unit="N")
    for n in it:
        inputs = _key(params, n, points_per_turn, eps_factor, arrangement, spacing)
        key = _DISK.digest(inputs)
        if cache and key in _MEMO and _DISK.path(inputs).exists():
            mats[n], secs[n] = _MEMO[key].copy(), 0.0
            continue
        hit = _DISK.get(inputs, required=("matrix",)) if cache else None  # damaged: recompute
        if hit is not None:
            mats[n], secs[n] = np.array(hit["matrix"]), 0.0
            _MEMO[key] = mats[n].copy()
            continue
        t0 = time.perf_counter()
        M = bundle_resistance_matrix(
            params,
            n,
            points_per_turn=points_per_turn,
            eps_factor=eps_factor,
            arrangement=arrangement,
            spacing=spacing,
        )
        secs[n] = time.perf_counter() - t0
        mats[n] = M
        if cache:
            _DISK.put(inputs, {"n": n, "ppt": points_per_turn, "matrix": M.tolist()})
            _MEMO[key] = M.copy()
    opts = dict(
        points_per_turn=points_per_turn,
        eps_factor=eps_factor,
        arrangement=arrangement,
        spacing=spacing,
        cache=cache,
    )
    return StokesletBundle(
        mats, int(points_per_turn), secs, arrangement=arrangement, extend=(params, opts) if extend else None
    )


def bundle_model(params: SwimmerParams, bundle="stokeslet", **kwargs):
    """Resolve ``bundle`` (a model name or an object with ``propulsion``) to a model object.

    ``"stokeslet"`` builds :func:`stokeslet_bundle` with ``kwargs`` (e.g. ``points_per_turn``); without
    an ``n_max`` the table starts empty and computes each N on first use (``extend=True``), at
    :data:`DEFAULT_POINTS_PER_TURN` unless told otherwise.
    """
    if hasattr(bundle, "propulsion"):
        return bundle
    if bundle == "independent":
        return IndependentBundle(params)
    if bundle == "thick":
        return ThickHelixBundle(params)
    if bundle == "stokeslet":
        if "n_max" not in kwargs:
            kwargs = {"n_max": (), "extend": True, **kwargs}
        return stokeslet_bundle(params, **kwargs)
    raise FlagellaError(f"bundle must be one of {BUNDLE_MODELS} or a model object, got {bundle!r}")


@dataclass(frozen=True)
class ConvergenceStudy:
    """Bundle ``(A, B, D)`` at successively doubled resolutions, with a Richardson estimate of the limit.

    Attributes
    ----------
    n:
        Number of filaments.
    resolutions:
        Segments per helical turn, each twice the previous.
    values:
        ``(len(resolutions), 3)`` array of ``A`` (N·s/m), ``B`` (N·s), ``D`` (N·s·m).
    order:
        Observed order of convergence of each of ``A, B, D`` from the three finest resolutions,
        ``p = log2(|f_{h/2} − f_h| / |f_{h/4} − f_{h/2}|)``, clipped to ``[0.5, 4]``.
    limit:
        Richardson extrapolation ``f_{h/4} + (f_{h/4} − f_{h/2}) / (2^p − 1)`` of each entry.
    """

    n: int
    resolutions: tuple[int, ...]
    values: np.ndarray
    order: np.ndarray
    limit: np.ndarray

    def error(self, points_per_turn: int) -> np.ndarray:
        """Estimated relative error ``f/limit − 1`` of ``A, B, D`` at a resolution of the study."""
        if points_per_turn not in self.resolutions:
            raise FlagellaError(f"points_per_turn={points_per_turn} is not one of {self.resolutions}")
        return self.values[self.resolutions.index(points_per_turn)] / self.limit - 1.0


def convergence_study(
    params: SwimmerParams, n: int, resolutions: Iterable[int], *, cache: bool = True, **kwargs
) -> ConvergenceStudy:
    """Stokeslet bundle of ``n`` filaments at each resolution (segments per turn, doubling, ≥ 3 of them).

    The matrices come from :func:`stokeslet_bundle` (disk-cached); ``kwargs`` go to it (``arrangement``,
    ``eps_factor``, ``spacing``).

    Raises
    ------
    FlagellaError
        Fewer than three resolutions, or resolutions that do not double.
    """
    res = tuple(int(r) for r in resolutions)
    if len(res) < 3 or any(b != 2 * a for a, b in zip(res, res[1:], strict=False)):
        raise FlagellaError(f"resolutions must be at least 3 values, each twice the previous; got {res}")
    vals = []
    for r in res:
        M = stokeslet_bundle(params, [int(n)], points_per_turn=r, cache=cache, **kwargs).matrices[int(n)]
        vals.append([M[2, 2], M[2, 5], M[5, 5]])
    v = np.array(vals)
    p, limit = richardson(v)
    return ConvergenceStudy(int(n), res, v, p, limit)


def richardson(values) -> tuple[np.ndarray, np.ndarray]:
    """Observed order and Richardson limit from values at step sizes ``h, h/2, h/4, …`` (rows).

    Uses the last three rows: ``p = log2(|f₂ − f₁| / |f₃ − f₂|)`` clipped to ``[0.5, 4]`` and
    ``f₃ + (f₃ − f₂)/(2^p − 1)``. Columns are extrapolated independently.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim == 1:
        v = v[:, None]
    if len(v) < 3:
        raise FlagellaError(f"richardson needs at least 3 resolutions, got {len(v)}")
    d1, d2 = v[-2] - v[-3], v[-1] - v[-2]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.log2(np.abs(d1) / np.abs(d2))
    p = np.clip(np.nan_to_num(p, nan=1.0, posinf=4.0, neginf=0.5), 0.5, 4.0)
    return p, v[-1] + d2 / (2.0**p - 1.0)


def lisevich_bundle_length(n) -> np.ndarray:
    """Flagellar (bundle) contour length in m growing with N: ``(5.3983 + 3.6564 log10 N)`` µm.

    The fit used by Lisevich et al.'s model code (``FlagelarNumberModel_Revision_Final.m`` in
    ``croelmiyn/RFTMultiflagella``, ``dataset.Lf``) [V code]; that it fits their measured bundle
    lengths is their statement, not checked here.
    """
    k = _counts(n)
    return (5.3983 + 3.6564 * np.log10(k)) * 1e-6


@dataclass(frozen=True)
class GrowingBundle:
    """A bundle whose filaments' contour length depends on N.

    ``length(n)`` gives the contour length (m) for ``n`` filaments; ``factory(params, n)`` builds the
    model of the bundle with that geometry (e.g. ``lambda q, n: ThickHelixBundle(q)`` or a cached
    :func:`stokeslet_bundle` of ``[n]``), called once per distinct N.
    """

    params: SwimmerParams
    length: object = lisevich_bundle_length
    factory: object = None
    name: str = "growing"

    def propulsion(self, n) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(A, B, D)`` for bundles of ``n`` flagella, each N with its own contour length."""
        k = _counts(n)
        factory = self.factory or (lambda q, m: ThickHelixBundle(q))
        out = np.zeros((3,) + k.shape)
        for m in np.unique(k):
            q = self.params.replace(contour_length=float(np.asarray(self.length(int(m)))))
            out[:, k == m] = np.array(factory(q, int(m)).propulsion(int(m)))[:, None]
        return out[0], out[1], out[2]
