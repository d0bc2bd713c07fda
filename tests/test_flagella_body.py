import math

import numpy as np
import pytest

from labkit.flagella import (
    FlagellaError,
    cylinder_drag,
    fibonacci_sphere,
    resistance_matrix,
    spheroid_drag,
    spheroid_resistance_functions,
)

MU = 1e-3


def test_sphere_limit_is_exact():
    a = 1e-6
    zt, zr, ztp, zrp = spheroid_drag(2 * a, 2 * a, MU, transverse=True)
    assert zt == pytest.approx(6 * math.pi * MU * a, rel=1e-12)
    assert ztp == pytest.approx(6 * math.pi * MU * a, rel=1e-12)
    assert zr == pytest.approx(8 * math.pi * MU * a**3, rel=1e-12)
    assert zrp == pytest.approx(8 * math.pi * MU * a**3, rel=1e-12)


def test_resistance_functions_continuous_across_series_switch_and_tend_to_one():
    e = np.array([0.0999999, 0.1000001])
    vals = np.array(spheroid_resistance_functions(e))
    assert np.allclose(vals[:, 0], vals[:, 1], rtol=1e-6)
    small = np.array(spheroid_resistance_functions([1e-6]))
    assert np.allclose(small, 1.0, atol=1e-10)


def test_axial_formula_against_classic_expression():
    # Chwang & Wu: F = 16πμ a e³ / [(1+e²) ln((1+e)/(1−e)) − 2e] U
    L, w = 5e-6, 1e-6
    a = L / 2
    e = math.sqrt(1 - (w / L) ** 2)
    F = 16 * math.pi * MU * a * e**3 / ((1 + e * e) * math.log((1 + e) / (1 - e)) - 2 * e)
    T = 32 / 3 * math.pi * MU * a * (w / 2) ** 2 * e**3 / (2 * e - (1 - e * e) * math.log((1 + e) / (1 - e)))
    zt, zr = spheroid_drag(L, w, MU)
    assert zt == pytest.approx(F, rel=1e-10)
    assert zr == pytest.approx(T, rel=1e-10)


def test_spheroid_against_regularized_stokeslet_surface():
    # an independent numerical oracle: blobs on a 2:1 spheroid surface (map of a Fibonacci sphere)
    pts = fibonacci_sphere(800)
    a, b = 2.0, 1.0
    pts = pts * np.array([b, b, a])
    h = math.sqrt(4 * math.pi * a * b / 800)  # rough area-based spacing
    R = resistance_matrix(pts, 0.35 * h, 1.0)
    zt, zr, ztp, zrp = spheroid_drag(2 * a, 2 * b, 1.0, transverse=True)
    assert R[2, 2] == pytest.approx(zt, rel=0.03)
    assert R[0, 0] == pytest.approx(ztp, rel=0.03)
    assert R[5, 5] == pytest.approx(zr, rel=0.05)


def test_drag_grows_with_length_and_cylinder_exceeds_inscribed_spheroid():
    L = np.array([1.5, 2.5, 4.0, 6.0]) * 1e-6
    zt, zr = spheroid_drag(L, 0.88e-6, MU)
    assert np.all(np.diff(zt) > 0) and np.all(np.diff(zr) > 0)
    ct, cr = cylinder_drag(L, 0.88e-6, MU)
    # a body containing another has at least its drag (Hill & Power bound)
    assert np.all(ct > zt) and np.all(cr > zr)


@pytest.mark.parametrize(
    "args, field",
    [
        ((0.0, 1e-6), "length"),
        ((2e-6, -1e-6), "width"),
        ((float("nan"), 1e-6), "length"),
        ((1e-6, 2e-6), "width"),
    ],
)
def test_bad_body_sizes(args, field):
    with pytest.raises(FlagellaError, match=field):
        spheroid_drag(*args, MU)


def test_bad_viscosity():
    with pytest.raises(FlagellaError, match="mu"):
        spheroid_drag(2e-6, 1e-6, float("nan"))
