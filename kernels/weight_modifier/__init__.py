"""Weight-noise modifiers: dispatches to the Triton kernel or the torch reference (the spec)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from aimc_lab.config import WeightModifierParameters
from aimc_lab.kernels import backend
from aimc_lab.kernels.weight_modifier.reference import weight_modifier as weight_modifier_reference

__all__ = ["weight_modifier", "weight_modifier_reference"]


def weight_modifier(w: Tensor, params: WeightModifierParameters,
                    generator: Optional[torch.Generator] = None) -> Tensor:
    """Modified copy of ``w`` [N, K]; see :func:`reference.weight_modifier` for the contract."""
    if backend.resolve(w.device) == "triton":
        from aimc_lab.kernels.weight_modifier.triton_impl import weight_modifier as weight_modifier_triton

        return weight_modifier_triton(w, params, generator)
    return weight_modifier_reference(w, params, generator)
