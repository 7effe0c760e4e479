"""Fitting a device model to a (synthetic) measured pulse response."""

import pytest
import torch

from aimc_lab.devices import pulsed as P
from aimc_lab.devices.fitting import _c2c_noise, fit_device, measurement_directions, synthetic_measurement


def test_synthetic_protocol():
    directions, weights = synthetic_measurement(P.SoftBounds(), seed=0, n_up=5, n_down=3, n_alternating=4)
    assert directions.tolist() == [1, 1, 1, 1, 1, -1, -1, -1, 1, -1, 1, -1]
    assert weights.shape == (13,)
    assert measurement_directions().numel() == 600


def test_fit_recovers_hidden_soft_bounds():
    hidden = P.SoftBounds(dw_min=0.01, up_down=-0.3, w_max=0.9, w_min=-0.7, dw_min_std=0.2)
    directions, measured = synthetic_measurement(hidden, seed=0)
    result = fit_device(P.SoftBounds(), directions, measured)
    for name in ("dw_min", "up_down", "w_max", "w_min"):
        assert abs(result.params[name] / getattr(hidden, name) - 1) < 0.10, name
    assert result.curve.shape == (601,) and result.residual.shape == (601,)
    assert result.rms < 0.02
    # estimated from the one-step residuals in units of each pulse's own noise scale (true 0.2)
    assert abs(result.device.dw_min_std / 0.2 - 1) < 0.1


def test_fit_estimates_additive_noise_in_units_of_the_devices_own_step():
    """Additive noise σ·Δ^d: the residuals are divided by Δ^d, not by the state-dependent step s(w).
    Up pulses only, so that s(w) < Δ⁺ everywhere: the multiplicative scale would overestimate σ."""
    hidden = P.SoftBounds(dw_min=0.01, up_down=-0.3, w_max=0.9, w_min=-0.7, dw_min_std=1.0, mult_noise=False)
    directions, measured = synthetic_measurement(hidden, seed=0, n_up=300, n_down=0, n_alternating=0)
    assert abs(_c2c_noise(hidden, directions, measured) / 1.0 - 1) < 0.1
    directions, measured = synthetic_measurement(hidden, seed=0)
    result = fit_device(P.SoftBounds(mult_noise=False), directions, measured)
    assert not result.device.mult_noise
    assert abs(result.device.dw_min_std / 1.0 - 1) < 0.1


def test_fit_rejects_bad_input():
    directions, measured = synthetic_measurement(P.SoftBounds(), seed=0, n_up=4, n_down=4, n_alternating=0)
    with pytest.raises(ValueError, match="len"):
        fit_device(P.SoftBounds(), directions, measured[:-1])
    with pytest.raises(ValueError, match="no field"):
        fit_device(P.SoftBounds(), directions, measured, fit=("nonsense",))
