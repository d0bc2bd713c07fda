import math

import numpy as np
import pytest

from labkit.flagella import (
    SQRT_E,
    FlagellaError,
    fibonacci_sphere,
    filament_resistance_matrix,
    mobility_matrix,
    oseen_tensor,
    resistance_matrix,
    spheroid_drag,
    stokeslet_tensor,
)
from labkit.flagella.stokeslets import segment_mobility_matrix, velocity


def sphere_errors(n, ratio=0.35):
    R = resistance_matrix(fibonacci_sphere(n), ratio * math.sqrt(4 * math.pi / n), 1.0)
    return abs(R[0, 0] / (6 * math.pi) - 1), abs(R[3, 3] / (8 * math.pi) - 1), R


def test_sphere_drag_within_half_percent_at_2000_points_and_converging():
    errs = [sphere_errors(n)[:2] for n in (250, 800, 2000)]
    et, er = zip(*errs, strict=True)
    assert et[-1] < 5e-3 and er[-1] < 5e-3
    assert et[0] > et[1] > et[2]
    assert er[0] > er[1] > er[2]


def test_resistance_matrix_is_spd_and_isotropic_for_sphere():
    _, _, R = sphere_errors(400)
    assert np.allclose(R, R.T)
    assert np.all(np.linalg.eigvalsh(R) > 0)
    assert np.allclose(np.diag(R)[:3], R[0, 0], rtol=2e-3)
    assert np.abs(R[:3, 3:]).max() < 1e-2 * R[0, 0]


def test_self_term_and_far_field():
    eps = 0.1
    S0 = stokeslet_tensor(np.zeros(3), eps, 2.0)
    assert np.allclose(S0, np.eye(3) / (4 * math.pi * 2.0 * eps))
    rng = np.random.default_rng(1)
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    errs = []
    for r in (1.0, 2.0, 4.0):
        S, G = stokeslet_tensor(r * d, eps), oseen_tensor(r * d)
        errs.append(np.abs(S - G).max() / np.abs(G).max())
    # relative error ~ (eps/r)^2: quarters when r doubles
    assert errs[0] < 2 * (eps / 1.0) ** 2
    assert errs[1] / errs[2] == pytest.approx(4.0, rel=0.1)


def test_mobility_matrix_matches_pointwise_tensor_and_velocity():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(7, 3))
    M = mobility_matrix(pts, 0.2, 1.5)
    for i, j in [(0, 0), (2, 5), (6, 1)]:
        block = M[3 * i : 3 * i + 3, 3 * j : 3 * j + 3]
        assert np.allclose(block, stokeslet_tensor(pts[i] - pts[j], 0.2, 1.5))
    f = rng.normal(size=(7, 3))
    assert np.allclose(velocity(pts, pts, f, 0.2, 1.5).ravel(), M @ f.ravel())


def test_segment_kernel_equals_quadrature_of_blobs():
    # the closed-form segment integral against 2000-point Gauss-Legendre quadrature of point blobs
    p0, p1 = np.array([0.0, 0.0, 0.0]), np.array([0.3, -0.2, 1.0])
    eps = 0.05
    G, mid, h = segment_mobility_matrix([np.stack([p0, p1, p1 + [0.5, 0.1, 0.2]])], eps, 1.0)
    x, w = np.polynomial.legendre.leggauss(2000)
    s = 0.5 * (x + 1)
    pts = p0 + s[:, None] * (p1 - p0)
    for i in range(2):
        S = stokeslet_tensor(mid[i] - pts, eps, 1.0)
        quad = np.einsum("k,kab->ab", 0.5 * w * h[0], S)
        assert np.allclose(G[3 * i : 3 * i + 3, 0:3], quad, rtol=1e-8, atol=1e-12)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
@pytest.mark.parametrize("aspect", [50, 200])
def test_slender_spheroid_centerline_matches_exact_drag(aspect):
    a, b, n = 1.0, 1.0 / aspect, 120
    th = np.linspace(0, math.pi, n + 1)
    z = -a * np.cos(th)
    nodes = np.stack([0 * z, 0 * z, z], axis=1)
    zm = 0.5 * (z[1:] + z[:-1])
    eps = SQRT_E * b * np.sqrt(1 - zm**2 / a**2)
    R = filament_resistance_matrix([nodes], [eps], 1.0)
    zt, _, ztp, _ = spheroid_drag(2 * a, 2 * b, 1.0, transverse=True)
    assert R[2, 2] == pytest.approx(zt, rel=2e-3)
    assert R[0, 0] == pytest.approx(ztp, rel=2e-3)
    # a blob size 1.0·a instead of √e·a underestimates the drag: the choice matters
    R1 = filament_resistance_matrix([nodes], [eps / SQRT_E], 1.0)
    assert R1[2, 2] < 0.95 * zt


