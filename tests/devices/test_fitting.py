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
    Up pulses only, so that s(w) < Δ⁺ everywhere: the multiplicative scale would overestimate σ. The
    measured trace is simulated here, independently of the library's pulse rule."""
    hidden = P.SoftBounds(dw_min=0.01, up_down=-0.3, w_max=0.9, w_min=-0.7, dw_min_std=1.0, mult_noise=False)
    # the measurement written out here (not by the library's pulse rule, which the estimate shares):
    # w ← clip(w + Δ⁺·(1 − w/b_max) + σ·Δ⁺·ξ), Δ⁺ = dw_min·(1 + up_down)
    g = torch.Generator().manual_seed(0)
    delta, w, trace = 0.01 * 0.7, torch.zeros((), dtype=torch.float64), [0.0]
    for xi in torch.randn(300, generator=g, dtype=torch.float64):
        w = torch.clamp(w + delta * (1 - w / 0.9) + 1.0 * delta * xi, -0.7, 0.9)
        trace.append(float(w))
    assert abs(_c2c_noise(hidden, torch.ones(300), torch.tensor(trace, dtype=torch.float64)) / 1.0 - 1) < 0.1
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
