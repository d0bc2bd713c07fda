import math

import numpy as np
import pytest

from labkit.flagella import ConstantSpeedMotor, FlagellaError, MotorCurve, hz, rad_per_s

M = MotorCurve(1.3e-18, rad_per_s(170.0), rad_per_s(330.0))


def test_curve_shape():
    w = rad_per_s(np.array([0.0, 100.0, 170.0, 250.0, 330.0, 400.0]))
    t = M.torque(w)
    assert t[:3] == pytest.approx([1.3e-18] * 3)
    assert t[3] == pytest.approx(1.3e-18 * (330 - 250) / (330 - 170))
    assert t[4] == 0 and t[5] == 0


@pytest.mark.parametrize("load", [1e-21, 5e-22, 1e-22, 1e-23])
def test_operating_point_lies_on_curve_and_load_line(load):
    w, t = M.operating_point(load)
    assert t == pytest.approx(load * w, rel=1e-12)
    assert t == pytest.approx(M.torque(w), rel=1e-12, abs=1e-30)


def test_regimes():
    w_heavy, t_heavy = M.operating_point(1e-20)  # heavy load: below the knee, full torque
    assert w_heavy < M.knee_rate and t_heavy == pytest.approx(M.stall_torque)
    w_light, t_light = M.operating_point(1e-24)  # light load: near zero-load speed
    assert M.knee_rate < w_light < M.zero_load_rate and w_light > 0.99 * M.zero_load_rate


def test_constant_torque_and_constant_speed():
    ct = MotorCurve.constant_torque(1e-18)
    w, t = ct.operating_point(np.array([1e-21, 1e-22]))
    assert np.allclose(t, 1e-18) and np.allclose(w, [1e3, 1e4])
    cs = ConstantSpeedMotor(100.0)
    w, t = cs.operating_point(2e-21)
    assert w == 100.0 and t == pytest.approx(2e-19)
    assert hz(rad_per_s(123.0)) == pytest.approx(123.0)
    assert rad_per_s(1.0) == pytest.approx(2 * math.pi)


def test_bad_motor_curves():
    with pytest.raises(FlagellaError, match="knee_rate"):
        MotorCurve(1e-18, 2000.0, 1000.0)
    with pytest.raises(FlagellaError, match="stall_torque"):
        MotorCurve(-1e-18, 100.0, 200.0)
    with pytest.raises(FlagellaError, match="zero_load_rate"):
        MotorCurve(1e-18, 100.0, float("nan"))
    with pytest.raises(FlagellaError, match="load"):
        M.operating_point(-1.0)
    with pytest.raises(FlagellaError, match="rate"):
        ConstantSpeedMotor(0.0)
