import math

import numpy as np
import pytest

from labkit.flagella import (
    LITERATURE_MOTOR,
    ConstantSpeedMotor,
    FlagellaError,
    MotorCurve,
    calibrate_pmf,
    ecoli,
    hz,
    motor_free_ratios,
    rad_per_s,
    swim,
    torque_from_body_rotation,
)

L = np.array([1.5, 2.5, 4.0, 6.0]) * 1e-6


@pytest.mark.parametrize("bundle", ["independent", "thick", "stokeslet"])
@pytest.mark.parametrize("n", [1, 3, 8])
def test_balance_residuals_are_machine_precision(bundle, n):
    r = swim(ecoli(), n_flagella=n, body_length=L, bundle=bundle)
    for key, v in r.residuals().items():
        assert np.abs(v).max() < 1e-12, key


def test_balance_by_hand():
    r = swim(ecoli(), n_flagella=3)
    # recompute each identity from the returned numbers only
    assert r.zeta_T * r.speed == pytest.approx(r.B * r.bundle_rate - r.A * r.speed, rel=1e-12)
    assert r.zeta_R * r.body_rate == pytest.approx(r.D * r.bundle_rate - r.B * r.speed, rel=1e-12)
    assert r.zeta_R * r.body_rate == pytest.approx(3 * r.motor_torque, rel=1e-12)
    assert r.motor_rate == pytest.approx(r.bundle_rate + r.body_rate)
    assert r.motor_torque == pytest.approx(ecoli().motor.torque(r.motor_rate), rel=1e-12)


def test_matches_independent_rft_script():
    # reference notes §1.3 [C] table (Lighthill, thick bundle, τ0=1260 pN nm, knee 170 Hz, ω0=300 Hz)
    p = ecoli(motor=MotorCurve(1260e-21, rad_per_s(170), rad_per_s(300)))
    r1 = swim(p, body_length=L, bundle="thick")
    rn = swim(p, body_length=L, n_flagella=np.rint(L * 1e6 + 2), bundle="thick")
    assert r1.speed * 1e6 == pytest.approx([36.7, 35.6, 33.2, 30.2], abs=0.06)
    assert rn.speed * 1e6 == pytest.approx([45.0, 45.0, 44.7, 42.8], abs=0.06)
    assert hz(rn.motor_rate) == pytest.approx([270, 268, 276, 280], abs=0.6)
    assert rn.motor_torque * 1e21 == pytest.approx([289, 310, 237, 196], abs=0.6)


def test_uniflagellar_speed_falls_with_length_and_multiflagellar_stays_flat():
    Ls = np.linspace(1.5, 6.0, 19) * 1e-6
    u1 = swim(ecoli(), body_length=Ls, bundle="thick").speed
    assert np.all(np.diff(u1) < 0)
    assert u1[-1] / u1[0] - 1 < -0.15
    un = swim(ecoli(), body_length=Ls, n_flagella=np.rint(Ls * 1e6 + 2), bundle="thick").speed
    assert (un.max() - un.min()) / un.mean() < 0.10


def test_default_stokeslet_bundle_compensates_partially():
    """Default (Stokeslet cable) model: N(L) cells still slow, by 1/4 to 3/4 of N = 1's loss."""
    Ls = np.linspace(1.5, 6.0, 19) * 1e-6
    u1 = swim(ecoli(), body_length=Ls).speed
    un = swim(ecoli(), body_length=Ls, n_flagella=np.rint(Ls * 1e6 + 2)).speed
    assert np.all(np.diff(u1) < 0) and u1[-1] / u1[0] - 1 < -0.15
    assert 0.25 < (un[-1] / un[0] - 1) / (u1[-1] / u1[0] - 1) < 0.75