def test_bad_inputs():
    pts = fibonacci_sphere(20)
    with pytest.raises(FlagellaError, match="duplicate"):
        resistance_matrix(np.vstack([pts, pts[3:4]]), 0.1, 1.0)
    with pytest.raises(FlagellaError, match="eps"):
        resistance_matrix(pts, 0.0, 1.0)
    with pytest.raises(FlagellaError, match="eps"):
        mobility_matrix(pts, -1.0, 1.0)
    with pytest.raises(FlagellaError, match="mu"):
        mobility_matrix(pts, 0.1, float("nan"))
    with pytest.raises(FlagellaError, match="points"):
        mobility_matrix(np.zeros((4, 2)), 0.1, 1.0)
    with pytest.raises(FlagellaError, match="finite"):
        mobility_matrix(np.full((3, 3), np.nan), 0.1, 1.0)
    with pytest.raises(FlagellaError, match="duplicate consecutive"):
        filament_resistance_matrix([np.array([[0, 0, 0], [0, 0, 0], [0, 0, 1.0]])], 0.01, 1.0)
    with pytest.raises(FlagellaError, match="eps"):
        filament_resistance_matrix([np.array([[0, 0, 0], [0, 0, 1.0]])], -0.01, 1.0)


def test_validation_sweeps_and_cache(tmp_path, monkeypatch):
    from labkit.flagella.validation import sphere_convergence, sphere_sizes, spheroid_centerline

    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    sizes = sphere_sizes(300, count=3)
    assert sizes.tolist() == [200, 245, 300]
    a = sphere_convergence(sizes, (0.25, 0.5))
    assert np.all(a.translation_error[0] < 0) and np.all(a.translation_error[1] > 0)  # bracket the truth
    assert np.all(np.diff(np.abs(a.translation_error), axis=1) < 0)
    b = sphere_convergence(sizes, (0.25, 0.5))
    assert np.array_equal(a.translation_error, b.translation_error) and np.all(b.seconds == 0)
    ax, tr = spheroid_centerline(100)
    assert abs(ax - 1) < 2e-3 and abs(tr - 1) < 2e-3
    with pytest.raises(FlagellaError, match="aspect"):
        spheroid_centerline(0.5)


def test_cg_solve_matches_cholesky_and_is_chosen_for_large_systems(monkeypatch):
    import labkit.flagella.stokeslets as st

    pts = st.fibonacci_sphere(300)
    eps = 0.35 * np.sqrt(4 * np.pi / 300)
    M = st.mobility_matrix(pts, eps, 1.0)
    K = st.rigid_motion_basis(pts)
    ref = np.linalg.solve(M, K)  # LAPACK LU as the oracle
    f_cg, info = st.solve_mobility(M.copy(), K, method="cg", rtol=1e-11)
    f_ch, info_ch = st.solve_mobility(M.copy(), K, method="cholesky")
    assert info.method == "cg" and 0 < info.iterations < 200 and info.residual < 1e-10
    assert info_ch.method == "cholesky"
    assert np.allclose(f_cg, ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())
    assert np.allclose(f_ch, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())
    monkeypatch.setattr(st, "DIRECT_MAX_UNKNOWNS", 100)
    R_auto = st.resistance_matrix(pts, eps, 1.0)  # 900 unknowns > 100: CG
    monkeypatch.setattr(st, "DIRECT_MAX_UNKNOWNS", 10_000)
    R_direct = st.resistance_matrix(pts, eps, 1.0)
    # CG stops at a residual relative to the whole system, so the small off-diagonal couplings
    # (1e-3 against a diagonal of 25) carry an error relative to the matrix's scale, not their own
    assert np.allclose(R_auto, R_direct, rtol=1e-6, atol=1e-7 * np.abs(R_direct).max())


def test_solve_mobility_bad_input():
    from labkit.flagella.stokeslets import fibonacci_sphere, mobility_matrix, solve_mobility

    M = mobility_matrix(fibonacci_sphere(50), 0.1, 1.0)
    with pytest.raises(FlagellaError, match="method"):
        solve_mobility(M, np.ones(150), method="lu")
    with pytest.raises(FlagellaError, match="did not converge"):
        solve_mobility(M, np.ones(150), method="cg", rtol=1e-14, maxiter=2)
    with pytest.raises(FlagellaError, match="positive definite"):
        solve_mobility(-np.eye(6), np.ones(6), method="cholesky")


def test_block_cg_handles_dependent_and_zero_right_hand_sides():
    """Block CG drops dependent search directions: duplicate, zero and combined columns still solve."""
    import labkit.flagella.stokeslets as st

    pts = st.fibonacci_sphere(200)
    M = st.mobility_matrix(pts, 0.35 * np.sqrt(4 * np.pi / 200), 1.0)
    K = st.rigid_motion_basis(pts)
    rhs = np.column_stack([K[:, 0], K[:, 0], np.zeros(len(K)), K[:, 0] + 2 * K[:, 4], K[:, 4]])
    f, info = st.solve_mobility(M.copy(), rhs, method="cg", rtol=1e-10)
    ref = np.linalg.solve(M, rhs)
    assert info.method == "cg" and info.residual < 1e-9
    assert np.allclose(f, ref, rtol=1e-6, atol=1e-9 * np.abs(ref).max())
    assert np.all(f[:, 2] == 0)
    with pytest.raises(FlagellaError, match="positive definite"):
        st.solve_mobility(-M, rhs, method="cg")
