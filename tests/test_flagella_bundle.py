import math

import numpy as np
import pytest

from labkit.flagella import (
    FlagellaError,
    IndependentBundle,
    ThickHelixBundle,
    bundle_helices,
    bundle_resistance_matrix,
    ecoli,
    stokeslet_bundle,
    swim,
)

P = ecoli()


def test_independent_bundle_is_linear_in_n():
    A1, B1, D1 = IndependentBundle(P).propulsion(1)
    A, B, D = IndependentBundle(P).propulsion(np.array([1, 2, 5]))
    assert np.allclose(A, A1 * np.array([1, 2, 5]))
    assert np.allclose(B, B1 * np.array([1, 2, 5]))
    assert np.allclose(D, D1 * np.array([1, 2, 5]))


def test_thick_bundle_is_strongly_sublinear():
    A, B, D = ThickHelixBundle(P).propulsion(np.arange(1, 11))
    assert A[0] == pytest.approx(P.helix().propulsion_matrix(P.viscosity)[0])
    assert np.all(np.diff(D) > 0) and D[-1] / D[0] < 2.0


def test_cable_geometry_keeps_filaments_apart():
    hs = bundle_helices(P, 7)
    lines = [h.polyline(24) for h in hs]
    dmin = min(
        np.min(np.linalg.norm(lines[i][:, None] - lines[j][None], axis=2)) for i in range(7) for j in range(i)
    )
    assert dmin > 2 * P.filament_radius
    ax = [h.axial_length for h in hs]
    assert np.allclose(ax, ax[0])  # all filaments span the same axial length


def test_stokeslet_single_helix_converges_and_differs_from_rft():
    M24 = bundle_resistance_matrix(P, 1, points_per_turn=24)
    M48 = bundle_resistance_matrix(P, 1, points_per_turn=48)
    for i, j in [(2, 2), (2, 5), (5, 5)]:
        assert M24[i, j] == pytest.approx(M48[i, j], rel=0.02)
    A, B, D = P.helix().propulsion_matrix(P.viscosity)
    assert M48[5, 5] == pytest.approx(D, rel=0.05)  # rotation: local drag dominates
    assert M48[2, 2] < 0.8 * A  # translation: interactions between turns lower the drag
    assert M48[2, 5] > 0  # left-handed: same sign convention as RFT


def test_spread_bundle_screens_thrust():
    M1 = bundle_resistance_matrix(P, 1, points_per_turn=12)
    M6 = bundle_resistance_matrix(P, 6, points_per_turn=12, arrangement="spread")
    assert M6[2, 5] < M1[2, 5]  # a cage of helices barely pushes more than one helix


def test_cache_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    a = stokeslet_bundle(P, 3, points_per_turn=8)
    assert all(s > 0 for s in a.seconds.values())
    b = stokeslet_bundle(P, 3, points_per_turn=8)
    assert all(s == 0 for s in b.seconds.values())
    for n in (1, 2, 3):
        assert np.array_equal(a.matrices[n], b.matrices[n])
    assert len(list((tmp_path / "flagella").glob("bundle_*.json"))) == 3
    r = swim(P, n_flagella=np.array([1, 3]), bundle=b)
    assert np.all(np.abs(r.residuals()["force"]) < 1e-12)
    with pytest.raises(FlagellaError, match="n_max"):
        b.propulsion(4)


def test_extendable_table_computes_missing_n_once(tmp_path, monkeypatch):
    from labkit.flagella import bundle_model

    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    m = bundle_model(P, "stokeslet", points_per_turn=8)
    assert m.n_max == 0 and m.extend is not None
    A, B, D = m.propulsion(np.array([2, 1, 2]))
    assert sorted(m.matrices) == [1, 2] and A[0] == A[2] and A[1] < A[0]
    fixed = stokeslet_bundle(P, 2, points_per_turn=8)
    assert all(s == 0 for s in fixed.seconds.values())  # the extension wrote the disk cache
    assert np.array_equal(fixed.matrices[2], m.matrices[2])
    with pytest.raises(FlagellaError, match="n_max"):
        fixed.propulsion(3)


def test_bad_bundle_inputs():
    with pytest.raises(FlagellaError, match="arrangement"):
        bundle_helices(P, 2, arrangement="braid")
    with pytest.raises(FlagellaError, match="spacing"):
        bundle_helices(P, 2, spacing=1e-9)
    with pytest.raises(FlagellaError, match="eps_factor"):
        bundle_resistance_matrix(P, 1, eps_factor=-1.0)
    with pytest.raises(FlagellaError, match="points_per_turn"):
        bundle_resistance_matrix(P, 1, points_per_turn=2)
    assert math.isfinite(bundle_resistance_matrix(P, 2, points_per_turn=8)[2, 2])


def test_convergence_study_richardson_on_a_known_sequence(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    from labkit.flagella import convergence_study

    c = convergence_study(P, 1, (8, 16, 32))
    assert c.values.shape == (3, 3) and np.all(c.order >= 0.5) and np.all(c.order <= 4)
    # the extrapolated limit lies beyond the finest value, on the side the sequence is heading
    step = c.values[-1] - c.values[-2]
    assert np.all(np.sign(c.limit - c.values[-1]) == np.sign(step))
    assert np.all(np.abs(c.error(32)) < np.abs(c.error(8)))
    # the formula on sequences with a known limit and order
    from labkit.flagella.bundle import richardson

    h = np.array([1.0, 0.5, 0.25])
    p, lim = richardson(np.stack([2 + 0.3 * h**2, -1 + 0.7 * h], axis=1))
    assert p == pytest.approx([2.0, 1.0]) and lim == pytest.approx([2.0, -1.0])
    with pytest.raises(FlagellaError, match="resolutions"):
        convergence_study(P, 1, (8, 16))
    with pytest.raises(FlagellaError, match="resolutions"):
        convergence_study(P, 1, (8, 16, 24))
    with pytest.raises(FlagellaError, match="points_per_turn"):
        c.error(12)


def test_bundle_that_does_not_fit_its_filaments():
    with pytest.raises(FlagellaError, match="too thick"):
        bundle_helices(P, 19, spacing=0.1e-6)
    with pytest.raises(FlagellaError, match="n_flagella"):
        bundle_helices(P, 0)


def test_growing_bundle_uses_the_length_of_each_n():
    from labkit.flagella import GrowingBundle, lisevich_bundle_length

    assert lisevich_bundle_length(1) == pytest.approx(5.3983e-6)
    assert lisevich_bundle_length(10) == pytest.approx((5.3983 + 3.6564) * 1e-6)
    g = GrowingBundle(P)
    A, B, D = g.propulsion(np.array([1, 4, 4, 8]))
    for i, n in enumerate([1, 4, 4, 8]):
        ref = ThickHelixBundle(P.replace(contour_length=float(lisevich_bundle_length(n)))).propulsion(n)
        assert (A[i], B[i], D[i]) == pytest.approx(tuple(float(x) for x in ref), rel=1e-12)
    r = swim(P, n_flagella=np.array([2, 6]), bundle=g)
    assert np.all(np.abs(r.residuals()["force"]) < 1e-12)
    with pytest.raises(FlagellaError, match="n_flagella"):
        g.propulsion(0)
