"""The statistical PCM model (docs/physics.md §2): programming noise, drift, 1/f read noise.

Pure functions of (conductances, parameters, t, generator) plus :class:`PCMLikeNoise`, the
:class:`~aimc_lab.devices.base.NoiseModel` that the tiles use. Conductances in µS; defaults from
Le Gallo et al. (APL Mach. Learn. 2023) / Nandakumar et al. as listed in docs/physics.md.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from aimc_lab.config import NoiseModelParameters
from aimc_lab.devices.base import NoiseModel, check_time

__all__ = ["programming_noise_std", "drift_exponent_stats", "read_noise_std", "PCMLikeNoise"]


def programming_noise_std(g_target: Tensor, params: NoiseModelParameters) -> Tensor:
    """σ_P(g_T) = (g_max/25 µS)·(c0 + c1·ĝ + c2·ĝ²), ĝ = g_T/g_max, in µS."""
    c0, c1, c2 = params.prog_coeff
    gh = g_target / params.g_max
    square = (gh * c2).mul_(gh)  # in place from here: two temporaries of g_T's size, not six
    return gh.mul_(c1).add_(c0).add_(square).mul_(params.g_max / 25.0)


def drift_exponent_stats(g_target: Tensor, params: NoiseModelParameters):
    """(μ_ν, σ_ν) of the drift exponent for targets g_T."""
    log_g = (g_target.abs() / params.g_max).clamp_(min=1e-7).log_()
    sigma = (log_g * -0.0125).sub_(0.0059).clamp_(0.008, 0.045)
    mu = log_g.mul_(-0.0155).add_(0.0244).clamp_(0.049, 0.1)
    return mu, sigma


def read_noise_std(g_prog: Tensor, g_drifted: Tensor, t: float, params: NoiseModelParameters) -> Tensor:
    """σ_R = |g_D|·Q_s·sqrt(ln((t + t_read)/(2·t_read))) with Q_s from |g_P| (t includes t_0)."""
    # Q_s >= 0, so |Q_s·g_D| = Q_s·|g_D| exactly, without a temporary |g_D|
    q_s = (g_prog.abs() / params.g_max).pow_(0.65).clamp_(min=1e-3).reciprocal_().mul_(0.0088).clamp_(max=0.2)
    return q_s.mul_(g_drifted).abs_().mul_(math.sqrt(math.log((t + params.t_read) / (2 * params.t_read))))


_BLOCK = 1 << 20  # elements per block of the hooks' element-wise work (4 MiB in fp32)


def _randn_like(g: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    return torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)


def _blocks(out: Tensor, *inputs: Tensor):
    """Matching flat blocks of ``out`` (contiguous, written in place) and ``inputs`` (read only)."""
    flat = [out.view(-1)] + [t.reshape(-1) for t in inputs]
    for lo in range(0, flat[0].numel(), _BLOCK):
        yield [f[lo:lo + _BLOCK] for f in flat]


class PCMLikeNoise(NoiseModel):
    """Phase-change memory: programming noise, power-law drift and accumulated 1/f read noise."""

    def __init__(self, params: Optional[NoiseModelParameters] = None) -> None:
        params = params or NoiseModelParameters(kind="pcm")
        super().__init__(params.g_max)
        self.params = params

    # Each hook draws its ξ for the whole tensor into the tensor it returns, then finishes it in place
    # block by block: one allocation per call, and the temporaries stay small (on a 4096² tile pair a
    # whole-size temporary is 128 MiB of fresh pages, which costs more than the arithmetic on it).
    def programming_noise(self, g_target: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        out = _randn_like(g_target, generator)
        for xi, g in _blocks(out, g_target):
            xi.mul_(programming_noise_std(g, self.params).mul_(self.params.prog_noise_scale)).add_(g).clamp_(min=0.0)
        return out

    def drift_exponents(self, g_target: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        out = _randn_like(g_target, generator)
        for xi, g in _blocks(out, g_target):
            mu, sigma = drift_exponent_stats(g, self.params)
            xi.mul_(sigma).add_(mu).abs_().mul_(self.params.drift_scale)
        return out

    def at_time(self, g_prog: Tensor, nu: Tensor, g_target: Tensor, t_inference: float,
                generator: Optional[torch.Generator]) -> Tensor:
        t = check_time(t_inference) + self.params.t_0
        log_ratio = math.log(t / self.params.t_0)
        g_prog, nu = torch.broadcast_tensors(g_prog, nu)
        out = _randn_like(g_prog, generator)
        for xi, gp, n in _blocks(out, g_prog, nu):
            g_drift = (n * -log_ratio).exp_().mul_(gp)  # g_P·(t/t_0)^(−ν)
            sigma = read_noise_std(gp, g_drift, t, self.params).mul_(self.params.read_noise_scale)
            xi.mul_(sigma).add_(g_drift).clamp_(min=0.0)
        return out

    def __repr__(self) -> str:
        p = self.params
        return (f"PCMLikeNoise(g_max={p.g_max}, prog_noise_scale={p.prog_noise_scale}, "
                f"drift_scale={p.drift_scale}, read_noise_scale={p.read_noise_scale})")
