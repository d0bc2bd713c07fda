import math

import numpy as np
import pytest

from labkit.flagella import FlagellaError, Helix, drag_coefficients, ecoli

MU = 1e-3


def helix(**kw):
    args = dict(pitch=2.22e-6, radius=0.2e-6, length=7.3e-6, filament_radius=1e-8)
    args.update(kw)
    return Helix(**args)


@pytest.mark.parametrize("method", ["lighthill", "gray-hancock"])
@pytest.mark.parametrize("chirality", ["left", "right"])
def test_closed_form_matches_integration_along_centerline(method, chirality):
    h = helix(chirality=chirality)
    A, B, D = h.propulsion_matrix(MU, method)
    R = h.rft_resistance_matrix(MU, method, n=2001)
    assert R[2, 2] == pytest.approx(A, rel=1e-6)
    assert R[2, 5] == pytest.approx(B, rel=1e-6)
    assert R[5, 2] == pytest.approx(B, rel=1e-6)
    assert R[5, 5] == pytest.approx(D, rel=1e-6)


def test_chirality_flips_sign_of_coupling_only():
    Al, Bl, Dl = helix(chirality="left").propulsion_matrix(MU)
    Ar, Br, Dr = helix(chirality="right").propulsion_matrix(MU)
    assert Bl > 0 > Br
    assert Bl == pytest.approx(-Br)
    assert (Al, Dl) == pytest.approx((Ar, Dr))


def test_right_handed_helix_turned_ccw_is_thrust_forward():
    # a right-handed screw turned by the right-hand rule about +z advances along +z:
    # it pushes fluid to -z, i.e. the force on the fluid along z is negative.
    R = helix(chirality="right").rft_resistance_matrix(MU, n=801)
    assert R[2, 5] < 0


def test_lighthill_coefficients_by_hand():
    h = helix()
    psi = math.atan(2 * math.pi * 0.2 / 2.22)
    q = 0.09 * 2.22e-6 / math.cos(psi)
    big = math.log(2 * q / 1e-8)
    xpar, xperp = h.drag_coefficients(MU)
    assert xpar == pytest.approx(2 * math.pi * MU / big)
    assert xperp == pytest.approx(4 * math.pi * MU / (big + 0.5))
    assert xperp / xpar == pytest.approx(1.769, abs=0.01)  # close to the classic ≈ 2 anisotropy
    gpar, gperp = drag_coefficients(MU, 1e-8, 2.22e-6, psi, "gray-hancock")
    assert gpar == pytest.approx(2 * math.pi * MU / (math.log(2 * 2.22e-6 / 1e-8) - 0.5))
    assert gperp == pytest.approx(4 * math.pi * MU / (math.log(2 * 2.22e-6 / 1e-8) + 0.5))


def test_ecoli_values_against_independent_script():
    # reference notes §2.2 [C]: A = 1.42e-8 N s/m, B = 7.9e-16 N s, D = 7.6e-22 N s m
    A, B, D = ecoli().helix().propulsion_matrix(MU)
    assert A == pytest.approx(1.42e-8, rel=0.01)
    assert B == pytest.approx(7.9e-16, rel=0.01)
    assert D == pytest.approx(7.6e-22, rel=0.01)


def test_geometry_helpers():
    h = helix()
    assert h.turns == pytest.approx(h.length * math.cos(h.pitch_angle) / h.pitch)
    pts, t = h.centerline(50)
    assert np.allclose(np.hypot(pts[:, 0], pts[:, 1]), 0.2e-6)
    assert np.allclose(np.linalg.norm(t, axis=1), 1.0)
    seg = np.linalg.norm(np.diff(h.polyline(24), axis=0), axis=1).sum()
    assert seg == pytest.approx(h.length, rel=1e-2)


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(pitch=0.0), "pitch"),
        (dict(radius=-1e-7), "radius"),
        (dict(length=float("nan")), "length"),
        (dict(filament_radius=0.3e-6), "filament_radius"),
        (dict(chirality="up"), "chirality"),
    ],
)
def test_bad_helix_is_rejected_with_field_name(kw, field):
    with pytest.raises(FlagellaError, match=field):
        helix(**kw)


def test_bad_method_and_viscosity():
    with pytest.raises(FlagellaError, match="method"):
        helix().propulsion_matrix(MU, method="magic")
    with pytest.raises(FlagellaError, match="mu"):
        helix().propulsion_matrix(0.0)
