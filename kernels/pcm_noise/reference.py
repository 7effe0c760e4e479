"""The PCM statistical model (docs/physics.md §2), pure torch: THE SPEC, and the one place its
equations and constants live.

:mod:`aimc_lab.devices.pcm` (the tiles' :class:`PCMLikeNoise`) calls these functions, and the Triton
kernels take the constants below as arguments, so a change here reaches every implementation.

* :func:`pcm_program`: programming noise and drift exponents, sampled once at programming;
* :func:`pcm_at_time`: drift to ``t_inference`` seconds after programming plus 1/f read noise.

Conductances in µS; inputs are never modified. Randomness only from ``generator``, drawn in this
order: programming noise ξ_P, then drift-exponent noise ξ_ν; read noise ξ_R (one draw per device).
"""

from __future__ import annotations

import math
from typing import Iterator, List, Optional, Tuple

import torch
from torch import Tensor

from aimc_lab._checks import check_time
from aimc_lab.config import NoiseModelParameters

__all__ = ["PROG_G_REF", "DRIFT_G_FLOOR", "DRIFT_MU", "DRIFT_SIGMA", "READ_Q_S",
           "programming_noise_std", "drift_exponent_stats", "read_noise_std", "programming_noise",
           "drift_exponents", "read_at_time", "pcm_program", "pcm_at_time"]

#: σ_P scales with g_max / PROG_G_REF (the coefficients are fitted at g_max = 25 µS).
PROG_G_REF = 25.0
#: ĝ' = max(|g_T|/g_max, DRIFT_G_FLOOR) in the drift-exponent statistics.
DRIFT_G_FLOOR = 1e-7
#: μ_ν = clip(slope·ln ĝ' + intercept, lo, hi) as (slope, intercept, lo, hi).
DRIFT_MU = (-0.0155, 0.0244, 0.049, 0.1)
#: σ_ν = clip(slope·ln ĝ' + intercept, lo, hi) as (slope, intercept, lo, hi).
DRIFT_SIGMA = (-0.0125, -0.0059, 0.008, 0.045)
#: Q_s = min(scale / max((|g_P|/g_max)^exponent, floor), cap) as (scale, exponent, floor, cap).
READ_Q_S = (0.0088, 0.65, 1e-3, 0.2)


def programming_noise_std(g_target: Tensor, params: NoiseModelParameters) -> Tensor:
    """σ_P(g_T) = (g_max/25 µS)·(c0 + c1·ĝ + c2·ĝ²), ĝ = g_T/g_max, in µS (a new tensor)."""
    c0, c1, c2 = params.prog_coeff
    gh = g_target / params.g_max
    square = (gh * c2).mul_(gh)  # in place from here: two temporaries of g_T's size, not six
    return gh.mul_(c1).add_(c0).add_(square).mul_(params.g_max / PROG_G_REF)


def drift_exponent_stats(g_target: Tensor, params: NoiseModelParameters) -> Tuple[Tensor, Tensor]:
    """(μ_ν, σ_ν) of the drift exponent for targets g_T."""
    log_g = (g_target.abs() / params.g_max).clamp_(min=DRIFT_G_FLOOR).log_()
    s_slope, s_icpt, s_lo, s_hi = DRIFT_SIGMA
    m_slope, m_icpt, m_lo, m_hi = DRIFT_MU
    sigma = (log_g * s_slope).add_(s_icpt).clamp_(s_lo, s_hi)
    mu = log_g.mul_(m_slope).add_(m_icpt).clamp_(m_lo, m_hi)
    return mu, sigma


def read_noise_std(g_prog: Tensor, g_drifted: Tensor, t: float, params: NoiseModelParameters) -> Tensor:
    """σ_R = |g_D|·Q_s·sqrt(ln((t + t_read)/(2·t_read))) with Q_s from |g_P| (t includes t_0)."""
    scale, exponent, floor, cap = READ_Q_S
    # Q_s >= 0, so |Q_s·g_D| = Q_s·|g_D| exactly, without a temporary |g_D|
    q_s = (g_prog.abs() / params.g_max).pow_(exponent).clamp_(min=floor).reciprocal_().mul_(scale).clamp_(max=cap)
    return q_s.mul_(g_drifted).abs_().mul_(math.sqrt(math.log((t + params.t_read) / (2 * params.t_read))))


