"""Fit a pulsed device model to a measured pulse response (docs/physics.md §4, "Fitting a device").

The measured sequence (pulse directions and the weight after each pulse) is replayed on one noise-free
device of the model (no device-to-device spread, no cycle-to-cycle noise; the same pulse rule,
``PulsedDevice.pulse`` via ``DeviceArray.replay``, as training and ``pulse_response``),
and the chosen parameters are fitted by ``scipy.optimize.least_squares`` to minimise
Σ_k (w_model[k] − w_measured[k])². Cycle-to-cycle noise is then estimated from the one-step
residuals r_k = (m_{k+1} − m_k) − d_k·s(m_k) (measured increment minus the fitted model's step at the
measured state), using only pulses whose measured state is away from the bounds, each residual in units
of that pulse's noise scale (``PulsedDevice.step_and_scale``, the formula every pulse uses):
multiplicative σ = std(r/s), additive σ = std(r/Δ^d) with the nominal step Δ^d of the pulse's direction.
The measured increments also carry the read noise of the measurement; here it is attributed to the
cycle-to-cycle noise. Device-to-device spreads are not observable from one device: they are kept from
the template (the "assumed" spreads).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np
import torch

from aimc_lab.devices.pulsed import DeviceArray, DeviceTensors, PulsedDevice, measurement_directions

__all__ = ["FitResult", "fit_device", "synthetic_measurement", "measurement_directions", "simulate_response"]

_NO_SPREAD = dict(dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0)


@dataclass
class FitResult:
    """``device``: fitted model (template spreads, fitted noise); ``curve``: noise-free model response
    [P + 1]; ``residual``: curve − measured [P + 1]; ``rms``: sqrt(mean(residual²)); ``params``: the
    fitted values by name."""

    device: PulsedDevice
    curve: np.ndarray
    residual: np.ndarray
    rms: float
    params: dict


def simulate_response(device: PulsedDevice, directions: torch.Tensor, w0: float = 0.0,
                      noise: bool = False, seed=0) -> torch.Tensor:
    """Replay ``directions`` on one device with the *nominal* parameters (no device-to-device spread);
    cycle-to-cycle noise only with ``noise=True``. Returns weights [P + 1] (float64)."""
    return _nominal_array(device, noise).replay(directions, float(w0), seed)[0]


def _nominal_array(device: PulsedDevice, noise: bool) -> DeviceArray:
    """One device with the nominal parameters (float64): no spread, no reference; noise if asked."""
    dev = dataclasses.replace(device, **_NO_SPREAD, subtract_symmetry_point=False,
                              **({} if noise else {"dw_min_std": 0.0}))
    return DeviceArray(dev, 1, 1, seed=0, dtype=torch.float64)


def synthetic_measurement(hidden_device: PulsedDevice, seed: int = 0, n_up: int = 200, n_down: int = 200,
                          n_alternating: int = 200, w0: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """SYNTHETIC data, not a measurement: the response of ``hidden_device`` (nominal parameters, its
    cycle-to-cycle noise, no device-to-device spread) to ``n_up`` up pulses, ``n_down`` down pulses
    and ``n_alternating`` alternating pulses, starting at ``w0``. For tests, tutorials and benchmarks
    of :func:`fit_device`. Returns (directions [P], weights [P + 1])."""
    directions = measurement_directions(n_up, n_down, n_alternating)
    return directions, simulate_response(hidden_device, directions, w0, noise=True, seed=seed)


def fit_device(template: PulsedDevice, directions: torch.Tensor, measured, fit: Sequence[str] = (
        "dw_min", "up_down", "w_max", "w_min"), estimate_noise: bool = True) -> FitResult:
    """Fit the fields ``fit`` of ``template`` to a measured response.

    Args:
        template: the model and its starting values (and assumed device-to-device spreads).
        directions: pulse directions [P] (±1); measured: weights [P + 1] (element 0 = before pulse 1).
        fit: names of the scalar fields to fit (any float field of the model, e.g. ``gamma_up``).
        estimate_noise: set ``dw_min_std`` from the one-step residuals (module doc).
    """
    measured_t = torch.as_tensor(measured, dtype=torch.float64).reshape(-1)
    directions = torch.as_tensor(directions, dtype=torch.float64).reshape(-1)
    if measured_t.numel() != directions.numel() + 1:
        raise ValueError(f"measured must have len(directions) + 1 = {directions.numel() + 1} values, "
                         f"got {measured_t.numel()}")
    names = list(fit)
    for name in names:
        if name not in {f.name for f in dataclasses.fields(template)}:
            raise ValueError(f"fit: {type(template).__name__} has no field {name!r}")
    from scipy.optimize import least_squares

    m = measured_t.numpy()
    span = float(m.max() - m.min()) or 1.0
    x0 = np.array([float(getattr(template, n)) for n in names])
    lo = np.array([_lower(n, span) for n in names])
    hi = np.array([_upper(n, span) for n in names])
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
    scale = np.where(np.abs(x0) > 0, np.abs(x0), 0.1)

    def make(theta) -> PulsedDevice:
        return dataclasses.replace(template, **{n: float(v) for n, v in zip(names, theta)})

    def residual(theta):
        try:
            device = make(theta)
        except ValueError:
            return np.full(m.shape, 10.0 * span)
        return simulate_response(device, directions, float(m[0])).numpy() - m

    result = least_squares(residual, x0, bounds=(lo, hi), x_scale=scale, diff_step=1e-3)
    device = make(result.x)
    curve = simulate_response(device, directions, float(m[0])).numpy()
    if estimate_noise:
        device = dataclasses.replace(device, dw_min_std=_c2c_noise(device, directions, measured_t))
    res = curve - m
    return FitResult(device, curve, res, float(np.sqrt(np.mean(res ** 2))),
                     {n: float(v) for n, v in zip(names, result.x)})


def _lower(name: str, span: float) -> float:
    return {"dw_min": 1e-6, "up_down": -0.99, "w_max": -10.0, "w_min": -10.0}.get(name, -np.inf)


def _upper(name: str, span: float) -> float:
    return {"dw_min": span, "up_down": 0.99, "w_max": 10.0, "w_min": 10.0}.get(name, np.inf)


def _c2c_noise(device: PulsedDevice, directions: torch.Tensor, measured: torch.Tensor) -> float:
    array = _nominal_array(device, noise=False)
    w = measured[:-1]
    up = directions > 0
    t = DeviceTensors(*(v.reshape(-1).expand_as(w) for v in array.tensors))
    # the one formula of the step and of its noise scale (PulsedDevice.step_and_scale, docs/physics.md §4)
    step, scale = array.device_params.step_and_scale(w, up, t)
    r = (measured[1:] - w - directions * step) / scale.clamp(min=1e-300)
    margin = 2 * device.dw_min
    inside = (w < t.b_max - margin) & (w > t.b_min + margin) & (step > 0)
    if int(inside.sum()) < 3:
        return float(device.dw_min_std)
    return float(r[inside].std())
