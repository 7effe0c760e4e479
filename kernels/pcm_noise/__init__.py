"""PCM programming noise and drift + read noise on whole conductance tensors: dispatches to the
Triton kernels or the torch reference (the spec)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from aimc_lab.config import NoiseModelParameters
from aimc_lab.kernels import backend
from aimc_lab.kernels.pcm_noise.reference import pcm_at_time as pcm_at_time_reference
from aimc_lab.kernels.pcm_noise.reference import pcm_program as pcm_program_reference

__all__ = ["pcm_program", "pcm_at_time", "pcm_program_reference", "pcm_at_time_reference"]


def pcm_program(g_target: Tensor, params: NoiseModelParameters,
                generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
    """(g_prog, nu) for targets ``g_target`` in µS; see :func:`reference.pcm_program`."""
    if backend.resolve(g_target.device) == "triton":
        from aimc_lab.kernels.pcm_noise.triton_impl import pcm_program as pcm_program_triton

        return pcm_program_triton(g_target, params, generator)
    return pcm_program_reference(g_target, params, generator)


def pcm_at_time(g_prog: Tensor, nu: Tensor, t_inference: float, params: NoiseModelParameters,
                generator: Optional[torch.Generator] = None) -> Tensor:
    """Conductances ``t_inference`` seconds after programming; see :func:`reference.pcm_at_time`."""
    if backend.resolve(g_prog.device) == "triton":
        from aimc_lab.kernels.pcm_noise.triton_impl import pcm_at_time as pcm_at_time_triton

        return pcm_at_time_triton(g_prog, nu, t_inference, params, generator)
    return pcm_at_time_reference(g_prog, nu, t_inference, params, generator)
