"""Typed errors of :mod:`labkit.flagella` (all subclasses of :class:`ValueError`)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["FlagellaError", "check_finite_array", "check_positive"]


class FlagellaError(ValueError):
    """Bad input to a :mod:`labkit.flagella` function; the message names the field and its value."""


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return ``float(value)`` if finite and positive (or zero when ``allow_zero``), else raise.

    Raises
    ------
    FlagellaError
        If ``value`` is not a real number, is NaN/inf, or is (strictly) negative / zero.
    """
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise FlagellaError(f"{name} must be a real number, got {value!r}") from exc
    if not math.isfinite(x):
        raise FlagellaError(f"{name} must be finite, got {value!r}")
    if x < 0 or (x == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise FlagellaError(f"{name} must be {bound}, got {value!r}")
    return x


def check_finite_array(name: str, value: Iterable | np.ndarray, *, positive: bool = False) -> np.ndarray:
    """``value`` as a float64 array; :class:`FlagellaError` on NaN/inf (or on ≤ 0 if ``positive``)."""
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise FlagellaError(f"{name} must be finite everywhere, got non-finite values in {name}")
    if positive and np.any(arr <= 0):
        bad = arr[arr <= 0].ravel()[0]
        raise FlagellaError(f"{name} must be positive, got {bad!r}")
    return arr
