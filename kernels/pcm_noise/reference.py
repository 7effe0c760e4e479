"""The PCM statistical model (docs/physics.md §2) on a whole conductance tensor, pure torch: the spec.

Thin functional wrappers around :mod:`aimc_lab.devices.pcm` (the physics lives there):

* :func:`pcm_program`: programming noise and drift exponents, sampled once at programming;
* :func:`pcm_at_time`: drift to ``t_inference`` seconds after programming plus 1/f read noise.

Conductances in µS; inputs are never modified. Randomness only from ``generator``, drawn in this
order: programming noise ξ_P, then drift-exponent noise ξ_ν; read noise ξ_R.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from aimc_lab.config import NoiseModelParameters
from aimc_lab.devices.pcm import PCMLikeNoise

__all__ = ["pcm_program", "pcm_at_time"]


def pcm_program(g_target: Tensor, params: NoiseModelParameters,
                generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
    """Programmed conductances g_P = max(0, g_T + λ_P·σ_P(g_T)·ξ) and drift exponents ν.

    Returns ``(g_prog, nu)``, both shaped like ``g_target``.
    """
    model = PCMLikeNoise(params)
    g_prog = model.programming_noise(g_target, generator)
    nu = model.drift_exponents(g_target, generator)
    return g_prog, nu


def pcm_at_time(g_prog: Tensor, nu: Tensor, t_inference: float, params: NoiseModelParameters,
                generator: Optional[torch.Generator] = None) -> Tensor:
    """g(t) = max(0, g_D + λ_R·σ_R·ξ) with g_D = g_P·(t/t_0)^(−ν), t = t_inference + t_0."""
    if g_prog.shape != nu.shape:
        raise ValueError(f"g_prog {tuple(g_prog.shape)} and nu {tuple(nu.shape)} must have the same shape")
    return PCMLikeNoise(params).at_time(g_prog, nu, g_prog, t_inference, generator)
