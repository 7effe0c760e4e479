"""Pulsed device models for in-memory training (docs/physics.md §4).

A cross-point device holds a *hidden* weight ``w`` in its own bounds ``[b_min, b_max]`` and is changed
only by pulses of direction d ∈ {+1 (up), −1 (down)}. Each model below is a frozen, validated
parameter set; :class:`DeviceArray` is the vectorized state of one tile of such devices, built once
from a seed / ``torch.Generator`` (device-to-device spreads are drawn at construction).

Shared parameters (docs/physics.md §4 defaults). Per device, drawn once:

* gain g = 1 + dw_min_dtod·ξ (or exp(dw_min_dtod·ξ) with ``dw_min_dtod_log_normal``), r = up_down_dtod·ξ';
* up step   Δ⁺ = dw_min·(g + r + min(up_down, 0)),
  down step Δ⁻ = dw_min·(g − r − max(up_down, 0)), both clamped at >= 0;
* bounds b_max = w_max·(1 + w_max_dtod·ξ), b_min = w_min·(1 + w_min_dtod·ξ) (b_min <= b_max enforced
  by clamping b_max >= b_min).

Per pulse (:meth:`PulsedDevice.pulse`, the one implementation every pulse path calls): the step
magnitude s(w) = Δ^d·f(w) of the model (table below, clamped at >= 0) gets cycle-to-cycle noise
scaled by the device's own step in that direction, then the weight is clipped to its bounds:

* ``mult_noise=True``: s·(1 + dw_min_std·ξ) (vanishes where s = 0, e.g. at a soft bound);
* ``mult_noise=False`` (the convention of AIHWKIT's soft-bounds / exp-step presets, whose
  ``dw_min_std`` values of 3.75 or 5 only make sense additively): s + dw_min_std·Δ^d·ξ, on every
  pulse, so a device at its bound diffuses off it.

| model         | step magnitude for one pulse in direction d                                        |
|---------------|------------------------------------------------------------------------------------|
| Ideal         | exact floating-point update (no pulses; see the kernel)                            |
| ConstantStep  | Δ^d                                                                                |
| LinearStep    | Δ^d·(1 + γ^d·w), γ⁺ = −|γ_up|/b_max, γ⁻ = −|γ_down|/b_min, clamped at >= 0         |
| SoftBounds    | up Δ⁺·(1 − w/b_max), down Δ⁻·(1 − w/b_min)  (LinearStep with γ_up = γ_down = 1)    |
| ExpStep       | z = 2a·w/(b_max − b_min) + b, y = 1 − A^d·exp(d·γ^d·z), max(y, 0)·Δ^d              |
| PowStep       | ω = (b_max − w)/(b_max − b_min); up Δ⁺·ω^γ, down Δ⁻·(1 − ω)^γ                       |
| PiecewiseStep | Δ^d × linear interpolation of the node values over [b_min, b_max]                  |

Parameters are finite and range-checked in ``__post_init__`` (errors name the field, the value and
the allowed range): relative spreads in [0, MAX_SPREAD], dw_min_std <= MAX_STEP_NOISE, |weights|,
dw_min, slopes <= MAX_MAGNITUDE, lifetime 0 or in [1, MAX_LIFETIME]; bools are refused as real numbers;
LinearStep needs w_max > 0 for gamma_up > 0 and w_min < 0 for gamma_down > 0. Bounds drawn with
spread may still lie beyond 0 or within one step of it: every model stays finite there (ExpStep's
exponents are capped at 60, a zero bound counts as 1e-30).

Other per-device effects: **write noise** (``write_noise_std`` in units of dw_min): the forward pass
sees w + σ_wn·dw_min·ξ, redrawn for every device a pulse touched (updates act on the hidden w);
**decay** (``lifetime`` > 0, in update calls): w ← reset + (w − reset)·(1 − 1/τ) after each update,
τ per device with ``lifetime_dtod``; **diffusion**: w += diffusion·ξ after each update (rate per device
with ``diffusion_dtod``), both followed by clipping to the bounds; **reset**:
w ← reset·(1 + reset_dtod·ξ_d) + reset_std·ξ on request.

**Reference device** (``subtract_symmetry_point``): a second, programmed device per cross point holds
each device's symmetry point w* (plus ``reference_std`` programming error) and is subtracted, so the
weight seen by the network is w − w*; ``set_weights(W)`` writes hidden w = W + w*.

The symmetry point is where the up and down step magnitudes are equal; :meth:`DeviceArray.symmetry_point`
finds it per device by bisection of s⁺(w) − s⁻(w) on [b_min, b_max] (for SoftBounds it equals
(Δ⁺ − Δ⁻)/(Δ⁺/b_max − Δ⁻/b_min)). Where the two never cross, alternating pulses drift to a bound and
that bound is returned.

Deviations from AIHWKIT (documented, intentional): no per-device spread of γ (LinearStep) or of the
ExpStep constants; ExpStep's ``dw_min_std_add``/``dw_min_std_slope`` noise terms are not modelled.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch
from torch import Tensor, nn

from aimc_lab.config import register_config_class
from aimc_lab.validation import check_bool, check_real, check_zero_or_real, invalid, real_value
from aimc_lab.kernels import backend as _backend
from aimc_lab.kernels.pulsed_update import apply_mixed_counts as _apply_mixed_kernel
from aimc_lab.kernels.pulsed_update import compiled as _compiled
from aimc_lab.kernels.pulsed_update import apply_pulse_sequence
from aimc_lab.kernels.pulsed_update import pulsed_update as _pulsed_update_kernel
from aimc_lab.kernels.pulsed_update import signed_counts_update as _signed_counts_kernel
from aimc_lab.kernels.pulsed_update.reference import DeviceTensors, PulseModel, pulse, step_and_scale

__all__ = [
    "PulsedDevice", "Ideal", "ConstantStep", "LinearStep", "SoftBounds", "ExpStep", "PowStep",
    "PiecewiseStep", "DeviceTensors", "DeviceArray", "pulse_response", "measurement_directions", "make_generator",
    "reram_es", "reram_sb", "capacitor", "ecram", "pcm", "idealized", "PRESETS",
]


def make_generator(seed: Union[int, torch.Generator, None], device: Union[str, torch.device] = "cpu"
                   ) -> torch.Generator:
    """A ``torch.Generator`` from a seed (``None``: a seed drawn from torch's global RNG)."""
    if isinstance(seed, torch.Generator):
        return seed
    if seed is None:
        seed = int(torch.randint(0, 2 ** 62, (1,)).item())
    return torch.Generator(device=device).manual_seed(int(seed))


#: Largest |value| of an absolute parameter (weights, steps, rates): keeps every product of the
#: update (squared steps times pulse counts) far inside float32.
MAX_MAGNITUDE = 1.0e3
#: Largest relative device-to-device spread (1000 %; log-normal gains up to exp(10·ξ)).
MAX_SPREAD = 10.0
#: Largest cycle-to-cycle noise, in units of the device's step.
MAX_STEP_NOISE = 100.0
#: Largest write noise, in units of dw_min.
MAX_WRITE_NOISE = 1.0e4
#: Largest decay lifetime, in update calls (decay 1/τ per call stays a normal float32 also with spread).
MAX_LIFETIME = 1.0e12
_RELATIVE_SPREADS = ("dw_min_dtod", "up_down_dtod", "w_max_dtod", "w_min_dtod", "lifetime_dtod",
                     "diffusion_dtod", "reset_dtod")


# ---------------------------------------------------------------------------------------------
# parameter sets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PulsedDevice:
    """Parameters shared by every pulsed device model (docs/physics.md §4 defaults); see the module doc."""

    dw_min: float = 0.001
    dw_min_dtod: float = 0.3
    dw_min_dtod_log_normal: bool = False
    dw_min_std: float = 0.3
    mult_noise: bool = True
    up_down: float = 0.0
    up_down_dtod: float = 0.01
    w_max: float = 0.6
    w_min: float = -0.6
    w_max_dtod: float = 0.3
    w_min_dtod: float = 0.3
    write_noise_std: float = 0.0
    lifetime: float = 0.0
    lifetime_dtod: float = 0.0
    diffusion: float = 0.0
    diffusion_dtod: float = 0.0
    reset: float = 0.0
    reset_std: float = 0.0
    reset_dtod: float = 0.0
    subtract_symmetry_point: bool = False
    reference_std: float = 0.0

    def __post_init__(self) -> None:
        check_real(self, "dw_min", 0.0, MAX_MAGNITUDE, lo_open=True)
        for name in _RELATIVE_SPREADS:
            check_real(self, name, 0.0, MAX_SPREAD)
        check_real(self, "dw_min_std", 0.0, MAX_STEP_NOISE)
        check_real(self, "write_noise_std", 0.0, MAX_WRITE_NOISE)
        check_zero_or_real(self, "lifetime", 1.0, MAX_LIFETIME)
        for name in ("diffusion", "reset_std", "reference_std"):
            check_real(self, name, 0.0, MAX_MAGNITUDE)
        for name in ("dw_min_dtod_log_normal", "mult_noise", "subtract_symmetry_point"):
            check_bool(self, name)
        check_real(self, "up_down", -1.0, 1.0)
        for name in ("w_max", "w_min", "reset"):
            check_real(self, name, -MAX_MAGNITUDE, MAX_MAGNITUDE)
        if self.w_min >= self.w_max:
            raise invalid(self, "w_min", self.w_min, f"< w_max = {self.w_max}")
        self._validate_model()

    def _validate_model(self) -> None:
        """Model-specific checks (subclasses)."""

    # -- the step function ------------------------------------------------------------------

    def step(self, w: Tensor, up: Tensor, dw_up: Tensor, dw_down: Tensor, b_max: Tensor,
             b_min: Tensor) -> Tensor:
        """Noise-free step magnitude (>= 0) of one pulse at weight ``w``; ``up`` is a bool mask.

        All arguments broadcast elementwise (per-device tensors of the same shape as ``w``).
        """
        raise NotImplementedError

    def pulse_model(self, t: DeviceTensors) -> PulseModel:
        """What the pulsed-update kernels need (tensors and plain parameters, no device object): here
        the generic kind, s(w) from :meth:`step`, which runs the pulse loop; the constant and linear
        models override it with their closed-form kinds."""
        return PulseModel(t, self.dw_min, self.dw_min_std, self.mult_noise, step=self._step_of_tensors)

    def _step_of_tensors(self, w: Tensor, up: Tensor, t: DeviceTensors) -> Tensor:
        return self.step(w, up, *t)

    def pulse(self, w: Tensor, up: Tensor, t: DeviceTensors, xi: Optional[Tensor]) -> Tensor:
        """One pulse per device by the rule of docs/physics.md §4 (the kernels' :func:`pulse`, the one
        implementation): w + d·(s(w) + σ·scale·ξ), clipped to the bounds, with scale = s(w) for
        multiplicative and the device's own Δ^d for additive noise. ``up``: bool mask of the
        directions; ``xi``: standard normal draws like ``w`` (``None``: noise-free)."""
        return pulse(w, up, self.pulse_model(t), xi)

    def step_and_scale(self, w: Tensor, up: Tensor, t: DeviceTensors) -> Tuple[Tensor, Tensor]:
        """(s(w), noise scale) of one pulse (the kernels' :func:`step_and_scale`)."""
        return step_and_scale(w, up, self.pulse_model(t))


_MAX_EXPONENT = 60.0


def _nonzero(b: Tensor) -> Tensor:
    """A bound with exact zeros replaced by a tiny positive number (γ = −gamma/b stays finite)."""
    return torch.where(b == 0, torch.full_like(b, 1e-30), b)


def _register(cls):
    return register_config_class(dataclass(frozen=True)(cls))


@_register
class Ideal(PulsedDevice):
    """Exact floating-point update ΔW = −η·d·xᵀ, clipped to [w_min, w_max]; no pulses, no noise.

    The forward/backward MVMs may still be noisy (``AnalogConfig.forward``/``backward``).
    """

    dw_min: float = 0.001
    dw_min_dtod: float = 0.0
    dw_min_std: float = 0.0
    up_down_dtod: float = 0.0
    w_max: float = 1.0
    w_min: float = -1.0
    w_max_dtod: float = 0.0
    w_min_dtod: float = 0.0

    def step(self, w, up, dw_up, dw_down, b_max, b_min):
        return torch.where(up, dw_up, dw_down).expand_as(w)

    def pulse_model(self, t: DeviceTensors) -> PulseModel:
        return PulseModel(t, self.dw_min, 0.0, self.mult_noise, ideal=True)


@_register
class ConstantStep(PulsedDevice):
    """Step Δ^d independent of the weight (docs/physics.md §4)."""

    def step(self, w, up, dw_up, dw_down, b_max, b_min):
        return torch.where(up, dw_up, dw_down).expand_as(w)

    def pulse_model(self, t: DeviceTensors) -> PulseModel:
        """The constant kind (closed forms; both noise types read Δ^d·(1 + σ·ξ))."""
        return PulseModel(t, self.dw_min, self.dw_min_std, self.mult_noise)


@_register
class LinearStep(PulsedDevice):
    """Step Δ^d·(1 + γ^d·w), γ⁺ = −|gamma_up|/b_max, γ⁻ = −|gamma_down|/b_min, clamped at >= 0."""

    gamma_up: float = 0.0
    gamma_down: float = 0.0

    def _validate_model(self) -> None:
        check_real(self, "gamma_up", 0.0, MAX_MAGNITUDE)
        check_real(self, "gamma_down", 0.0, MAX_MAGNITUDE)
        if self.gamma_up > 0 and not self.w_max > 0:
            raise invalid(self, "w_max", self.w_max, f"> 0 when gamma_up = {self.gamma_up} > 0 (γ⁺ = −gamma_up/b_max)")
        if self.gamma_down > 0 and not self.w_min < 0:
            raise invalid(self, "w_min", self.w_min,
                       f"< 0 when gamma_down = {self.gamma_down} > 0 (γ⁻ = −gamma_down/b_min)")

    def slopes(self, b_max: Tensor, b_min: Tensor) -> Tuple[Tensor, Tensor]:
        """Per-device (γ⁺, γ⁻) = (−gamma_up/b_max, −gamma_down/b_min), a zero bound counted as 1e-30."""
        return -self.gamma_up / _nonzero(b_max), -self.gamma_down / _nonzero(b_min)

    def pulse_model(self, t: DeviceTensors) -> PulseModel:
        """The linear kind: s(w) = Δ^d·(1 + γ^d·w) clamped at >= 0 (closed forms)."""
        g_up, g_down = self.slopes(t.b_max, t.b_min)
        return PulseModel(t, self.dw_min, self.dw_min_std, self.mult_noise, gamma_up=g_up, gamma_down=g_down)

    def step(self, w, up, dw_up, dw_down, b_max, b_min):
        g_up, g_down = self.slopes(b_max, b_min)
        return (torch.where(up, dw_up, dw_down) * (1 + torch.where(up, g_up, g_down) * w)).clamp(min=0)


@_register
class SoftBounds(LinearStep):
    """Soft bounds: up Δ⁺·(1 − w/b_max), down Δ⁻·(1 − w/b_min) (LinearStep with γ = 1)."""

    gamma_up: float = 1.0
    gamma_down: float = 1.0

    def _validate_model(self) -> None:
        for name in ("gamma_up", "gamma_down"):
            value = getattr(self, name)
            try:
                check_real(self, name, 1.0, 1.0)
            except ValueError:
                raise invalid(self, name, value, "1.0 (use LinearStep for other slopes)") from None
        if not self.w_max > 0:
            raise invalid(self, "w_max", self.w_max, "> 0 for soft bounds (w_min < 0 < w_max)")
        if not self.w_min < 0:
            raise invalid(self, "w_min", self.w_min, "< 0 for soft bounds (w_min < 0 < w_max)")


@_register
class ExpStep(PulsedDevice):
    """z = 2a·w/(b_max − b_min) + b; y = 1 − A^d·exp(d·γ^d·z); step = max(y, 0)·Δ^d."""

    A_up: float = 0.00081
    A_down: float = 0.36833
    gamma_up: float = 12.44625
    gamma_down: float = 12.78785
    a: float = 0.244
    b: float = 0.2425

    def _validate_model(self) -> None:
        for name in ("A_up", "A_down", "gamma_up", "gamma_down", "a", "b"):
            check_real(self, name, -MAX_MAGNITUDE, MAX_MAGNITUDE)

    def step(self, w, up, dw_up, dw_down, b_max, b_min):
        # exponents capped at 60 (a step of e^60·A·Δ overshoots any bound): finite in float32
        z = 2 * self.a * w / (b_max - b_min).clamp(min=1e-12) + self.b
        y_up = 1 - self.A_up * torch.exp((self.gamma_up * z).clamp(max=_MAX_EXPONENT))
        y_down = 1 - self.A_down * torch.exp((-self.gamma_down * z).clamp(max=_MAX_EXPONENT))
        return torch.where(up, y_up.clamp(min=0) * dw_up, y_down.clamp(min=0) * dw_down)


@_register
class PowStep(PulsedDevice):
    """ω = (b_max − w)/(b_max − b_min); up Δ⁺·ω^γ, down Δ⁻·(1 − ω)^γ (γ = pow_gamma)."""

    pow_gamma: float = 1.0

    def _validate_model(self) -> None:
        check_real(self, "pow_gamma", 0.0, MAX_MAGNITUDE, lo_open=True)

    def step(self, w, up, dw_up, dw_down, b_max, b_min):
        omega = ((b_max - w) / (b_max - b_min).clamp(min=1e-12)).clamp(0, 1)
        return torch.where(up, dw_up * omega ** self.pow_gamma, dw_down * (1 - omega) ** self.pow_gamma)


@_register
class PiecewiseStep(PulsedDevice):
    """Δ^d × linear interpolation of ``piecewise_up``/``piecewise_down`` nodes over [b_min, b_max]."""

    piecewise_up: Tuple[float, ...] = (1.0, 1.0)
    piecewise_down: Tuple[float, ...] = (1.0, 1.0)

    def _validate_model(self) -> None:
        allowed = f"a tuple of at least two finite node values in [0, {MAX_MAGNITUDE:g}]"
        for name in ("piecewise_up", "piecewise_down"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)) or any(isinstance(v, bool) or not isinstance(v, numbers.Real)
                                                           for v in value):
                raise TypeError(f"{type(self).__name__}.{name} must be {allowed}, got {type(value).__name__} "
                                f"{value!r}")
            if len(value) < 2:
                raise invalid(self, name, value, allowed)
            for i, v in enumerate(value):
                try:
                    real_value(self, name, v, 0.0, MAX_MAGNITUDE, False, False, False)
                except ValueError:
                    raise invalid(self, name, value, f"{allowed} (node {i} = {v!r})") from None
            object.__setattr__(self, name, tuple(float(v) for v in value))

    @staticmethod
    def _interp(nodes: Tuple[float, ...], w: Tensor, b_max: Tensor, b_min: Tensor) -> Tensor:
        n = len(nodes)
        table = torch.tensor(nodes, dtype=w.dtype, device=w.device)
        pos = ((w - b_min) / (b_max - b_min).clamp(min=1e-12)).clamp(0, 1) * (n - 1)
        lo = pos.floor().clamp(max=n - 2).long()
        frac = pos - lo
        return table[lo] * (1 - frac) + table[lo + 1] * frac

    def step(self, w, up, dw_up, dw_down, b_max, b_min):
        s_up = dw_up * self._interp(self.piecewise_up, w, b_max, b_min)
        s_down = dw_down * self._interp(self.piecewise_down, w, b_max, b_min)
        return torch.where(up, s_up, s_down)