_BLOCK = 1 << 20  # elements per block of the element-wise work (4 MiB in fp32)


def _randn_like(g: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    return torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)


def _blocks(out: Tensor, *inputs: Tensor) -> Iterator[List[Tensor]]:
    """Matching flat blocks of ``out`` (contiguous, written in place) and ``inputs`` (read only)."""
    flat = [out.view(-1)] + [t.reshape(-1) for t in inputs]
    for lo in range(0, flat[0].numel(), _BLOCK):
        yield [f[lo:lo + _BLOCK] for f in flat]


# Each function draws its ξ for the whole tensor into the tensor it returns, then finishes it in place
# block by block: one allocation per call, and the temporaries stay small (on a 4096² tile pair a
# whole-size temporary is 128 MiB of fresh pages, which costs more than the arithmetic on it).
def programming_noise(g_target: Tensor, params: NoiseModelParameters,
                      generator: Optional[torch.Generator] = None) -> Tensor:
    """g_P = max(0, g_T + λ_P·σ_P(g_T)·ξ_P)."""
    out = _randn_like(g_target, generator)
    for xi, g in _blocks(out, g_target):
        xi.mul_(programming_noise_std(g, params).mul_(params.prog_noise_scale)).add_(g).clamp_(min=0.0)
    return out


def drift_exponents(g_target: Tensor, params: NoiseModelParameters,
                    generator: Optional[torch.Generator] = None) -> Tensor:
    """ν = λ_ν·|μ_ν(g_T) + σ_ν(g_T)·ξ_ν|."""
    out = _randn_like(g_target, generator)
    for xi, g in _blocks(out, g_target):
        mu, sigma = drift_exponent_stats(g, params)
        xi.mul_(sigma).add_(mu).abs_().mul_(params.drift_scale)
    return out


def read_at_time(g_prog: Tensor, nu: Tensor, t_inference: float, params: NoiseModelParameters,
                 generator: Optional[torch.Generator] = None) -> Tensor:
    """g(t) = max(0, g_D + λ_R·σ_R·ξ_R) with g_D = g_P·(t/t_0)^(−ν), t = t_inference + t_0
    (``g_prog`` and ``nu`` broadcast)."""
    t = check_time(t_inference) + params.t_0
    log_ratio = math.log(t / params.t_0)
    g_prog, nu = torch.broadcast_tensors(g_prog, nu)
    out = _randn_like(g_prog, generator)
    for xi, gp, n in _blocks(out, g_prog, nu):
        g_drift = (n * -log_ratio).exp_().mul_(gp)  # g_P·(t/t_0)^(−ν)
        sigma = read_noise_std(gp, g_drift, t, params).mul_(params.read_noise_scale)
        xi.mul_(sigma).add_(g_drift).clamp_(min=0.0)
    return out


def pcm_program(g_target: Tensor, params: NoiseModelParameters,
                generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
    """Programmed conductances g_P = max(0, g_T + λ_P·σ_P(g_T)·ξ) and drift exponents ν.

    Returns ``(g_prog, nu)``, both shaped like ``g_target``.
    """
    return programming_noise(g_target, params, generator), drift_exponents(g_target, params, generator)


def pcm_at_time(g_prog: Tensor, nu: Tensor, t_inference: float, params: NoiseModelParameters,
                generator: Optional[torch.Generator] = None) -> Tensor:
    """g(t) = max(0, g_D + λ_R·σ_R·ξ) with g_D = g_P·(t/t_0)^(−ν), t = t_inference + t_0."""
    if g_prog.shape != nu.shape:
        raise ValueError(f"g_prog {tuple(g_prog.shape)} and nu {tuple(nu.shape)} must have the same shape")
    return read_at_time(g_prog, nu, t_inference, params, generator)
