"""The statistical PCM model (PHYSICS §2): programming noise, drift, 1/f read noise.

Pure functions of (conductances, parameters, t, generator) plus :class:`PCMLikeNoise`, the
:class:`~aimc_lab.devices.base.NoiseModel` that the tiles use. Conductances in µS; defaults from
Le Gallo et al. (APL Mach. Learn. 2023) / Nandakumar et al. as listed in PHYSICS.md.
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
    return (params.g_max / 25.0) * (c0 + c1 * gh + c2 * gh * gh)


def drift_exponent_stats(g_target: Tensor, params: NoiseModelParameters):
    """(μ_ν, σ_ν) of the drift exponent for targets g_T."""
    gh = (g_target.abs() / params.g_max).clamp(min=1e-7)
    log_g = torch.log(gh)
    mu = (-0.0155 * log_g + 0.0244).clamp(0.049, 0.1)
    sigma = (-0.0125 * log_g - 0.0059).clamp(0.008, 0.045)
    return mu, sigma


def read_noise_std(g_prog: Tensor, g_drifted: Tensor, t: float, params: NoiseModelParameters) -> Tensor:
    """σ_R = |g_D|·Q_s·sqrt(ln((t + t_read)/(2·t_read))) with Q_s from |g_P| (t includes t_0)."""
    q_s = (0.0088 / ((g_prog.abs() / params.g_max) ** 0.65).clamp(min=1e-3)).clamp(max=0.2)
    return g_drifted.abs() * q_s * math.sqrt(math.log((t + params.t_read) / (2 * params.t_read)))


class PCMLikeNoise(NoiseModel):
    """Phase-change memory: programming noise, power-law drift and accumulated 1/f read noise."""

    def __init__(self, params: Optional[NoiseModelParameters] = None) -> None:
        params = params or NoiseModelParameters(kind="pcm")
        super().__init__(params.g_max)
        self.params = params

    def programming_noise(self, g_target: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        xi = torch.randn(g_target.shape, generator=generator, device=g_target.device, dtype=g_target.dtype)
        sigma = programming_noise_std(g_target, self.params)
        return (g_target + self.params.prog_noise_scale * sigma * xi).clamp(min=0.0)

    def drift_exponents(self, g_target: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        mu, sigma = drift_exponent_stats(g_target, self.params)
        xi = torch.randn(g_target.shape, generator=generator, device=g_target.device, dtype=g_target.dtype)
        return self.params.drift_scale * (mu + sigma * xi).abs()

    def at_time(self, g_prog: Tensor, nu: Tensor, g_target: Tensor, t_inference: float,
                generator: Optional[torch.Generator]) -> Tensor:
        t = check_time(t_inference) + self.params.t_0
        g_drift = g_prog * (t / self.params.t_0) ** (-nu)
        sigma = read_noise_std(g_prog, g_drift, t, self.params)
        xi = torch.randn(g_prog.shape, generator=generator, device=g_prog.device, dtype=g_prog.dtype)
        return (g_drift + self.params.read_noise_scale * sigma * xi).clamp(min=0.0)

    def __repr__(self) -> str:
        p = self.params
        return (f"PCMLikeNoise(g_max={p.g_max}, prog_noise_scale={p.prog_noise_scale}, "
                f"drift_scale={p.drift_scale}, read_noise_scale={p.read_noise_scale})")
