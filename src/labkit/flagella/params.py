"""The E. coli parameter set, with the source and confidence of every value.

Confidence tags follow the project's reference notes: **[V]** checked in the named primary source
(abstract, page excerpt or public code), **[S]** checked in a named secondary source that restates the
primary's value (the primary's own table was not read), **[T]** a third-party note, **[R]** recalled from
the literature and not re-checked here, **[C]** a modelling choice. All values are SI.

The secondary source for Darnton et al. 2007 is Das & Lauga, "Computing the motor torque of
*Escherichia coli*", arXiv:1806.09694v1 (2018): §2.1 ("The cell body is 2.5 µm long and 0.88 µm wide
... the radius of the helix is 0.2 µm ... 29 µm/s and 2π × 131 Hz"), §3 ("identical pitch,
λ = 2.22 µm"), Table II (body rotation 23 Hz) and Table V (motor-torque literature values).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, fields, replace

from .data import Measurement, load_darnton2007
from .errors import FlagellaError, check_positive
from .motor import MotorCurve
from .rft import DRAG_METHODS, Helix

__all__ = [
    "DARNTON_2007",
    "LITERATURE_MOTOR",
    "SOURCES",
    "Measurement",
    "SwimmerParams",
    "calibrated_motor",
    "ecoli",
]

#: Source and confidence of each default value of :func:`ecoli`.
SOURCES: dict[str, str] = {
    "body_length": "2.5 µm, Darnton et al. 2007 via Das & Lauga 2018 §2.1 [S]; the ± 0.6 µm spread [R]",
    "body_width": "0.88 µm, Darnton et al. 2007 via Das & Lauga 2018 §2.1 [S]; the ± 0.09 µm spread [R]",
    "pitch": "2.22 µm, Darnton et al. 2007 via Das & Lauga 2018 §3 [S]; the ± 0.20 µm spread [R] "
    "(2.3 µm in Darnton's introduction, after Turner et al. 2000 [V])",
    "helix_radius": "0.2 µm (helix diameter 0.4 µm), Darnton et al. 2007 introduction "
    "after Turner et al. 2000 [V]; R = 0.2 µm also in Das & Lauga 2018 §2.1 [S]",
    "contour_length": "7.3 ± 2.3 µm, Darnton et al. 2007 Table 1 [R] "
    "(Das & Lauga 2018 §2.1 give only '∼7 µm' [S])",
    "filament_radius": "10 nm (diameter ≈ 20 nm), as used in croelmiyn/RFTMultiflagella [V code]",
    "viscosity": "1 mPa·s, water at room temperature (RFTMultiflagella default) [V code]; "
    "Darnton's motility buffer: 0.93 cP, Das & Lauga 2018 §3.1 [S]",
    "stall_torque": "1300 pN·nm near stall at room temperature, Yuan & Berg review abstract [V] "
    "(1260 ± 190 pN·nm, Reid et al. 2006, via Das & Lauga 2018 Table V [S])",
    "knee_rate": "170 Hz at ~23 °C, Chen & Berg 2000 [R] (not found in any source searched); "
    "the knee shape itself [V]",
    "motor_calibration": "stall torque, knee and zero-load speed scaled by one PMF factor so that the "
    "book's E. coli (L = 2.5 µm, N = 4, default bundle model: the Stokeslet cable at 64 segments per "
    "turn) counter-rotates its body at Darnton's measured 23 Hz [S] [C]",
    "zero_load_rate": "~330 Hz at room temperature, Yuan & Berg review abstract [V]",
    "chirality": "left-handed normal filament, Darnton et al. 2007 introduction [V]",
    "drag_method": "Lighthill (1976) RFT coefficients, as in RFTMultiflagella [C]",
    "body_shape": "prolate spheroid of the measured length and width [C]",
}


#: Swimming *E. coli* of Darnton et al. 2007 (J. Bacteriol. 189:1756; motility buffer, 0.93 cP), read from
#: the package data file ``darnton2007_swimming.csv`` (:func:`~labkit.flagella.data.load_darnton2007`).
#: The **means** are confirmed **[S]** by Das & Lauga 2018 (arXiv:1806.09694v1, §2.1, Table II); the
#: **standard deviations** are **[R]**; the 3.4 flagella per cell is **[T]**.
DARNTON_2007: dict[str, Measurement] = load_darnton2007()

#: The literature motor at room temperature (stall 1300 pN·nm and zero load 330 Hz [V], knee 170 Hz [R]),
#: before calibration.
LITERATURE_MOTOR = MotorCurve(1300e-21, 2 * math.pi * 170.0, 2 * math.pi * 330.0)


@dataclass(frozen=True)
class SwimmerParams:
    """Geometry, fluid and motor of a flagellated rod-shaped bacterium (SI units).

    Attributes
    ----------
    body_length, body_width:
        Cell body length and width, m.
    pitch, helix_radius, contour_length, filament_radius:
        Flagellar helix pitch, helix radius, contour length and filament cross-section radius, m.
    viscosity:
        Dynamic viscosity μ, Pa·s.
    motor:
        Torque–speed curve of one motor (:class:`~labkit.flagella.motor.MotorCurve`); the literature
        curve :data:`LITERATURE_MOTOR` when built directly, the calibrated one from :func:`ecoli`.
    chirality:
        ``"left"`` or ``"right"`` handed filament.
    drag_method:
        RFT coefficients, ``"lighthill"`` or ``"gray-hancock"``.
    body_shape:
        ``"spheroid"`` (exact) or ``"cylinder"`` (Tirado–García de la Torre fit).

    Raises
    ------
    FlagellaError
        A non-positive / non-finite size or viscosity, ``filament_radius ≥ helix_radius``, a width above
        the length of a spheroidal body, or an unknown option.
    """

    body_length: float = 2.5e-6
    body_width: float = 0.88e-6
    pitch: float = 2.22e-6
    helix_radius: float = 0.2e-6
    contour_length: float = 7.3e-6
    filament_radius: float = 10e-9
    viscosity: float = 1.0e-3
    motor: MotorCurve = field(default_factory=lambda: LITERATURE_MOTOR)
    chirality: str = "left"
    drag_method: str = "lighthill"
    body_shape: str = "spheroid"

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.type in ("float", float):
                object.__setattr__(self, f.name, check_positive(f.name, getattr(self, f.name)))
        if not isinstance(self.motor, MotorCurve):
            raise FlagellaError(f"motor must be a MotorCurve, got {type(self.motor).__name__}")
        if self.drag_method not in DRAG_METHODS:
            raise FlagellaError(f"drag_method must be one of {DRAG_METHODS}, got {self.drag_method!r}")
        if self.body_shape not in ("spheroid", "cylinder"):
            raise FlagellaError(f"body_shape must be 'spheroid' or 'cylinder', got {self.body_shape!r}")
        if self.body_shape == "spheroid" and self.body_width > self.body_length:
            raise FlagellaError(
                f"body_width ({self.body_width:g} m) exceeds body_length ({self.body_length:g} m); "
                "a spheroidal body must be prolate"
            )
        if self.contour_length < self.pitch:
            raise FlagellaError(
                f"contour_length ({self.contour_length:g} m) is shorter than one pitch ({self.pitch:g} m)"
            )
        self.helix()  # validates the helix geometry (filament thinner than the helix, chirality)

    def helix(self, filament_radius: float | None = None) -> Helix:
        """The flagellar :class:`~labkit.flagella.rft.Helix` (optionally with another filament radius)."""
        return Helix(
            self.pitch,
            self.helix_radius,
            self.contour_length,
            self.filament_radius if filament_radius is None else filament_radius,
            self.chirality,
        )

    def replace(self, **changes) -> SwimmerParams:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def table(self) -> list[tuple[str, str, str]]:
        """Rows ``(quantity, value in display units, source)`` for the book.

        The motor rows give the literature value and, after "→", this parameter set's value.
        """
        m, lit = self.motor, LITERATURE_MOTOR
        factor = m.stall_torque / lit.stall_torque
        hz = 2 * math.pi
        rows = [
            ("body length", f"{self.body_length * 1e6:.2f} µm", SOURCES["body_length"]),
            ("body width", f"{self.body_width * 1e6:.2f} µm", SOURCES["body_width"]),
            ("helix pitch", f"{self.pitch * 1e6:.2f} µm", SOURCES["pitch"]),
            ("helix radius", f"{self.helix_radius * 1e6:.2f} µm", SOURCES["helix_radius"]),
            ("contour length", f"{self.contour_length * 1e6:.1f} µm", SOURCES["contour_length"]),
            ("filament radius", f"{self.filament_radius * 1e9:.0f} nm", SOURCES["filament_radius"]),
            ("viscosity", f"{self.viscosity * 1e3:.2f} mPa·s", SOURCES["viscosity"]),
            (
                "stall torque",
                f"{lit.stall_torque * 1e21:.0f} → {m.stall_torque * 1e21:.0f} pN·nm",
                SOURCES["stall_torque"],
            ),
            ("knee speed", f"{lit.knee_rate / hz:.0f} → {m.knee_rate / hz:.0f} Hz", SOURCES["knee_rate"]),
            (
                "zero-load speed",
                f"{lit.zero_load_rate / hz:.0f} → {m.zero_load_rate / hz:.0f} Hz",
                SOURCES["zero_load_rate"],
            ),
            ("motor PMF factor", f"{factor:.3f}", SOURCES["motor_calibration"]),
            ("chirality", self.chirality, SOURCES["chirality"]),
        ]
        return rows


@functools.lru_cache(maxsize=1)
def calibrated_motor() -> MotorCurve:
    """:data:`LITERATURE_MOTOR` scaled by the PMF factor that makes the book's *E. coli* (default
    geometry, L = 2.5 µm, N = 4, :data:`~labkit.flagella.swim.DEFAULT_BUNDLE`) counter-rotate its body at
    Darnton's measured rate (see :func:`~labkit.flagella.swim.calibrate_pmf`)."""
    from .swim import DEFAULT_BUNDLE, calibrate_pmf

    s = calibrate_pmf(SwimmerParams(), DARNTON_2007["body_rate"].mean, n_flagella=4, bundle=DEFAULT_BUNDLE)
    return LITERATURE_MOTOR.scaled(s)


def ecoli(*, calibrated: bool = True, **changes) -> SwimmerParams:
    """The *E. coli* parameter set (see :data:`SOURCES`), with optional overrides.

    By default the motor is :func:`calibrated_motor` (the data-consistent set); ``calibrated=False``
    keeps :data:`LITERATURE_MOTOR`. A ``motor`` in ``changes`` replaces either. Other overrides (e.g. a
    viscosity) keep the motor: the calibration is a property of the motor, made once at the default
    geometry.
    """
    if calibrated and "motor" not in changes:
        changes["motor"] = calibrated_motor()
    return SwimmerParams(**changes)
