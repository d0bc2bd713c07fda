"""Part III: swimming of uni- and multiflagellar bacteria (numpy/scipy only; importing never loads torch).

Reproduces the mechanism of Kamdar, Ghosh et al. (PNAS 120:e2310952120, 2023; arXiv 2212.13632):
peritrichous bacteria keep their speed as they grow because N(L) flagella share the load, so each motor
spins faster; a uniflagellar cell slows down with size.

Modules
-------
:mod:`~labkit.flagella.params`
    :func:`ecoli` — the E. coli parameter set with sources (:class:`SwimmerParams`), its motor calibrated
    on the measured body rotation (:func:`calibrated_motor`).
:mod:`~labkit.flagella.data`
    Published measurements as package data: Darnton et al. 2007, Lisevich et al. 2024.
:mod:`~labkit.flagella.rft`
    Resistive force theory: :class:`Helix` and its propulsion matrix ``(A, B, D)``.
:mod:`~labkit.flagella.body`
    :func:`spheroid_drag` (exact prolate spheroid), :func:`cylinder_drag`.
:mod:`~labkit.flagella.motor`
    :class:`MotorCurve` (knee-type torque–speed curve), :class:`ConstantSpeedMotor`.
:mod:`~labkit.flagella.swim`
    :func:`swim` — force- and torque-free balance with the motor curve, vectorised (default bundle:
    the regularized-Stokeslet cable, :data:`DEFAULT_BUNDLE`);
    :func:`motor_free_ratios`, :func:`torque_from_body_rotation`, :func:`calibrate_pmf`.
:mod:`~labkit.flagella.bundle`
    N-flagella bundle models: regularized Stokeslets (the default), thick helix, independent.
:mod:`~labkit.flagella.stokeslets`
    Regularized Stokeslets and Stokeslet segments, :func:`resistance_matrix`.
:mod:`~labkit.flagella.validation`
    Sphere and slender-spheroid checks of the Stokeslet solvers (cached on disk).
:mod:`~labkit.flagella.sensitivity`
    :func:`length_change` (the U(L) headline number) and :func:`sensitivity_sweep`.
:mod:`~labkit.flagella.population`
    The simulated population experiment, binned U(L), slope fit.

Units: SI everywhere (m, s, N, Pa·s, rad/s); :func:`hz` and :func:`rad_per_s` convert rates.
"""

from .body import cylinder_drag, spheroid_drag, spheroid_resistance_functions
from .bundle import (
    BUNDLE_MODELS,
    DEFAULT_POINTS_PER_TURN,
    ConvergenceStudy,
    GrowingBundle,
    IndependentBundle,
    StokesletBundle,
    ThickHelixBundle,
    bundle_helices,
    bundle_model,
    bundle_resistance_matrix,
    convergence_study,
    lisevich_bundle_length,
    stokeslet_bundle,
)
from .data import StrainData, load_darnton2007, load_lisevich2024
from .errors import FlagellaError
from .motor import ConstantSpeedMotor, MotorCurve, hz, rad_per_s
from .params import (
    DARNTON_2007,
    LITERATURE_MOTOR,
    SOURCES,
    Measurement,
    SwimmerParams,
    calibrated_motor,
    ecoli,
)
from .population import (
    Population,
    SlopeFit,
    binned_mean,
    fit_slope,
    flagella_number,
    population_experiment,
    sample_lengths,
)
from .rft import Helix, drag_coefficients
from .sensitivity import SweepRow, Variant, length_change, sensitivity_sweep
from .stokeslets import (
    SQRT_E,
    fibonacci_sphere,
    filament_resistance_matrix,
    mobility_matrix,
    oseen_tensor,
    resistance_matrix,
    solve_mobility,
    stokeslet_tensor,
)
from .swim import (
    DEFAULT_BUNDLE,
    SwimResult,
    body_drag,
    calibrate_pmf,
    motor_free_ratios,
    swim,
    torque_from_body_rotation,
)
from .validation import SphereSweep, sphere_convergence, sphere_sizes, spheroid_centerline

__all__ = [
    "BUNDLE_MODELS",
    "ConvergenceStudy",
    "DARNTON_2007",
    "DEFAULT_BUNDLE",
    "DEFAULT_POINTS_PER_TURN",
    "LITERATURE_MOTOR",
    "SOURCES",
    "SQRT_E",
    "ConstantSpeedMotor",
    "FlagellaError",
    "GrowingBundle",
    "Helix",
    "IndependentBundle",
    "Measurement",
    "MotorCurve",
    "Population",
    "SlopeFit",
    "SphereSweep",
    "StrainData",
    "StokesletBundle",
    "SweepRow",
    "SwimResult",
    "SwimmerParams",
    "ThickHelixBundle",
    "Variant",
    "binned_mean",
    "body_drag",
    "bundle_helices",
    "bundle_model",
    "bundle_resistance_matrix",
    "calibrate_pmf",
    "calibrated_motor",
    "convergence_study",
    "cylinder_drag",
    "drag_coefficients",
    "ecoli",
    "fibonacci_sphere",
    "filament_resistance_matrix",
    "fit_slope",
    "flagella_number",
    "hz",
    "length_change",
    "lisevich_bundle_length",
    "load_darnton2007",
    "load_lisevich2024",
    "mobility_matrix",
    "motor_free_ratios",
    "oseen_tensor",
    "population_experiment",
    "rad_per_s",
    "resistance_matrix",
    "sample_lengths",
    "sensitivity_sweep",
    "sphere_convergence",
    "sphere_sizes",
    "spheroid_centerline",
    "spheroid_drag",
    "solve_mobility",
    "spheroid_resistance_functions",
    "stokeslet_bundle",
    "stokeslet_tensor",
    "swim",
    "torque_from_body_rotation",
]