MODELS = (Ideal, ConstantStep, LinearStep, SoftBounds, ExpStep, PowStep, PiecewiseStep)


# ---------------------------------------------------------------------------------------------
# per-tile state
# ---------------------------------------------------------------------------------------------


def draw_device_tensors(device: PulsedDevice, shape: Tuple[int, int], generator: torch.Generator,
                        dtype: torch.dtype = torch.float32) -> DeviceTensors:
    """Device-to-device spreads (docs/physics.md §4): steps Δ⁺/Δ⁻ and bounds per device."""

    def randn() -> Tensor:
        return torch.randn(shape, generator=generator, dtype=dtype, device=generator.device)

    xi_g, xi_r, xi_max, xi_min = randn(), randn(), randn(), randn()
    if device.dw_min_dtod_log_normal:
        gain = torch.exp(device.dw_min_dtod * xi_g)
    else:
        gain = 1 + device.dw_min_dtod * xi_g
    r = device.up_down_dtod * xi_r
    dw_up = (device.dw_min * (gain + r + min(device.up_down, 0.0))).clamp(min=0)
    dw_down = (device.dw_min * (gain - r - max(device.up_down, 0.0))).clamp(min=0)
    b_max = device.w_max * (1 + device.w_max_dtod * xi_max)
    b_min = device.w_min * (1 + device.w_min_dtod * xi_min)
    b_max = torch.maximum(b_max, b_min)
    return DeviceTensors(dw_up, dw_down, b_max, b_min)


