import numpy as np
import pytest

from labkit.flagella import (
    ConstantSpeedMotor,
    FlagellaError,
    Variant,
    ecoli,
    flagella_number,
    length_change,
    sensitivity_sweep,
    swim,
)

L = np.linspace(1.5, 6.0, 10) * 1e-6


def test_length_change_matches_swim_endpoints():
    p = ecoli()
    pct, u = length_change(p, L, law=flagella_number)
    ref = swim(p, body_length=L[[0, -1]], n_flagella=flagella_number(L[[0, -1]])).speed
    assert pct == pytest.approx(100 * (ref[1] / ref[0] - 1), rel=1e-12)
    assert u.shape == L.shape
    pct1, _ = length_change(p, L)
    assert pct1 < -15 < pct  # one flagellum slows more than N(L)


def test_sweep_rows_and_pmf_invariance():
    p = ecoli()
    rows = sensitivity_sweep(
        p,
        [
            Variant("base"),
            Variant("pmf x0.5", motor=lambda q: q.motor.scaled(0.5)),
            Variant("fixed", motor=lambda q: ConstantSpeedMotor(500.0)),
            Variant("wide", {"body_width": 1.0e-6}),
            Variant("N = 8", law=lambda x: np.full(x.shape, 8)),
        ],
        L,
    )
    base, pmf, fixed, wide, n8 = rows
    # a PMF change rescales every speed by the same factor: the percent changes are identical
    assert pmf.change_multi == pytest.approx(base.change_multi, abs=1e-9)
    assert pmf.change_uni == pytest.approx(base.change_uni, abs=1e-9)
    assert fixed.change_multi != pytest.approx(base.change_multi, abs=0.1)
    assert wide.change_uni < base.change_uni  # a wider body loses more
    assert n8.change_multi < base.change_multi  # a fixed N gives no compensation with length
    assert 0 < base.compensation < 1
    assert not Variant("w", {"body_width": 1e-6}).geometry and Variant("r", {"helix_radius": 1e-7}).geometry


def test_sweep_rebuilds_a_tabulated_bundle_for_geometry_variants():
    calls = []

    def factory(q, n_max):
        calls.append((q.helix_radius, n_max))
        return "thick"

    sensitivity_sweep(
        ecoli(), [Variant("a"), Variant("b"), Variant("r", {"helix_radius": 0.22e-6})], L, bundle=factory
    )
    assert calls == [(0.2e-6, 8), (0.22e-6, 8)]  # once for the base geometry, once for the variant


def test_bad_lengths():
    with pytest.raises(FlagellaError, match="lengths"):
        length_change(ecoli(), [3e-6, 2e-6])
    with pytest.raises(FlagellaError, match="lengths"):
        length_change(ecoli(), [2e-6, float("nan")])
    with pytest.raises(FlagellaError, match="lengths"):
        length_change(ecoli(), [-1e-6, 2e-6])