def test_default_bundle_is_the_stokeslet_cable_at_the_default_resolution():
    from labkit.flagella import DEFAULT_BUNDLE, DEFAULT_POINTS_PER_TURN, stokeslet_bundle

    p = ecoli()
    assert DEFAULT_BUNDLE == "stokeslet"
    ref = stokeslet_bundle(p, [4], points_per_turn=DEFAULT_POINTS_PER_TURN).matrices[4]
    r = swim(p, n_flagella=4)
    assert (float(r.A), float(r.B), float(r.D)) == pytest.approx(
        (ref[2, 2], abs(ref[2, 5]), ref[5, 5]), rel=1e-12
    )
    # the thick-helix RFT bundle is a different model: its thrust coupling B is larger
    assert float(swim(p, n_flagella=4, bundle="thick").B) > 1.3 * float(r.B)


def test_speed_scales_as_inverse_viscosity_under_constant_torque():
    mot = MotorCurve.constant_torque(1e-18)
    u = [swim(ecoli(viscosity=mu), n_flagella=2, motor=mot).speed for mu in (1e-3, 2e-3, 5e-3)]
    assert u[0] / u[1] == pytest.approx(2.0, rel=1e-12)
    assert u[0] / u[2] == pytest.approx(5.0, rel=1e-12)
    # with the knee the motor speeds up under light load, so speed is *not* simply ∝ 1/μ
    uk = [swim(ecoli(viscosity=mu), n_flagella=2).speed for mu in (1e-3, 2e-3)]
    assert uk[0] / uk[1] < 1.9


def test_constant_torque_thick_bundle_spins_unphysically_fast():
    r = swim(ecoli(), n_flagella=4, motor=MotorCurve.constant_torque(1.3e-18), bundle="thick")
    assert hz(r.motor_rate) > 1000


def test_constant_speed_motor_and_large_body_limit():
    r = swim(ecoli(), motor=ConstantSpeedMotor(rad_per_s(200.0)))
    assert hz(r.motor_rate) == pytest.approx(200.0)
    # a huge rotational body drag pins the body: Ω_b → 0, ω_f → ω_m
    big = swim(ecoli(body_width=6e-6, body_length=60e-6), motor=ConstantSpeedMotor(1000.0))
    assert big.body_rate / big.motor_rate < 1e-3


def test_motor_scale_is_the_pmf_family():
    p = ecoli()
    r = swim(p, n_flagella=np.array([1, 4]), motor_scale=np.array([0.5, 2.0]))
    # the same cells solved with explicitly scaled motor curves (independent route through the motor code)
    for i, (n, s) in enumerate([(1, 0.5), (4, 2.0)]):
        ref = swim(p, n_flagella=n, motor=p.motor.scaled(s))
        assert r.speed[i] == pytest.approx(float(ref.speed), rel=1e-12)
        assert r.motor_torque[i] == pytest.approx(float(ref.motor_torque), rel=1e-12)
        assert r.motor_torque[i] == pytest.approx(float(p.motor.scaled(s).torque(r.motor_rate[i])), rel=1e-12)
    # the scaled curve keeps every rate ratio, so U(L) only changes by the factor
    Ls = np.linspace(1.5, 6, 7) * 1e-6
    u1, u2 = (swim(p, body_length=Ls, n_flagella=5, motor_scale=s).speed for s in (1.0, 0.7))
    assert np.allclose(u2 / u1, 0.7, rtol=1e-12)
    m = p.motor.scaled(0.5)
    assert m.knee_rate == pytest.approx(0.5 * p.motor.knee_rate)
    assert m.zero_load_rate == pytest.approx(0.5 * p.motor.zero_load_rate)


