"""How robust is the U(L) result? Speed change over a length range, and a sweep over model variants.

:func:`length_change` is the headline number of Part III: the percent change of the swimming speed from
the shortest to the longest cell of a length range, for a given flagellar-number law N(L).
:func:`sensitivity_sweep` recomputes it (for N(L) and for N = 1) under variants of the motor, the
geometry, the N(L) law and the bundle model, so the book can quote a band instead of one number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import FlagellaError, check_finite_array
from .motor import ConstantSpeedMotor, MotorCurve
from .params import SwimmerParams
from .population import flagella_number
from .swim import DEFAULT_BUNDLE, swim

__all__ = ["SweepRow", "Variant", "length_change", "sensitivity_sweep"]


def length_change(
    params: SwimmerParams,
    lengths,
    *,
    law: Callable[[np.ndarray], np.ndarray] | None = None,
    bundle=DEFAULT_BUNDLE,
    motor: MotorCurve | ConstantSpeedMotor | None = None,
) -> tuple[float, np.ndarray]:
    """Percent change of U from ``lengths[0]`` to ``lengths[-1]`` and the speeds (m/s) on the grid.

    Parameters
    ----------
    lengths:
        Increasing body lengths in m.
    law:
        ``N(L)`` for ``L`` in m (integer array); ``None`` for one flagellum.
    bundle, motor:
        As in :func:`~labkit.flagella.swim.swim`.
    """
    L = check_finite_array("lengths", lengths, positive=True)
    if L.ndim != 1 or len(L) < 2 or np.any(np.diff(L) <= 0):
        raise FlagellaError("lengths must be an increasing 1-D array of at least 2 lengths (m)")
    n = np.ones(L.shape, dtype=np.int64) if law is None else np.asarray(law(L))
    u = swim(params, n_flagella=n, body_length=L, bundle=bundle, motor=motor).speed
    return float(100.0 * (u[-1] / u[0] - 1.0)), u


@dataclass(frozen=True)
class Variant:
    """One row of a sensitivity sweep.

    ``changes`` are :class:`~labkit.flagella.params.SwimmerParams` fields to replace; ``law`` replaces
    the N(L) law; ``motor`` maps the (changed) parameters to a motor to use instead of ``params.motor``;
    ``bundle`` maps the (changed) parameters to a bundle model replacing the sweep's.
    ``geometry`` is True when the change alters the flagellum (a tabulated bundle must be recomputed).
    """

    label: str
    changes: dict = field(default_factory=dict)
    law: Callable[[np.ndarray], np.ndarray] | None = None
    motor: Callable[[SwimmerParams], MotorCurve | ConstantSpeedMotor] | None = None
    bundle: Callable[[SwimmerParams], object] | None = None

    @property
    def geometry(self) -> bool:
        """Whether the variant changes the flagellar helix."""
        return bool(set(self.changes) & {"pitch", "helix_radius", "contour_length", "filament_radius"})


@dataclass(frozen=True)
class SweepRow:
    """Result of one variant: percent changes of U over the length range for N(L) and for N = 1."""

    label: str
    change_multi: float
    change_uni: float

    @property
    def compensation(self) -> float:
        """Share of the uniflagellar loss that N(L) removes, ``1 − change_multi/change_uni``."""
        return 1.0 - self.change_multi / self.change_uni


def _default_law(L: np.ndarray) -> np.ndarray:
    return flagella_number(L)


def sensitivity_sweep(
    params: SwimmerParams,
    variants: Sequence[Variant],
    lengths,
    *,
    bundle: Callable[[SwimmerParams, int], object] | str = DEFAULT_BUNDLE,
    law: Callable[[np.ndarray], np.ndarray] | None = None,
) -> list[SweepRow]:
    """:func:`length_change` for N(L) and N = 1 under every variant.

    ``bundle`` is a model name, or a factory ``(params, n_max) -> model`` called once per variant that
    changes the geometry (and once for all others), e.g. a cached
    :func:`~labkit.flagella.bundle.stokeslet_bundle`.
    """
    base_law = _default_law if law is None else law
    L = check_finite_array("lengths", lengths, positive=True)
    cache: dict[int, object] = {}

    def model_for(p: SwimmerParams, n_max: int, geometry: bool):
        if isinstance(bundle, str):
            return bundle
        if geometry:
            return bundle(p, n_max)
        if n_max not in cache:
            cache[n_max] = bundle(params, n_max)
        return cache[n_max]

    rows = []
    for v in variants:
        p = params.replace(**v.changes) if v.changes else params
        lw = base_law if v.law is None else v.law
        n_max = int(np.max(lw(L)))
        m = model_for(p, n_max, v.geometry) if v.bundle is None else v.bundle(p)
        mot = None if v.motor is None else v.motor(p)
        multi, _ = length_change(p, L, law=lw, bundle=m, motor=mot)
        uni, _ = length_change(p, L, bundle=m, motor=mot)
        rows.append(SweepRow(v.label, multi, uni))
    return rows
