"""A statistical ReRAM inference model (docs/physics.md §2, "Other models"), after Wan et al., Nature 2022.

The model follows the phenomenological fit that IBM's AIHWKIT documents as ``ReRamWan2022NoiseModel``
(Wan et al., "A compute-in-memory chip based on resistive random-access memory", Nature 608, 504-512,
2022): the deviation of a programmed device from its target conductance is Gaussian with a standard
deviation that is a 4th-order polynomial in the normalized target ĝ = g_T/g_max,

    σ(ĝ; t) = (g_max / 40 µS) · Σ_{i=0..4} c_i(t) · ĝ^i        [µS],

fitted (in µS, for g_max = 40 µS) at three times after programming. Coefficients (c0, c1, c2, c3, c4),
as given in AIHWKIT's documentation/source of that class:

    t = 1 s       (0.348, 16.030, -43.853, 45.393, -16.815)
    t = 1 day     (0.701, 22.086, -50.773, 47.095, -16.458)
    t = 2 days    (0.782, 20.274, -43.507, 37.062, -11.934)

At ĝ = 1 and g_max = 40 µS this is σ ≈ 1.10 µS (2.8 %) at 1 s, 2.65 µS at 1 day; at ĝ = 0.5 about
2.0 µS (1 s). ReRAM shows no power-law drift, so the drift exponents are 0; the conductances relax
randomly around the target instead, and the deviation grows with time.

Workflow (the three hooks of :class:`~aimc_lab.devices.base.NoiseModel`):

* programming: g_P = max(0, g_T + λ_P·σ(ĝ; 1 s)·ξ), λ_P = ``prog_noise_scale``;
* drift exponents: ν = 0 (no power-law drift; ``drift_scale`` does *not* act on ν here);
* at t (seconds after programming):
  g(t) = max(0, g_P + λ_D·sqrt(max(σ(ĝ; t)² − σ(ĝ; 1 s)², 0))·ξ'), λ_D = ``drift_scale``.
  With λ_P = λ_D = 1 the total deviation from the target then has std max(σ(t), σ(1 s)), which is
  the tabulated σ(t) (the 1-day and 2-day polynomials exceed the 1-s one on [0, 1]), while the
  programming-noise instance drawn at ``program()`` is kept. σ(ĝ; t) for t between table points is
  interpolated linearly in log10(t); below 1 s it is σ(1 s) (so ``drift(0)`` returns g_P), beyond
  2 days it is held at σ(2 days).

Deviations from AIHWKIT, on purpose: (1) AIHWKIT accepts only the three table times and redraws the
whole deviation from the target at each read (forgetting the programming instance); here any
t in [0, 10^18] s is allowed (log-time interpolation) and only the growth beyond the 1-s deviation is redrawn
(fresh at each ``drift(t)`` call, like the PCM read noise). (2) σ is scaled by g_max/40 µS so the
*relative* deviation does not depend on the chosen g_max (AIHWKIT's comment says so; its default
code path leaves the scale at 1). (3) Time is the time since programming, without the PCM model's
t_0 = 20 s offset.

Read noise: none in this model (Wan et al. give no separate 1/f data). For short-term read noise of
about 1 %, set ``forward.w_noise = 0.01`` with ``w_noise_type = "additive_constant"`` in the IO
parameters, as AIHWKIT suggests. ``read_noise_scale``, ``t_0``, ``t_read`` and ``prog_coeff`` of
:class:`~aimc_lab.config.NoiseModelParameters` are not used by this model.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from aimc_lab.config import NoiseModelParameters
from aimc_lab.devices.base import NoiseModel, check_time

__all__ = ["WAN2022_COEFFS", "WAN2022_G_MAX_REF", "reram_sigma_poly", "reram_deviation_std", "ReRAMLikeNoise"]

#: σ polynomial coefficients (c0..c4, µS at g_max = 40 µS) per time after programming (seconds).
WAN2022_COEFFS: Dict[float, Tuple[float, float, float, float, float]] = {
    1.0: (0.348, 16.030, -43.853, 45.393, -16.815),
    86400.0: (0.701, 22.086, -50.773, 47.095, -16.458),
    172800.0: (0.782, 20.274, -43.507, 37.062, -11.934),
}
#: The g_max (µS) the coefficients were fitted for.
WAN2022_G_MAX_REF = 40.0


def reram_sigma_poly(g_target: Tensor, coeffs: Tuple[float, ...], g_max: float) -> Tensor:
    """σ = (g_max/40 µS)·Σ_i c_i·ĝ^i with ĝ = g_T/g_max (Horner), in µS."""
    gh = g_target / g_max
    sigma = torch.full_like(gh, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        sigma = sigma * gh + c
    return sigma * (g_max / WAN2022_G_MAX_REF)


def reram_deviation_std(g_target: Tensor, t: float, g_max: float,
                        table: Optional[Dict[float, Tuple[float, ...]]] = None) -> Tensor:
    """σ(ĝ; t): the tabulated polynomials, linearly interpolated in log10(t), held outside the table."""
    table = WAN2022_COEFFS if table is None else table
    times = sorted(table)
    t = check_time(t)
    if t <= times[0]:
        return reram_sigma_poly(g_target, table[times[0]], g_max)
    if t >= times[-1]:
        return reram_sigma_poly(g_target, table[times[-1]], g_max)
    for lo, hi in zip(times[:-1], times[1:]):
        if lo <= t <= hi:
            f = (math.log10(t) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
            return ((1 - f) * reram_sigma_poly(g_target, table[lo], g_max)
                    + f * reram_sigma_poly(g_target, table[hi], g_max))
    raise AssertionError("unreachable: t lies inside the table")


class ReRAMLikeNoise(NoiseModel):
    """ReRAM after Wan et al. 2022: polynomial programming deviation growing in time, no drift, no read
    noise (see the module docstring for the equations and the deviations from AIHWKIT)."""

    def __init__(self, params: Optional[NoiseModelParameters] = None) -> None:
        params = params or NoiseModelParameters(kind="reram")
        super().__init__(params.g_max)
        self.params = params
        self.t_program = min(WAN2022_COEFFS)

    def sigma(self, g_target: Tensor, t: float) -> Tensor:
        """σ(ĝ; t) in µS (t in seconds after programming), before the noise scales."""
        return reram_deviation_std(g_target, t, self.g_max)

    def programming_noise(self, g_target: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        xi = torch.randn(g_target.shape, generator=generator, device=g_target.device, dtype=g_target.dtype)
        sigma = self.sigma(g_target, self.t_program)
        return (g_target + self.params.prog_noise_scale * sigma * xi).clamp(min=0.0)

    def drift_exponents(self, g_target: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        return torch.zeros_like(g_target)

    def at_time(self, g_prog: Tensor, nu: Tensor, g_target: Tensor, t_inference: float,
                generator: Optional[torch.Generator]) -> Tensor:
        t = check_time(t_inference)
        s0 = self.sigma(g_target, self.t_program)
        st = self.sigma(g_target, t)
        growth = (st * st - s0 * s0).clamp(min=0.0).sqrt()
        xi = torch.randn(g_prog.shape, generator=generator, device=g_prog.device, dtype=g_prog.dtype)
        return (g_prog + self.params.drift_scale * growth * xi).clamp(min=0.0)

    def __repr__(self) -> str:
        p = self.params
        return f"ReRAMLikeNoise(g_max={p.g_max}, prog_noise_scale={p.prog_noise_scale}, drift_scale={p.drift_scale})"