def test_pmf_calibration_hits_the_body_rate_and_matches_a_root_finder():
    from scipy.optimize import brentq

    p = ecoli(calibrated=False)
    target = rad_per_s(23.0)
    s = calibrate_pmf(p, target, n_flagella=4)
    # independent route: bracketing root finder on the body rate as a function of the factor
    s_ref = brentq(
        lambda x: float(swim(p, n_flagella=4, motor=p.motor.scaled(x)).body_rate) - target,
        0.05,
        5.0,
        xtol=1e-14,
    )
    assert s == pytest.approx(s_ref, rel=1e-9)
    # ecoli() carries exactly this calibrated motor
    assert ecoli().motor.stall_torque == pytest.approx(s * LITERATURE_MOTOR.stall_torque, rel=1e-12)
    assert hz(swim(ecoli(), n_flagella=4).body_rate) == pytest.approx(23.0, rel=1e-9)
    # the body rate fixes the total torque: N τ_m = ζ_R Ω_b
    r = swim(ecoli(), n_flagella=4)
    assert 4 * r.motor_torque == pytest.approx(float(torque_from_body_rotation(p, target)), rel=1e-9)
    with pytest.raises(FlagellaError, match="target_body_rate"):
        calibrate_pmf(p, -1.0)
    with pytest.raises(FlagellaError, match="target_body_rate"):
        calibrate_pmf(p, float("nan"))


def test_motor_free_ratios_do_not_depend_on_the_motor():
    p = ecoli()
    sp, br = motor_free_ratios(p, n_flagella=np.array([1, 4, 8]))
    for mot in (LITERATURE_MOTOR, MotorCurve.constant_torque(5e-19), ConstantSpeedMotor(300.0)):
        r = swim(p, n_flagella=np.array([1, 4, 8]), motor=mot)
        assert np.allclose(2 * np.pi * r.speed / r.bundle_rate, sp, rtol=1e-12)
        assert np.allclose(r.body_rate / r.bundle_rate, br, rtol=1e-12)
    # closed forms from the propulsion matrix
    A, B, D = r.A, r.B, r.D
    assert np.allclose(sp, 2 * np.pi * B / (A + r.zeta_T), rtol=1e-12)
    assert np.allclose(br, (D - B**2 / (A + r.zeta_T)) / r.zeta_R, rtol=1e-12)


def test_vectorised_population_size():
    Ls = np.random.default_rng(0).uniform(1.5e-6, 6e-6, 100_000)
    r = swim(ecoli(), body_length=Ls, n_flagella=np.rint(Ls * 1e6 + 2))
    assert r.speed.shape == (100_000,) and np.all(np.isfinite(r.speed))


def test_bad_inputs():
    with pytest.raises(FlagellaError, match="body_length"):
        swim(ecoli(), body_length=[2e-6, -1e-6])
    with pytest.raises(FlagellaError, match="n_flagella"):
        swim(ecoli(), n_flagella=0)
    with pytest.raises(FlagellaError, match="n_flagella"):
        swim(ecoli(), n_flagella=2.5)
    with pytest.raises(FlagellaError, match="bundle"):
        swim(ecoli(), bundle="rope")
    with pytest.raises(FlagellaError, match="params"):
        swim({"viscosity": 1e-3})
    with pytest.raises(FlagellaError, match="viscosity"):
        ecoli(viscosity=-1.0)
    with pytest.raises(FlagellaError, match="filament_radius"):
        ecoli(filament_radius=0.25e-6)
    with pytest.raises(FlagellaError, match="body_width"):
        ecoli(body_width=3e-6)
    with pytest.raises(FlagellaError, match="pitch"):
        ecoli(pitch=float("nan"))
    with pytest.raises(FlagellaError, match="contour_length"):
        ecoli(contour_length=0.0)
    with pytest.raises(FlagellaError, match="helix_radius"):
        ecoli(helix_radius=-0.2e-6)
    with pytest.raises(FlagellaError, match="knee_rate"):
        MotorCurve(1e-18, float("nan"), 2000.0)
    with pytest.raises(FlagellaError, match="stall_torque"):
        MotorCurve(0.0, 1000.0, 2000.0)
    with pytest.raises(FlagellaError, match="motor_scale"):
        swim(ecoli(), motor_scale=0.0)
    with pytest.raises(FlagellaError, match="motor_scale"):
        swim(ecoli(), motor_scale=float("nan"))
    with pytest.raises(FlagellaError, match="factor"):
        ecoli().motor.scaled(-2.0)
    with pytest.raises(FlagellaError, match="body_rate"):
        torque_from_body_rotation(ecoli(), -1.0)
    assert math.isfinite(float(swim(ecoli()).speed))
