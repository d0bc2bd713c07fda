"""Free swimming: force- and torque-free balance of body + flagellar bundle + motors.

Magnitudes along the swimming axis (the cell swims body first, pushed by its bundle)::

    force-free :  B ω_f − A U = ζ_T U                 ⇒  U = B ω_f / (A + ζ_T)
    torque-free:  D ω_f − B U = ζ_R Ω_b = N τ_m
    motor      :  ω_m = ω_f + Ω_b,  τ_m = τ(ω_m) on the motor curve

``A, B, D`` are the bundle's propulsion matrix (:mod:`labkit.flagella.bundle`), ``ζ_T, ζ_R`` the body's
axial drags (:mod:`labkit.flagella.body`). With ``D_red = D − B²/(A + ζ_T)`` the motor sees the linear
load ``τ_m = k ω_m``, ``k = 1 / [N (1/D_red + 1/ζ_R)]``, and the operating point is the intersection
with the torque–speed curve, solved in closed form (vectorised: 1e5 cells in one call). Hydrodynamic
interactions between body and bundle are neglected (reduced-order model).

Two ratios do not involve the motor at all (:func:`motor_free_ratios`): the distance swum per bundle
turn ``2πU/ω_f = 2πB/(A + ζ_T)`` and ``Ω_b/ω_f = D_red/ζ_R``. They test the hydrodynamics alone. The
body's rotation measures the total motor torque, ``N τ_m = ζ_R Ω_b`` (:func:`torque_from_body_rotation`),
which is what :func:`calibrate_pmf` uses to fix the motor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .body import cylinder_drag, spheroid_drag
from .bundle import bundle_model
from .errors import FlagellaError, check_finite_array, check_positive
from .motor import ConstantSpeedMotor, MotorCurve
from .params import SwimmerParams

__all__ = [
    "DEFAULT_BUNDLE",
    "SwimResult",
    "body_drag",
    "calibrate_pmf",
    "motor_free_ratios",
    "swim",
    "torque_from_body_rotation",
]

#: Bundle model used by :func:`swim` (and by the calibration of :func:`~labkit.flagella.ecoli`): the
#: regularized-Stokeslet cable of :func:`~labkit.flagella.bundle.stokeslet_bundle` at
#: :data:`~labkit.flagella.bundle.DEFAULT_POINTS_PER_TURN` segments per turn, each N computed on first
#: use and cached on disk. It resolves every hydrodynamic interaction along the helix and between the
#: filaments, where resistive-force theory (``"thick"``, ``"independent"``; Lighthill 1976) overstates
#: A and B, by about 1.6× for E. coli's 2.9-turn helix and more for longer ones (chapter 4 of the
#: book); RFT stays as the cheap contrast.
DEFAULT_BUNDLE = "stokeslet"


@dataclass(frozen=True)
class SwimResult:
    """Operating point(s) of free swimmers; every field is an array of the broadcast shape (SI).

    Attributes
    ----------
    speed:
        Swimming speed U, m/s.
    bundle_rate, body_rate, motor_rate:
        ``ω_f`` (bundle, lab frame), ``Ω_b`` (body counter-rotation), ``ω_m = ω_f + Ω_b``, rad/s.
    motor_torque:
        Torque per motor ``τ_m``, N·m.
    n_flagella, body_length:
        The cells' N and L (m).
    zeta_T, zeta_R, A, B, D:
        Body drags and bundle propulsion matrix used.
    motor:
        The motor model.
    """

    speed: np.ndarray
    bundle_rate: np.ndarray
    body_rate: np.ndarray
    motor_rate: np.ndarray
    motor_torque: np.ndarray
    n_flagella: np.ndarray
    body_length: np.ndarray
    zeta_T: np.ndarray
    zeta_R: np.ndarray
    A: np.ndarray
    B: np.ndarray
    D: np.ndarray
    motor: object

    @property
    def thrust(self) -> np.ndarray:
        """Propulsive force ``B ω_f − A U`` = body drag ``ζ_T U``, N."""
        return self.zeta_T * self.speed

    @property
    def efficiency(self) -> np.ndarray:
        """Purcell's propulsive efficiency ``ζ_T U² / (N τ_m ω_m)``."""
        return self.zeta_T * self.speed**2 / (self.n_flagella * self.motor_torque * self.motor_rate)

    def residuals(self) -> dict[str, np.ndarray]:
        """Relative residuals of every balance (≈ machine precision at a solution).

        Keys: ``force`` (thrust − drag), ``bundle_torque`` (hydrodynamic vs motor torque on the bundle),
        ``body_torque`` (body drag torque vs motor reaction), ``kinematics`` (ω_m − ω_f − Ω_b) and
        ``motor`` (τ_m − τ(ω_m); 0 for a constant-speed motor).
        """
        U, wf, Wb, wm, tm, N = (
            self.speed,
            self.bundle_rate,
            self.body_rate,
            self.motor_rate,
            self.motor_torque,
            self.n_flagella,
        )
        force_scale = self.B * wf
        torque_scale = self.D * wf
        out = {
            "force": (self.B * wf - self.A * U - self.zeta_T * U) / force_scale,
            "bundle_torque": (self.D * wf - self.B * U - N * tm) / torque_scale,
            "body_torque": (self.zeta_R * Wb - N * tm) / torque_scale,
            "kinematics": (wm - wf - Wb) / wm,
        }
        if isinstance(self.motor, MotorCurve):
            out["motor"] = (tm - self.motor.torque(wm)) / self.motor.stall_torque
        return out


