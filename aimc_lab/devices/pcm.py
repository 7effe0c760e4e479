"""The statistical PCM model (docs/physics.md §2): programming noise, drift, 1/f read noise.

:class:`PCMLikeNoise`, the :class:`~aimc_lab.devices.base.NoiseModel` that the tiles use, and the
model's equations (σ_P, the drift-exponent statistics, σ_R), which live with their constants in
:mod:`aimc_lab.kernels.pcm_noise.reference` and are re-exported here. Conductances in µS; defaults from
Le Gallo et al. (APL Mach. Learn. 2023) / Nandakumar et al. as listed in docs/physics.md.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from aimc_lab.config import NoiseModelParameters
from aimc_lab.devices.base import NoiseModel
from aimc_lab.kernels.pcm_noise import reference as _pcm
# the equations live in the kernel layer (one place for the torch spec and the Triton kernels' constants)
from aimc_lab.kernels.pcm_noise.reference import drift_exponent_stats, programming_noise_std, read_noise_std

__all__ = ["programming_noise_std", "drift_exponent_stats", "read_noise_std", "PCMLikeNoise"]


class PCMLikeNoise(NoiseModel):
    """Phase-change memory: programming noise, power-law drift and accumulated 1/f read noise."""

    def __init__(self, params: Optional[NoiseModelParameters] = None) -> None:
        params = params or NoiseModelParameters(kind="pcm")
        super().__init__(params.g_max)
        self.params = params

    def programming_noise(self, g_target: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        return _pcm.programming_noise(g_target, self.params, generator)

    def drift_exponents(self, g_target: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        return _pcm.drift_exponents(g_target, self.params, generator)

    def at_time(self, g_prog: Tensor, nu: Tensor, g_target: Tensor, t_inference: float,
                generator: Optional[torch.Generator]) -> Tensor:
        return _pcm.read_at_time(g_prog, nu, t_inference, self.params, generator)

    def __repr__(self) -> str:
        p = self.params
        return (f"PCMLikeNoise(g_max={p.g_max}, prog_noise_scale={p.prog_noise_scale}, "
                f"drift_scale={p.drift_scale}, read_noise_scale={p.read_noise_scale})")