def symmetry_point(device: PulsedDevice, t: DeviceTensors, iterations: int = 48) -> Tensor:
    """Per-device w* with s⁺(w*) = s⁻(w*), by bisection on [b_min, b_max] (see the module doc)."""
    lo, hi = t.b_min.clone(), t.b_max.clone()
    up = torch.ones_like(lo, dtype=torch.bool)

    def f(w: Tensor) -> Tensor:
        return device.step(w, up, t.dw_up, t.dw_down, t.b_max, t.b_min) - \
            device.step(w, ~up, t.dw_up, t.dw_down, t.b_max, t.b_min)

    f_lo, f_hi = f(lo), f(hi)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        f_mid = f(mid)
        go_up = f_mid > 0  # up step larger: the root lies above (for a decreasing f)
        lo = torch.where(go_up, mid, lo)
        hi = torch.where(go_up, hi, mid)
    mid = 0.5 * (lo + hi)
    # no crossing: alternating pulses drift to the bound the larger step points at
    mid = torch.where((f_lo > 0) & (f_hi > 0), t.b_max, mid)
    mid = torch.where((f_lo < 0) & (f_hi < 0), t.b_min, mid)
    mid = torch.where((f_lo == 0) & (f_hi == 0), torch.zeros_like(mid).clamp(t.b_min, t.b_max), mid)
    return mid