def body_drag(params: SwimmerParams, length=None) -> tuple[np.ndarray, np.ndarray]:
    """Axial ``(ζ_T, ζ_R)`` of the cell body (spheroid or cylinder), optionally for other lengths (m)."""
    L = params.body_length if length is None else length
    if params.body_shape == "cylinder":
        return cylinder_drag(L, params.body_width, params.viscosity)
    return spheroid_drag(L, params.body_width, params.viscosity)


def swim(
    params: SwimmerParams,
    *,
    n_flagella=1,
    body_length=None,
    bundle=DEFAULT_BUNDLE,
    motor: MotorCurve | ConstantSpeedMotor | None = None,
    motor_scale=1.0,
    **bundle_kwargs,
) -> SwimResult:
    """Solve the force- and torque-free swimmer with the motor curve (vectorised).

    Parameters
    ----------
    params:
        :class:`~labkit.flagella.params.SwimmerParams`, e.g. :func:`~labkit.flagella.ecoli`.
    n_flagella:
        Flagella per cell (integer array or scalar); they form one bundle.
    body_length:
        Body lengths in m (array; default ``params.body_length``); broadcast with ``n_flagella``.
    bundle:
        ``"stokeslet"`` (default, :data:`DEFAULT_BUNDLE`), ``"thick"``, ``"independent"`` or a model
        object with ``propulsion(n)``.
    motor:
        Override ``params.motor`` (e.g. ``MotorCurve.constant_torque(τ₀)`` or ``ConstantSpeedMotor``).
    motor_scale:
        Per-cell proton-motive-force factor ``s`` (cell-to-cell variability), broadcast: the motor curve
        is :meth:`~labkit.flagella.motor.MotorCurve.scaled` by ``s`` (stall torque, knee and zero-load
        speed together), so every rate and torque of that cell is ``s`` times the unscaled one.
    bundle_kwargs:
        Passed to :func:`~labkit.flagella.bundle.stokeslet_bundle` when ``bundle="stokeslet"``.

    Returns
    -------
    SwimResult
        Speeds in m/s, rates in rad/s, torque per motor in N·m.
    """
    if not isinstance(params, SwimmerParams):
        raise FlagellaError(f"params must be SwimmerParams (see labkit.flagella.ecoli()), got {type(params)}")
    model = bundle_model(params, bundle, **bundle_kwargs)
    L = check_finite_array(
        "body_length", params.body_length if body_length is None else body_length, positive=True
    )
    N = np.asarray(n_flagella)
    scale = check_finite_array("motor_scale", motor_scale, positive=True)
    L, N, scale = np.broadcast_arrays(L, N, scale)
    A, B, D = model.propulsion(N)
    B = np.abs(B)
    zT, zR = body_drag(params, L)
    Nf = N.astype(float)
    D_red = D - B * B / (A + zT)
    if np.any(D_red <= 0):
        raise FlagellaError("the propulsion matrix is not positive definite (D − B²/(A+ζ_T) ≤ 0)")
    load = 1.0 / (Nf * (1.0 / D_red + 1.0 / zR))
    mot = params.motor if motor is None else motor
    if not hasattr(mot, "operating_point"):
        raise FlagellaError(f"motor must be a MotorCurve or ConstantSpeedMotor, got {type(mot).__name__}")
    wm, tm = mot.operating_point(load)
    # PMF family: the scaled curve meets the (homogeneous) load line at s times the unscaled point
    wm, tm = wm * scale, tm * scale
    wf = wm / (1.0 + D_red / zR)
    Wb = wm - wf
    U = B * wf / (A + zT)
    return SwimResult(U, wf, Wb, wm, tm, N, L, zT, zR, A, B, D, mot)


