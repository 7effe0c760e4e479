"""Weight-noise modifiers (docs/physics.md §3) as one element-wise Triton kernel, out of place.

``_weight_modifier_fwd_kernel`` reads w once and writes the modified copy: add-normal
w + σ·ω·ξ, mult-normal w·(1 + σ·ξ), poly w + ω·σ·(c0 + c1|w|/ω + c2(|w|/ω)²)·ξ, discretize
ω·Δ·round(w/(ω·Δ)) (half away from zero), drop-connect w·[U ≥ p]. ω (``assumed_wmax`` or max|w|)
is computed in torch and read from memory by the kernel (no host sync).

Deviations from the reference: ξ and U come from Triton's Philox keyed by one integer drawn from
the caller's generator (same distributions, other values); arithmetic is fp32 (the output has w's
dtype). ``kind == "none"`` returns ``w.clone()`` without a launch.
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from aimc_lab.config import WeightModifierParameters
from aimc_lab.kernels._triton_util import draw_seed, elementwise_block, round_half_away

__all__ = ["weight_modifier", "weight_modifier_fwd"]

_KINDS = {"add_normal": 0, "mult_normal": 1, "poly": 2, "discretize": 3, "drop_connect": 4}


@triton.jit
def _weight_modifier_fwd_kernel(w_ptr, omega_ptr, out_ptr, numel, seed, std_dev, step, pdrop,
                                c0, c1, c2, KIND: tl.constexpr, BLOCK: tl.constexpr):
    """out[i] = modifier(w[i]) for the flat index range of this program (see module docstring)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    omega = tl.load(omega_ptr).to(tl.float32)
    if KIND == 3:
        unit = omega * step
        out = round_half_away(tl.math.div_rn(w, unit)) * unit
    elif KIND == 4:
        out = tl.where(tl.rand(seed, offs) >= pdrop, w, 0.0)
    else:
        xi = tl.randn(seed, offs)
        if KIND == 0:
            out = w + (std_dev * omega) * xi
        elif KIND == 1:
            out = w * (1.0 + std_dev * xi)
        else:
            a = tl.math.div_rn(tl.abs(w), omega)
            out = w + omega * std_dev * (c0 + c1 * a + c2 * a * a) * xi
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


def weight_modifier_fwd(w: Tensor, params: WeightModifierParameters,
                        generator: Optional[torch.Generator] = None) -> Tensor:
    """Launch the kernel; returns a new tensor shaped like ``w``."""
    if params.kind == "none":
        return w.clone()
    kind = _KINDS[params.kind]
    src = w.contiguous()
    out = torch.empty_like(src)
    if params.assumed_wmax > 0:
        omega = torch.full((1,), params.assumed_wmax, dtype=torch.float32, device=w.device)
    else:
        omega = src.abs().amax().clamp(min=1e-12).to(torch.float32).reshape(1)
    seed = 0
    if kind in (0, 1, 2, 4):
        seed = draw_seed(generator, w.device)
    numel = src.numel()
    if numel == 0:
        return out
    step = params.res if params.res <= 1 else 1.0 / params.res
    c0, c1, c2 = params.coeffs
    block = elementwise_block(numel)
    _weight_modifier_fwd_kernel[(triton.cdiv(numel, block),)](
        src, omega, out, numel, seed, float(params.std_dev), float(step), float(params.pdrop),
        float(c0), float(c1), float(c2), KIND=kind, BLOCK=block)
    return out


def weight_modifier(w: Tensor, params: WeightModifierParameters,
                    generator: Optional[torch.Generator] = None) -> Tensor:
    """Modified copy of ``w`` (contract of :func:`.reference.weight_modifier`)."""
    with torch.no_grad():
        return weight_modifier_fwd(w, params, generator)
