"""Resistive force theory (RFT) of a rigid helical filament.

A slender filament moving with local velocity ``u`` pushes on the fluid with force per length
``f = ξ_∥ (t·u) t + ξ_⊥ (u − (t·u) t)`` (``t`` the unit tangent). Drag coefficients:

* Lighthill (1976): ``ξ_∥ = 2πμ / ln(2q/a)``, ``ξ_⊥ = 4πμ / (ln(2q/a) + 1/2)`` with ``q = 0.09 Λ`` and
  ``Λ = λ / cos ψ`` the wavelength measured along the filament;
* Gray & Hancock (1955): ``ξ_∥ = 2πμ / (ln(2λ/a) − 1/2)``, ``ξ_⊥ = 4πμ / (ln(2λ/a) + 1/2)``.

For a helix of radius ``R``, pitch ``λ``, pitch angle ``ψ`` (``tan ψ = 2πR/λ``) and contour length
``L_c``, integrating ``f`` along the centreline gives the axial propulsion matrix (Purcell 1997)::

    F = A U + B ω,   T = B U + D ω      (force / torque the helix exerts on the fluid,
                                         along +axis)
    A = L_c (ξ_∥ cos²ψ + ξ_⊥ sin²ψ)
    B = ±L_c (ξ_⊥ − ξ_∥) R sinψ cosψ    (+ for a left-handed helix, − for right-handed)
    D = L_c R² (ξ_∥ sin²ψ + ξ_⊥ cos²ψ)

``B > 0`` for a left-handed helix means: turning it counter-clockwise about +axis (right-hand rule)
pushes fluid towards +axis, so the helix is thrust towards −axis. :meth:`Helix.rft_resistance_matrix`
integrates ``f`` numerically along the actual centreline (the 6×6 oracle for the closed forms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import FlagellaError, check_positive

__all__ = ["DRAG_METHODS", "Helix", "drag_coefficients"]

DRAG_METHODS = ("lighthill", "gray-hancock")


def drag_coefficients(
    mu: float, filament_radius: float, pitch: float, pitch_angle: float, method: str = "lighthill"
) -> tuple[float, float]:
    """RFT drag coefficients ``(ξ_∥, ξ_⊥)`` in Pa·s (= N·s/m²) of a helical filament.

    Parameters
    ----------
    mu:
        Viscosity, Pa·s.
    filament_radius:
        Filament radius ``a`` in m.
    pitch:
        Helix pitch (axial wavelength) ``λ`` in m.
    pitch_angle:
        ``ψ`` in rad.
    method:
        ``"lighthill"`` or ``"gray-hancock"``.
    """
    mu = check_positive("mu", mu)
    a = check_positive("filament_radius", filament_radius)
    lam = check_positive("pitch", pitch)
    m = str(method).lower().replace("_", "-")
    if m == "lighthill":
        big = math.log(0.18 * lam / math.cos(pitch_angle) / a)
        xpar, xperp = 2 * math.pi * mu / big, 4 * math.pi * mu / (big + 0.5)
    elif m in ("gray-hancock", "grayhancock"):
        big = math.log(2 * lam / a)
        xpar, xperp = 2 * math.pi * mu / (big - 0.5), 4 * math.pi * mu / (big + 0.5)
    else:
        raise FlagellaError(f"method must be one of {DRAG_METHODS}, got {method!r}")
    if not (xpar > 0 and xperp > 0):
        raise FlagellaError(
            f"RFT is invalid here: the filament (radius {a:g} m) is not slender next to the pitch {lam:g} m"
        )
    return xpar, xperp


@dataclass(frozen=True)
class Helix:
    """A rigid helical filament about the +z axis, starting at the origin and extending to +z.

    Parameters
    ----------
    pitch:
        Axial wavelength ``λ`` in m.
    radius:
        Helix (centreline) radius ``R`` in m.
    length:
        Contour length ``L_c`` in m (the axial extent is ``L_c cos ψ``).
    filament_radius:
        Cross-section radius ``a`` in m; must be smaller than ``radius``.
    chirality:
        ``"left"`` (E. coli's normal filament) or ``"right"``.
    phase:
        Azimuth (rad) of the first point; bundles use ``2πk/N``.

    Raises
    ------
    FlagellaError
        Non-positive / non-finite sizes, ``filament_radius ≥ radius``, unknown chirality.
    """

    pitch: float
    radius: float
    length: float
    filament_radius: float
    chirality: str = "left"
    phase: float = 0.0

    def __post_init__(self) -> None:
        for name in ("pitch", "radius", "length", "filament_radius"):
            object.__setattr__(self, name, check_positive(name, getattr(self, name)))
        if self.filament_radius >= self.radius:
            raise FlagellaError(
                f"filament_radius ({self.filament_radius:g} m) must be smaller than the helix radius "
                f"({self.radius:g} m)"
            )
        if self.chirality not in ("left", "right"):
            raise FlagellaError(f"chirality must be 'left' or 'right', got {self.chirality!r}")
        if not math.isfinite(float(self.phase)):
            raise FlagellaError(f"phase must be finite, got {self.phase!r}")

    @property
    def handedness(self) -> int:
        """+1 for right-handed, −1 for left-handed."""
        return 1 if self.chirality == "right" else -1

    @property
    def pitch_angle(self) -> float:
        """``ψ = arctan(2πR/λ)`` in rad (angle between the filament and the helix axis)."""
        return math.atan2(2 * math.pi * self.radius, self.pitch)

    @property
    def axial_length(self) -> float:
        """Axial extent ``L_c cos ψ`` in m."""
        return self.length * math.cos(self.pitch_angle)

    @property
    def turns(self) -> float:
        """Number of helical turns ``L_c cos ψ / λ``."""
        return self.axial_length / self.pitch

    def drag_coefficients(self, mu: float, method: str = "lighthill") -> tuple[float, float]:
        """``(ξ_∥, ξ_⊥)`` in Pa·s; see :func:`drag_coefficients`."""
        return drag_coefficients(mu, self.filament_radius, self.pitch, self.pitch_angle, method)

    def propulsion_matrix(self, mu: float, method: str = "lighthill") -> tuple[float, float, float]:
        """RFT ``(A, B, D)`` in N·s/m, N·s, N·s·m (closed forms; ``B > 0`` for a left-handed helix)."""
        xpar, xperp = self.drag_coefficients(mu, method)
        psi = self.pitch_angle
        s, c = math.sin(psi), math.cos(psi)
        L, R = self.length, self.radius
        A = L * (xpar * c * c + xperp * s * s)
        B = -self.handedness * L * (xperp - xpar) * R * s * c
        D = L * R * R * (xpar * s * s + xperp * c * c)
        return A, B, D

    def with_filament_radius(self, filament_radius: float) -> Helix:
        """Same helix with another filament radius (the thick-bundle model)."""
        return Helix(self.pitch, self.radius, self.length, filament_radius, self.chirality, self.phase)

    def centerline(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points (m) evenly spaced in arc length over ``[0, L_c]`` and the unit tangents there."""
        if int(n) != n or n < 2:
            raise FlagellaError(f"n must be an integer ≥ 2, got {n!r}")
        s = np.linspace(0.0, self.length, int(n))
        return self._at(s)

    def _at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        psi = self.pitch_angle
        k = 2 * math.pi / self.pitch
        z = s * math.cos(psi)
        th = self.handedness * k * z + self.phase
        R = self.radius
        pts = np.stack([R * np.cos(th), R * np.sin(th), z], axis=1)
        dth = self.handedness * k * math.cos(psi)
        tan = np.stack([-R * dth * np.sin(th), R * dth * np.cos(th), np.full_like(z, math.cos(psi))], axis=1)
        return pts, tan / np.linalg.norm(tan, axis=1, keepdims=True)

    def polyline(self, points_per_turn: int) -> np.ndarray:
        """Nodes (m) of a polyline through the centreline with ``points_per_turn`` segments per turn."""
        if int(points_per_turn) != points_per_turn or points_per_turn < 4:
            raise FlagellaError(f"points_per_turn must be an integer ≥ 4, got {points_per_turn!r}")
        nseg = max(2, int(math.ceil(self.turns * points_per_turn)))
        return self._at(np.linspace(0.0, self.length, nseg + 1))[0]

    def rft_resistance_matrix(
        self, mu: float, method: str = "lighthill", n: int = 4001, center=(0.0, 0.0, 0.0)
    ) -> np.ndarray:
        """6×6 RFT resistance matrix by trapezoidal integration of the local drag law along the centreline.

        ``(F, T) = R (U, Ω)``, force (N) and torque (N·m, about ``center``) on the fluid.
        """
        xpar, xperp = self.drag_coefficients(mu, method)
        pts, t = self.centerline(n)
        x = pts - np.asarray(center, dtype=float)
        w = np.full(len(x), self.length / (len(x) - 1))
        w[[0, -1]] *= 0.5
        Rloc = xperp * np.eye(3)[None] + (xpar - xperp) * t[:, :, None] * t[:, None, :]  # (n,3,3)
        # velocity of a point: u = U + Ω × x = U − [x]× Ω
        X = np.zeros((len(x), 3, 3))
        X[:, 0, 1], X[:, 0, 2], X[:, 1, 2] = -x[:, 2], x[:, 1], -x[:, 0]
        X[:, 1, 0], X[:, 2, 0], X[:, 2, 1] = x[:, 2], -x[:, 1], x[:, 0]
        K = np.concatenate([np.broadcast_to(np.eye(3), X.shape), -X], axis=2)  # (n,3,6): u = K q
        F = np.einsum("n,nij,njk->nik", w, Rloc, K)  # force density per unit motion
        top = F.sum(axis=0)
        bottom = np.einsum("nij,njk->ik", X, F)  # torque = x × f = [x]× f
        return np.concatenate([top, bottom], axis=0)