def motor_free_ratios(
    params: SwimmerParams, *, n_flagella=1, body_length=None, bundle=DEFAULT_BUNDLE, **bundle_kwargs
) -> tuple[np.ndarray, np.ndarray]:
    """Ratios fixed by the hydrodynamics alone, whatever the motor (vectorised like :func:`swim`).

    Returns
    -------
    (speed_per_turn, body_ratio)
        ``2πU/ω_f = 2πB/(A + ζ_T)`` in m per bundle turn, and ``Ω_b/ω_f = D_red/ζ_R`` (dimensionless).
    """
    r = swim(
        params,
        n_flagella=n_flagella,
        body_length=body_length,
        bundle=bundle,
        motor=ConstantSpeedMotor(1.0),
        **bundle_kwargs,
    )
    return 2 * np.pi * r.speed / r.bundle_rate, r.body_rate / r.bundle_rate


def torque_from_body_rotation(params: SwimmerParams, body_rate, body_length=None) -> np.ndarray:
    """Total motor torque ``N τ_m = ζ_R Ω_b`` (N·m) implied by a measured body rotation (rad/s).

    Only the body's rotational drag enters (torque balance on the body), not the flagella or the motor.
    """
    w = check_finite_array("body_rate", body_rate, positive=True)
    return body_drag(params, body_length)[1] * w


def calibrate_pmf(
    params: SwimmerParams,
    target_body_rate: float,
    *,
    n_flagella: int = 4,
    body_length: float | None = None,
    bundle=DEFAULT_BUNDLE,
    **bundle_kwargs,
) -> float:
    """PMF factor ``s`` on ``params.motor`` (stall torque, knee and zero-load speed together) that makes
    the cell counter-rotate its body at ``target_body_rate`` (rad/s).

    The body rate measures the total motor torque (:func:`torque_from_body_rotation`), so this calibrates
    the motor on a torque, leaving speed and bundle rate as predictions. Every rate is proportional to
    ``s`` in this family, hence ``s = target / Ω_b(s = 1)``; the result is checked by solving again.

    Raises
    ------
    FlagellaError
        A non-positive target, a motor that is not a :class:`~labkit.flagella.motor.MotorCurve`, or a
        check solve that misses the target (a motor model that is not homogeneous).
    """
    target = check_positive("target_body_rate", target_body_rate)
    if not isinstance(params.motor, MotorCurve):
        raise FlagellaError(f"params.motor must be a MotorCurve, got {type(params.motor).__name__}")
    model = bundle_model(params, bundle, **bundle_kwargs)
    base = swim(params, n_flagella=n_flagella, body_length=body_length, bundle=model)
    s = target / float(base.body_rate)
    check = swim(
        params, n_flagella=n_flagella, body_length=body_length, bundle=model, motor=params.motor.scaled(s)
    )
    if not abs(float(check.body_rate) / target - 1) < 1e-9:  # pragma: no cover - guards the algebra
        raise FlagellaError(f"PMF calibration missed target_body_rate={target:g} rad/s (factor {s:g})")
    return float(s)
