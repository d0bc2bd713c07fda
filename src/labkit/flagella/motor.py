"""Bacterial flagellar motor: torque–speed curves and their intersection with a linear load line.

The E. coli motor (Chen & Berg 2000; Yuan & Berg review) produces a nearly constant torque ``τ₀`` up to
a *knee* speed ``ω_k`` and then a torque falling linearly to zero at the zero-load speed ``ω₀``::

    τ(ω) = τ₀                              ω ≤ ω_k
    τ(ω) = τ₀ (ω₀ − ω)/(ω₀ − ω_k)           ω_k < ω < ω₀

A swimming cell loads each motor with a *load line* ``τ = k ω`` (``k`` in N·m·s, from the balance
equations in :mod:`labkit.flagella.swim`); the operating point is the intersection, solved here in
closed form and vectorised over ``k``. Rates are angular (rad/s); torques in N·m.

The proton-motive force (PMF) scales the whole curve: the torque near stall is proportional to the PMF
(Fung & Berg 1995) and so is the speed near zero load (Gabel & Berg 2003) [R: recalled, not re-read].
:meth:`MotorCurve.scaled` is that one-parameter family (stall torque, knee and zero-load speed multiplied
by the same factor ``s``). Because a load line ``τ = kω`` is homogeneous, the operating point of the
scaled curve on any load line is exactly ``s`` times the unscaled one, in rate *and* torque: the PMF
changes the speed of every cell by the same factor and leaves the shape of any curve U(L) unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import FlagellaError, check_positive

__all__ = ["ConstantSpeedMotor", "MotorCurve", "hz", "rad_per_s"]


def rad_per_s(hz_value):
    """Convert a frequency in Hz (turns per second) to an angular rate in rad/s."""
    if np.ndim(hz_value):
        return 2.0 * math.pi * np.asarray(hz_value, dtype=float)
    return 2.0 * math.pi * hz_value


def hz(rad_s):
    """Convert an angular rate in rad/s to Hz (turns per second)."""
    return np.asarray(rad_s, dtype=float) / (2.0 * math.pi) if np.ndim(rad_s) else rad_s / (2.0 * math.pi)


@dataclass(frozen=True)
class MotorCurve:
    """Knee-type torque–speed curve of one motor.

    Parameters
    ----------
    stall_torque:
        ``τ₀`` in N·m (E. coli ≈ 1.3e-18 N·m = 1300 pN·nm).
    knee_rate:
        ``ω_k`` in rad/s; ``math.inf`` for an idealised constant-torque motor.
    zero_load_rate:
        ``ω₀`` in rad/s (> ``knee_rate``); ``math.inf`` together with ``knee_rate=inf``.

    Raises
    ------
    FlagellaError
        Non-positive values, or a knee at or above the zero-load speed.
    """

    stall_torque: float
    knee_rate: float
    zero_load_rate: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "stall_torque", check_positive("stall_torque", self.stall_torque))
        for name in ("knee_rate", "zero_load_rate"):
            v = getattr(self, name)
            try:
                v = float(v)
            except (TypeError, ValueError) as exc:
                raise FlagellaError(f"{name} must be a real number, got {v!r}") from exc
            if math.isnan(v) or v <= 0:
                raise FlagellaError(f"{name} must be positive, got {v!r} rad/s")
            object.__setattr__(self, name, v)
        if math.isinf(self.knee_rate):
            if not math.isinf(self.zero_load_rate):
                raise FlagellaError("a constant-torque motor (knee_rate=inf) needs zero_load_rate=inf")
        elif self.knee_rate >= self.zero_load_rate:
            raise FlagellaError(
                f"knee_rate ({self.knee_rate:g} rad/s) must be below zero_load_rate "
                f"({self.zero_load_rate:g} rad/s)"
            )

    @classmethod
    def constant_torque(cls, stall_torque: float) -> MotorCurve:
        """Idealised motor with torque ``τ₀`` at every speed (no knee)."""
        return cls(stall_torque, math.inf, math.inf)

    def scaled(self, factor: float) -> MotorCurve:
        """The PMF-family member with stall torque, knee and zero-load speed all multiplied by ``factor``.

        Raises
        ------
        FlagellaError
            If ``factor`` is not a positive finite number.
        """
        s = check_positive("factor", factor)
        return MotorCurve(self.stall_torque * s, self.knee_rate * s, self.zero_load_rate * s)

    @property
    def is_constant_torque(self) -> bool:
        """True for the no-knee idealisation."""
        return math.isinf(self.knee_rate)

    def torque(self, rate) -> np.ndarray:
        """Torque (N·m) at motor rate ``rate`` (rad/s, ≥ 0); zero beyond the zero-load speed."""
        w = np.asarray(rate, dtype=float)
        if self.is_constant_torque:
            return np.full_like(w, self.stall_torque)
        lin = self.stall_torque * (self.zero_load_rate - w) / (self.zero_load_rate - self.knee_rate)
        return np.where(w <= self.knee_rate, self.stall_torque, np.clip(lin, 0.0, None))

    def operating_point(self, load) -> tuple[np.ndarray, np.ndarray]:
        """Intersection of the curve with the load line ``τ = load · ω`` (``load`` in N·m·s, > 0).

        Returns ``(rate, torque)`` in rad/s and N·m, broadcast over ``load``.
        """
        k = np.asarray(load, dtype=float)
        if np.any(~np.isfinite(k)) or np.any(k <= 0):
            raise FlagellaError("load (N·m·s) must be positive and finite")
        w_ct = self.stall_torque / k
        if self.is_constant_torque:
            return w_ct, np.full_like(w_ct, self.stall_torque)
        span = self.zero_load_rate - self.knee_rate
        w_lin = self.stall_torque * self.zero_load_rate / (k * span + self.stall_torque)
        w = np.where(w_ct <= self.knee_rate, w_ct, w_lin)
        return w, k * w


@dataclass(frozen=True)
class ConstantSpeedMotor:
    """Idealised motor turning at ``rate`` (rad/s) whatever the load."""

    rate: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", check_positive("rate", self.rate))

    def operating_point(self, load) -> tuple[np.ndarray, np.ndarray]:
        """``(rate, load · rate)`` broadcast over ``load`` (N·m·s)."""
        k = np.asarray(load, dtype=float)
        if np.any(~np.isfinite(k)) or np.any(k <= 0):
            raise FlagellaError("load (N·m·s) must be positive and finite")
        w = np.full_like(k, self.rate)
        return w, k * w