class DeviceArray(nn.Module):
    """The state of one tile of pulsed devices: hidden weights and per-device constants (buffers).

    Args:
        device: the model's parameters.
        out_features, in_features: N, K.
        seed: int or ``torch.Generator`` for the device-to-device draws (``None``: from torch's global
            RNG, so ``torch.manual_seed`` makes it reproducible).

    All tensors are buffers, so ``state_dict``/``load_state_dict`` round-trip the array exactly.
    """

    def __init__(self, device: PulsedDevice, out_features: int, in_features: int,
                 seed: Union[int, torch.Generator, None] = None, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if not isinstance(device, PulsedDevice):
            raise TypeError(f"device must be a PulsedDevice (e.g. SoftBounds()), got {type(device).__name__}")
        for name, value in (("out_features", out_features), ("in_features", in_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} = {value!r} is invalid; allowed: an integer >= 1")
        self.device_params = device
        gen = make_generator(seed)
        shape = (out_features, in_features)
        t = draw_device_tensors(device, shape, gen, dtype)
        self.register_buffer("dw_up", t.dw_up)
        self.register_buffer("dw_down", t.dw_down)
        self.register_buffer("b_max", t.b_max)
        self.register_buffer("b_min", t.b_min)
        if device.subtract_symmetry_point:
            ref = symmetry_point(device, t)
            if device.reference_std > 0:
                ref = ref + device.reference_std * torch.randn(shape, generator=gen, dtype=dtype)
        else:
            ref = torch.zeros(shape, dtype=dtype)
        self.register_buffer("reference", ref)
        tau = torch.full(shape, device.lifetime, dtype=dtype)
        if device.lifetime > 0 and device.lifetime_dtod > 0:
            tau = tau * (1 + device.lifetime_dtod * torch.randn(shape, generator=gen, dtype=dtype)).clamp(min=0.1)
        self.register_buffer("decay_rate", torch.where(tau > 0, 1.0 / tau.clamp(min=1.0), torch.zeros_like(tau)))
        rate = torch.full(shape, device.diffusion, dtype=dtype)
        if device.diffusion > 0 and device.diffusion_dtod > 0:
            rate = (rate * (1 + device.diffusion_dtod * torch.randn(shape, generator=gen, dtype=dtype))).clamp(min=0)
        self.register_buffer("diffusion_rate", rate)
        reset_value = torch.full(shape, device.reset, dtype=dtype)
        if device.reset_dtod > 0:
            reset_value = reset_value * (1 + device.reset_dtod * torch.randn(shape, generator=gen, dtype=dtype))
        self.register_buffer("reset_value", reset_value)
        self.register_buffer("w", torch.maximum(torch.minimum(ref.clone(), t.b_max), t.b_min))
        self.register_buffer("write_noise", torch.zeros(shape, dtype=dtype))

    @property
    def tensors(self) -> DeviceTensors:
        return DeviceTensors(self.dw_up, self.dw_down, self.b_max, self.b_min)

    @property
    def shape(self) -> Tuple[int, int]:
        return tuple(self.w.shape)

    def pulse_model(self) -> PulseModel:
        """This array's devices as the pulsed-update kernels take them (``PulsedDevice.pulse_model``).

        Cached while the device parameters and the four per-device tensors are the same objects with
        the same version counters (an in-place change, ``load_state_dict`` or ``.to()`` rebuilds it):
        LinearStep's slopes −γ/b are then not recomputed on every update."""
        b = self._buffers  # (not four Module.__getattr__ calls: this runs on every update)
        t = DeviceTensors(b["dw_up"], b["dw_down"], b["b_max"], b["b_min"])
        key = (id(self.device_params), id(t.dw_up), t.dw_up._version, id(t.dw_down), t.dw_down._version,
               id(t.b_max), t.b_max._version, id(t.b_min), t.b_min._version)
        cached = self.__dict__.get("_pulse_model_cache")
        if cached is None or cached[0] != key:
            # keeps the ids alive; the last entry holds what the compiled update derives from the model
            cached = (key, self.device_params.pulse_model(t), self.device_params, {})
            self.__dict__["_pulse_model_cache"] = cached
        return cached[1]

    def loop_arrays(self) -> tuple:
        """The compiled loop's numpy views of the cached pulse model (``compiled.loop_arrays``), kept with it."""
        self.pulse_model()
        derived = self.__dict__["_pulse_model_cache"][3]
        if "loop" not in derived:
            derived["loop"] = _compiled.loop_arrays(self.__dict__["_pulse_model_cache"][1])
        return derived["loop"]

    def extra_repr(self) -> str:
        return f"{type(self.device_params).__name__}, shape={self.shape}"

    def clip(self, w: Tensor) -> Tensor:
        return torch.maximum(torch.minimum(w, self.b_max), self.b_min)

    @torch.no_grad()
    def set_weights(self, weights: Tensor) -> None:
        """Program hidden w = clip(W + reference) directly (no pulses); clears the write noise."""
        if tuple(weights.shape) != self.shape:
            raise ValueError(f"weights must have shape {self.shape}, got {tuple(weights.shape)}")
        self.w.copy_(self.clip(weights.to(self.w) + self.reference))
        self.write_noise.zero_()

    def weights(self) -> Tensor:
        """Effective weight without write noise: w − reference [N, K]."""
        return self.w - self.reference

    def read(self) -> Tensor:
        """What the forward/backward MVM sees: w + write noise − reference [N, K] (one compiled pass on
        the CPU when numba is present, the same numbers)."""
        b = self._buffers
        w, noise, ref = b["w"], b["write_noise"], b["reference"]
        if (w.device.type == "cpu" and w.dtype in (torch.float32, torch.float64) and noise.dtype == w.dtype
                and ref.dtype == w.dtype and w.is_contiguous() and noise.is_contiguous() and ref.is_contiguous()
                and _compiled.available()):
            return _compiled.read(w, noise, ref)
        return w + noise - ref

    def symmetry_point(self) -> Tensor:
        """Per-device symmetry point of the hidden weight (see the module doc)."""
        return symmetry_point(self.device_params, self.tensors)

    @torch.no_grad()
    def replay(self, directions: Tensor, w0: Union[float, Tensor] = 0.0,
               generator: Union[int, torch.Generator, None] = None) -> Tensor:
        """Hidden weights of every device [N·K, P + 1] under the pulse ``directions`` [P] (±1), starting
        at the *hidden* weight ``w0`` (a number, or [N, K]) clipped to each device's bounds; each pulse
        is :meth:`PulsedDevice.pulse` (own step, cycle-to-cycle noise from ``generator``, clipping).
        The array's state is not changed."""
        start = self.clip(torch.as_tensor(w0, dtype=self.w.dtype, device=self.w.device).expand(self.shape))
        flat = DeviceTensors(*(t.reshape(-1) for t in self.tensors))
        return apply_pulse_sequence(start.reshape(-1), directions, self.device_params.pulse_model(flat),
                                    make_generator(generator))

    @torch.no_grad()
    def calibrate_reference(self, n_alternating: int = 200, n_up: int = 200, n_down: int = 200,
                            generator: Union[int, torch.Generator, None] = None) -> Tensor:
        """Program each device's reference to its symmetry point as hardware would estimate it.

        Every device runs the measurement protocol of docs/physics.md §4 (``n_up`` up, ``n_down`` down, then
        ``n_alternating`` alternating pulses, starting at hidden w = 0) with its own steps and bounds and
        with cycle-to-cycle noise; the hidden weight after the last pulse becomes the reference (an
        exact copy: the reference device's own programming error is not modelled) and the device is
        left there, i.e. at effective weight 0. Alternating pulses park a device at its symmetry point
        only after enough of them (soft bounds: on the order of (w_max − w_min)/dw_min), so a short
        protocol leaves a bias toward the starting side. Returns the estimate − the true symmetry point
        [N, K] (hidden-weight units). ``generator``: the cycle-to-cycle noise (int seed or generator).
        """
        trace = self.replay(measurement_directions(n_up, n_down, n_alternating), 0.0, generator)
        estimate = trace[:, -1].reshape(self.shape).to(self.w.dtype)
        self.reference.copy_(estimate)
        self.w.copy_(estimate)
        self.write_noise.zero_()
        return estimate - self.symmetry_point()

    @torch.no_grad()
    def pulsed_update(self, x: Tensor, d: Tensor, lr: float, *, desired_bl: int = 31,
                      update_management: bool = True, bl_management: bool = True,
                      generator: Optional[torch.Generator] = None, exact: bool = False,
                      block_rows: Optional[int] = None, commit: bool = True) -> Tensor:
        """Stochastic pulse-train update ΔW ≈ −lr·Σ_m d_m·x_mᵀ of this array (docs/physics.md §4).

        x [M, K] inputs, d [M, N] output gradients; the pulse-train options are those of
        :func:`aimc_lab.kernels.pulsed_update.pulsed_update` (``exact``/``block_rows`` only affect the
        torch path). Returns the new hidden weights [N, K]; with ``commit`` (the default) they are
        stored by :meth:`commit` (write noise redrawn where a pulse changed the weight, from
        ``generator``), without it the array is left unchanged.
        """
        model = self.pulse_model()
        if commit and not exact and block_rows is None and self._fused(model):
            # the kernel and the commit in one compiled pass (the same draws and result)
            p = self.device_params
            rest = _compiled.update_in_place(self.w, self.write_noise, p.write_noise_std * p.dw_min, x, d, lr, model,
                                             desired_bl, update_management, bl_management, generator,
                                             self.loop_arrays())
            if rest is not None:  # more pulses than the loop takes: the kernel's closed forms
                self.commit(_apply_mixed_kernel(self.w, *rest, model, generator), generator)
            return self.w.clone()
        w_new = _pulsed_update_kernel(self.w, x, d, lr, model, desired_bl=desired_bl,
                                      update_management=update_management, bl_management=bl_management,
                                      generator=generator, exact=exact, block_rows=block_rows)
        if commit:
            self.commit(w_new, generator)
        return w_new

    @torch.no_grad()
    def signed_counts_update(self, counts: Tensor, *, generator: Optional[torch.Generator] = None,
                             commit: bool = True) -> Tensor:
        """Apply |counts| pulses of direction sign(counts) to each device (counts [N, K], integers as
        floats), each pulse by the rule of docs/physics.md §4; used by transfers that decide pulse counts
        digitally. Returns the new hidden weights; ``commit`` as in :meth:`pulsed_update`."""
        if tuple(counts.shape) != self.shape:
            raise ValueError(f"counts must have shape {self.shape}, got {tuple(counts.shape)}")
        model = self.pulse_model()
        if commit and self._fused(model):
            # the kernel's loop and the commit in one compiled pass (the same draws and result)
            p = self.device_params
            rest = _compiled.counts_in_place(self.w, self.write_noise, p.write_noise_std * p.dw_min, counts, model,
                                             generator, self.loop_arrays())
            if rest is not None:  # more pulses than the loop takes: the kernel's closed forms
                self.commit(_apply_mixed_kernel(self.w, *rest, model, generator), generator)
            return self.w.clone()
        w_new = _signed_counts_kernel(self.w, counts, model, generator)
        if commit:
            self.commit(w_new, generator)
        return w_new

    def _fused(self, model: PulseModel) -> bool:
        """Whether this array's updates take the compiled one-pass lane (``_compiled.serves_update``, torch backend)."""
        return _compiled.serves_update(self.w, self.write_noise, model) and _backend.resolve(self.w.device) == "torch"

    def fused_lane(self) -> bool:
        """Whether this array's writes run compiled in one pass (the same draws and results as the kernels)."""
        return self._fused(self.pulse_model())

    def column_model(self, cols: Tensor) -> PulseModel:
        """The pulse model of the devices [:, cols] (their own per-device constants): [N, n], the columns
        of the cached model (its slopes are not recomputed)."""
        model = self.pulse_model()

        def pick(v):
            return None if v is None else v.index_select(1, cols)

        return model._replace(tensors=DeviceTensors(*(pick(v) for v in model.tensors)),
                              gamma_up=pick(model.gamma_up), gamma_down=pick(model.gamma_down))

    @torch.no_grad()
    def pulsed_update_columns(self, cols: Tensor, x: Tensor, d: Tensor, lr: float, *, desired_bl: int = 31,
                              update_management: bool = True, bl_management: bool = True,
                              generator: Optional[torch.Generator] = None) -> None:
        """:meth:`pulsed_update` of the columns ``cols`` (distinct, long) only, committed: x [M, n] the inputs
        of those columns, d [M, N]. The kernel runs on the slice [:, cols] with its own device constants
        and :meth:`commit_columns` stores it (compiled in one pass on the CPU when numba is present, the
        same draws and result)."""
        self._write_columns(cols, generator, lambda scale, model: _compiled.update_columns_in_place(
            self.w, self.write_noise, scale, cols, x, d, lr, model, desired_bl, update_management, bl_management,
            generator, self.loop_arrays()), lambda w, model: _pulsed_update_kernel(
            w, x, d, lr, model, desired_bl=desired_bl, update_management=update_management,
            bl_management=bl_management, generator=generator))

    @torch.no_grad()
    def signed_counts_update_columns(self, cols: Tensor, counts: Tensor, *,
                                     generator: Optional[torch.Generator] = None) -> None:
        """:meth:`signed_counts_update` of the columns ``cols`` (distinct, long) only, counts [N, n],
        committed as :meth:`pulsed_update_columns` commits."""
        self._write_columns(cols, generator, lambda scale, model: _compiled.counts_columns_in_place(
            self.w, self.write_noise, scale, cols, counts, model, generator, self.loop_arrays()),
            lambda w, model: _signed_counts_kernel(w, counts, model, generator))

    def _write_columns(self, cols: Tensor, generator, compiled_write, kernel_write) -> None:
        """A write of the columns ``cols``: ``compiled_write(write scale, model)`` in place when the compiled
        lane serves (it returns the counts when a device gets more pulses than its loop takes: the
        kernel's closed forms then apply to the slice), else ``kernel_write(slice, slice model)``; the
        slice's new weights are stored by :meth:`commit_columns`."""
        model = self.pulse_model()
        if self._fused(model):
            p = self.device_params
            rest = compiled_write(p.write_noise_std * p.dw_min, model)
            if rest is None:
                return
            new_cols = _apply_mixed_kernel(self.w[:, cols], *rest, self.column_model(cols), generator)
        else:
            new_cols = kernel_write(self.w[:, cols], self.column_model(cols))
        self.commit_columns(cols, new_cols, generator)

    @torch.no_grad()
    def commit(self, w_new: Tensor, generator: Optional[torch.Generator]) -> None:
        """Store new hidden weights from a kernel; redraw write noise where the weight changed: one
        normal per changed device, in flat order (compiled on the CPU when numba is present, the same
        draws)."""
        p = self.device_params
        scale = p.write_noise_std * p.dw_min
        if (self.w.device.type == "cpu" and self.w.is_contiguous() and self.write_noise.is_contiguous()
                and w_new.dtype == self.w.dtype and _compiled.available()):
            _compiled.commit(self.w, w_new, self.write_noise, scale, generator)
            return
        if scale > 0:
            changed = (w_new != self.w).reshape(-1).nonzero().squeeze(-1)
            noise = torch.randn(changed.numel(), generator=generator, dtype=self.w.dtype, device=self.w.device)
            self.write_noise.view(-1).index_copy_(0, changed, scale * noise)
        self.w.copy_(w_new)

    @torch.no_grad()
    def commit_columns(self, cols: Tensor, new_cols: Tensor, generator: Optional[torch.Generator]) -> None:
        """:meth:`commit` of new hidden weights [N, n] of the columns ``cols`` (distinct) only: the write
        noise is redrawn where they changed, from draws of those columns alone (the other devices
        cannot have changed; equal in law to committing the whole array)."""
        p = self.device_params
        if p.write_noise_std > 0:
            touched = new_cols != self.w.index_select(1, cols)
            noise = torch.randn(new_cols.shape, generator=generator, dtype=self.w.dtype, device=self.w.device)
            old = self.write_noise.index_select(1, cols)
            self.write_noise.index_copy_(1, cols, torch.where(touched, p.write_noise_std * p.dw_min * noise, old))
        self.w.index_copy_(1, cols, new_cols.to(self.w.dtype))

    @torch.no_grad()
    def after_update(self, generator: Optional[torch.Generator]) -> None:
        """Decay (lifetime) and diffusion, once per update call; then clip to the bounds (a reset value
        outside a device's drawn bounds must not pull it out of them)."""
        p = self.device_params
        if p.lifetime > 0:
            self.w.sub_((self.w - self.reset_value) * self.decay_rate)
        if p.diffusion > 0:
            noise = torch.randn(self.shape, generator=generator, dtype=self.w.dtype, device=self.w.device)
            self.w.add_(self.diffusion_rate * noise)
        if p.lifetime > 0 or p.diffusion > 0:
            self.w.copy_(self.clip(self.w))

    @torch.no_grad()
    def reset_devices(self, mask: Optional[Tensor] = None, generator: Optional[torch.Generator] = None) -> None:
        """Reset devices (all, or where ``mask``) to reset·(1 + reset_dtod·ξ) + reset_std·ξ."""
        value = self.reset_value
        if self.device_params.reset_std > 0:
            value = value + self.device_params.reset_std * torch.randn(
                self.shape, generator=generator, dtype=self.w.dtype, device=self.w.device)
        value = self.clip(value)
        self.w.copy_(value if mask is None else torch.where(mask, value, self.w))
        self.write_noise.zero_()


# ---------------------------------------------------------------------------------------------
# pulse response (for plots and fitting)
# ---------------------------------------------------------------------------------------------


def measurement_directions(n_up: int = 200, n_down: int = 200, n_alternating: int = 200) -> Tensor:
    """The measurement protocol: ``n_up`` up pulses, ``n_down`` down pulses, then alternating up/down."""
    for name, value in (("n_up", n_up), ("n_down", n_down), ("n_alternating", n_alternating)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} = {value!r} is invalid; allowed: an integer >= 0")
    alt = torch.tensor([1.0, -1.0]).repeat((n_alternating + 1) // 2)[:n_alternating]
    return torch.cat([torch.ones(n_up), -torch.ones(n_down), alt])


def pulse_response(device: PulsedDevice, n_up: int = 200, n_down: int = 200, traces: int = 1,
                   seed: Union[int, torch.Generator, None] = 0, w0: float = 0.0) -> Tuple[Tensor, Tensor]:
    """Apply ``n_up`` up pulses then ``n_down`` down pulses to ``traces`` independent devices.

    Device-to-device spreads are drawn per trace (a ``DeviceArray`` of ``traces`` × 1 devices, with its
    reference device when ``subtract_symmetry_point``); each pulse is :meth:`PulsedDevice.pulse`, the
    same rule as the training update. ``w0`` is the starting **effective** weight (w − reference, what
    the network reads), as for a ``DeviceArray`` after ``set_weights(w0)``: each device starts at hidden
    w = clip(w0 + reference). Returns (pulse index [P + 1], **hidden** weights [traces, P + 1]) with
    P = n_up + n_down; column 0 is the hidden start.
    """
    directions = measurement_directions(n_up, n_down, 0)
    if isinstance(traces, bool) or not isinstance(traces, int) or traces < 1:
        raise ValueError(f"traces = {traces!r} is invalid; allowed: an integer >= 1")
    if isinstance(w0, bool) or not isinstance(w0, (int, float)):
        raise TypeError(f"w0 must be a number (effective weight), got {type(w0).__name__} {w0!r}")
    if not -MAX_MAGNITUDE <= w0 <= MAX_MAGNITUDE:  # also NaN; a comparison, so 10**400 cannot overflow
        raise ValueError(f"w0 = {w0!r} is invalid; allowed: an effective weight in "
                         f"[{-MAX_MAGNITUDE:g}, {MAX_MAGNITUDE:g}]")
    gen = make_generator(seed)
    array = DeviceArray(device, traces, 1, seed=gen)
    trace = array.replay(directions, array.reference + float(w0), gen)
    return torch.arange(n_up + n_down + 1), trace


# ---------------------------------------------------------------------------------------------
# presets (numbers from AIHWKIT's preset documentation, aihwkit.simulator.presets.devices)
# ---------------------------------------------------------------------------------------------


def reram_es(**overrides) -> ExpStep:
    """ReRAM, exponential-step model: AIHWKIT's ``ReRamESPresetDevice`` numbers, a fit of ExpStep to
    the ReRAM of Gong et al., Nat. Commun. 9, 2102 (2018): dw_min 0.00135, up_down 0.259, bounds ±1,
    a = b = −0.5, γ_up = γ_down = 5, A_up −1.18445, A_down −0.081404, dtod (0.2, 0.05, 0.3, 0.3);
    cycle-to-cycle 5·dw_min additive, write noise 75·dw_min."""
    base = dict(dw_min=0.00135, up_down=0.259359, w_max=1.0, w_min=-1.0, a=-0.5, b=-0.5, gamma_up=5.0,
                gamma_down=5.0, A_up=-1.18445, A_down=-0.081404, dw_min_dtod=0.2, up_down_dtod=0.05,
                w_max_dtod=0.3, w_min_dtod=0.3, dw_min_std=5.0, mult_noise=False, write_noise_std=75.0)
    return ExpStep(**{**base, **overrides})


def reram_sb(**overrides) -> SoftBounds:
    """ReRAM, soft bounds with a reference device: AIHWKIT's ``ReRamSBPresetDevice`` (a loose fit of
    SoftBounds to Gong et al., Nat. Commun. 2018): dw_min 0.002, bounds 1.25 / −0.75 with dtod
    0.3/1.25 and 0.3/0.75, dw_min_dtod 0.3, up_down_dtod 0.01, cycle-to-cycle 3.75·dw_min additive,
    write noise 56·dw_min. AIHWKIT assumes the symmetry point was calibrated away by a reference device
    without modelling it; here the reference is modelled (``subtract_symmetry_point=True``)."""
    base = dict(dw_min=0.002, up_down=0.0, w_max=1.25, w_min=-0.75, dw_min_dtod=0.3, up_down_dtod=0.01,
                w_max_dtod=0.3 / 1.25, w_min_dtod=0.3 / 0.75, dw_min_std=3.75, mult_noise=False,
                write_noise_std=56.0, subtract_symmetry_point=True)
    return SoftBounds(**{**base, **overrides})


def capacitor(**overrides) -> LinearStep:
    """Capacitor: AIHWKIT's ``CapacitorPresetDevice``, LinearStep fit to Li et al., VLSI 2018:
    dw_min 0.005 (≈ 400 steps over ±1), γ_up = γ_down = 0.05, dtod (0.1, 0.06, 0.07, 0.07),
    cycle-to-cycle 0.3 (multiplicative here), leakage lifetime 1e6 update calls with dtod 0.3."""
    base = dict(dw_min=0.005, up_down=0.0, w_max=1.0, w_min=-1.0, gamma_up=0.05, gamma_down=0.05,
                dw_min_dtod=0.1, up_down_dtod=0.06, w_max_dtod=0.07, w_min_dtod=0.07, dw_min_std=0.3,
                lifetime=1.0e6, lifetime_dtod=0.3)
    return LinearStep(**{**base, **overrides})


def ecram(**overrides) -> LinearStep:
    """Li-ion ECRAM: AIHWKIT's ``EcRamPresetDevice``, LinearStep fit to Tang et al., IEDM 2018, range
    shifted so the symmetry point is near zero: dw_min 0.002, bounds 1.1724 / −0.8276, γ_up 0.1153,
    γ_down 0.5085, dtod (0.1, 0.01, 0.05, 0.05), cycle-to-cycle 0.3 multiplicative."""
    base = dict(dw_min=0.002, up_down=0.0, w_max=1.1724, w_min=-0.8276, gamma_up=0.1153,
                gamma_down=0.5085, dw_min_dtod=0.1, up_down_dtod=0.01, w_max_dtod=0.05, w_min_dtod=0.05,
                dw_min_std=0.3)
    return LinearStep(**{**base, **overrides})


def pcm(**overrides) -> ExpStep:
    """PCM: the ExpStep shape of AIHWKIT's ``PCMPresetDevice`` (Ge2Sb2Te5, Nandakumar et al., Front.
    Neurosci. 2020): dw_min 0.01, γ = 2.5, A_up −27.235, A_down −2.235, a = −1 on a range of width 2.
    Simplification: AIHWKIT's device is uni-directional on [0, 2] and used as a refreshed pair; here the
    range is shifted to [−1, 1] (b = −1 keeps z = −(w + 1) as on [0, 2]) and used bidirectionally."""
    base = dict(dw_min=0.01, up_down=0.0, w_max=1.0, w_min=-1.0, a=-1.0, b=-1.0, gamma_up=2.5,
                gamma_down=2.5, A_up=-27.235, A_down=-2.235, dw_min_dtod=0.2, up_down_dtod=0.05,
                w_max_dtod=0.1, w_min_dtod=0.1, dw_min_std=0.6)
    return ExpStep(**{**base, **overrides})


def idealized(**overrides) -> ConstantStep:
    """Idealized: AIHWKIT's ``IdealizedPresetDevice`` (Gokmen & Vlasov, Front. Neurosci. 2016 specs
    with ~10000 states): ConstantStep, dw_min 0.0002, bounds ±1 with dtod 0.3, dw_min_dtod 0.3,
    cycle-to-cycle 0.3, no up/down asymmetry."""
    base = dict(dw_min=0.0002, dw_min_dtod=0.3, dw_min_std=0.3, up_down=0.0, up_down_dtod=0.0,
                w_max=1.0, w_min=-1.0, w_max_dtod=0.3, w_min_dtod=0.3)
    return ConstantStep(**{**base, **overrides})


PRESETS = {"reram_es": reram_es, "reram_sb": reram_sb, "capacitor": capacitor, "ecram": ecram,
           "pcm": pcm, "idealized": idealized}
