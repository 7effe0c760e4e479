"""Weight-noise modifiers for hardware-aware training (docs/physics.md §3), pure torch: the spec.

Out of place: returns the modified weights, never touches ``w``. ω is ``assumed_wmax`` if > 0,
else the current max|w|. No gradient handling here: the tile adds the modification as a constant
(updates go to the clean weights).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from aimc_lab.config import WeightModifierParameters
from aimc_lab.kernels.analog_mvm.reference import round_half_away

__all__ = ["weight_modifier"]


def _omega(w: Tensor, params: WeightModifierParameters) -> Tensor:
    if params.assumed_wmax > 0:
        return torch.tensor(params.assumed_wmax, dtype=w.dtype, device=w.device)
    return w.abs().max().clamp(min=1e-12)


def weight_modifier(w: Tensor, params: WeightModifierParameters,
                    generator: Optional[torch.Generator] = None) -> Tensor:
    """Modified copy of ``w`` [N, K] according to ``params.kind``."""
    kind = params.kind
    if kind == "none":
        return w.clone()
    if kind == "drop_connect":
        keep = torch.rand(w.shape, generator=generator, device=w.device, dtype=w.dtype) >= params.pdrop
        return w * keep
    omega = _omega(w, params)
    if kind == "discretize":
        step = params.res if params.res <= 1 else 1.0 / params.res
        return round_half_away(w / (omega * step)) * (omega * step)
    xi = torch.randn(w.shape, generator=generator, device=w.device, dtype=w.dtype)
    if kind == "add_normal":
        return w + params.std_dev * omega * xi
    if kind == "mult_normal":
        return w * (1 + params.std_dev * xi)
    # poly: W + ω·σ(c0 + c1|w|/ω + c2(|w|/ω)²)·ξ
    c0, c1, c2 = params.coeffs
    a = w.abs() / omega
    return w + omega * params.std_dev * (c0 + c1 * a + c2 * a * a) * xi
