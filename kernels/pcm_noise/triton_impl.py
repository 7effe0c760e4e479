"""The PCM statistical model (docs/physics.md §2) as element-wise Triton kernels, out of place.

* ``_pcm_program_fwd_kernel``: one pass over g_T writes g_P = max(0, g_T + λ_P·σ_P(g_T)·ξ_P) and
  ν = λ_ν·|μ_ν(g_T) + σ_ν(g_T)·ξ_ν|.
* ``_pcm_at_time_fwd_kernel``: one pass over (g_P, ν) writes
  g(t) = max(0, g_D + λ_R·|g_D|·Q_s(g_P)·sqrt(ln((t + t_read)/(2·t_read)))·ξ_R),
  g_D = g_P·exp(−ν·ln(t/t_0)), t = t_inference + t_0.

Deviations from the reference: ξ comes from Triton's Philox keyed by one integer drawn from the
caller's generator (same distributions, other values); fp32 arithmetic (outputs have the input's
dtype); (t/t_0)^(−ν) is evaluated as exp(−ν·ln(t/t_0)) and x^0.65 as exp2(0.65·log2 x), which agree
with torch's pow to a few ulp. The model's constants are the reference's (module-level tuples there),
passed to the kernels as arguments.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from aimc_lab.config import NoiseModelParameters
from aimc_lab._checks import check_time
from aimc_lab.kernels._triton_util import draw_seed, elementwise_block
from aimc_lab.kernels.pcm_noise import reference as _ref

__all__ = ["pcm_program", "pcm_at_time", "pcm_program_fwd", "pcm_at_time_fwd"]


@triton.jit
def _pcm_program_fwd_kernel(g_ptr, gprog_ptr, nu_ptr, numel, seed, g_max, sigma_scale, c0, c1, c2,
                            prog_scale, drift_scale, g_floor, mu_slope, mu_icpt, mu_lo, mu_hi,
                            sig_slope, sig_icpt, sig_lo, sig_hi, BLOCK: tl.constexpr):
    """g_P and ν for the flat index range of this program (see module docstring; the constants are
    the reference's, passed by the launcher)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    key = tl.to_tensor(seed).to(tl.int64) * 2  # seed may arrive as constexpr 1
    gh = tl.math.div_rn(g, g_max)
    sigma = sigma_scale * (c0 + c1 * gh + c2 * gh * gh)
    g_prog = tl.maximum(g + prog_scale * sigma * tl.randn(key, offs), 0.0)
    log_g = tl.log(tl.maximum(tl.abs(gh), g_floor))
    mu = tl.minimum(tl.maximum(mu_slope * log_g + mu_icpt, mu_lo), mu_hi)
    sig = tl.minimum(tl.maximum(sig_slope * log_g + sig_icpt, sig_lo), sig_hi)
    nu = drift_scale * tl.abs(mu + sig * tl.randn(key + 1, offs))
    tl.store(gprog_ptr + offs, g_prog.to(gprog_ptr.dtype.element_ty), mask=mask)
    tl.store(nu_ptr + offs, nu.to(nu_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _pcm_at_time_fwd_kernel(gp_ptr, nu_ptr, out_ptr, numel, seed, log_ratio, g_max, time_term,
                            read_scale, q_scale, q_exponent, q_floor, q_cap, BLOCK: tl.constexpr):
    """g(t) for the flat index range of this program (see module docstring)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    gp = tl.load(gp_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    nu = tl.load(nu_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    g_drift = gp * tl.exp(-nu * log_ratio)
    # below the floor's root the clamp to q_floor decides anyway; the 1e-30 keeps log2 finite
    rel = tl.maximum(tl.math.div_rn(tl.abs(gp), g_max), 1e-30)
    q_s = tl.minimum(tl.math.div_rn(q_scale, tl.maximum(tl.exp2(q_exponent * tl.log2(rel)), q_floor)), q_cap)
    sigma = tl.abs(g_drift) * q_s * time_term
    g = tl.maximum(g_drift + read_scale * sigma * tl.randn(tl.to_tensor(seed).to(tl.int64) * 2, offs), 0.0)
    tl.store(out_ptr + offs, g.to(out_ptr.dtype.element_ty), mask=mask)


def pcm_program_fwd(g_target: Tensor, params: NoiseModelParameters,
                    generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
    """Launch ``_pcm_program_fwd_kernel``; returns new tensors ``(g_prog, nu)``."""
    src = g_target.contiguous()
    g_prog, nu = torch.empty_like(src), torch.empty_like(src)
    seed = draw_seed(generator, src.device)
    numel = src.numel()
    if numel:
        c0, c1, c2 = params.prog_coeff
        block = elementwise_block(numel)
        _pcm_program_fwd_kernel[(triton.cdiv(numel, block),)](
            src, g_prog, nu, numel, seed, float(params.g_max), float(params.g_max / _ref.PROG_G_REF),
            c0, c1, c2, float(params.prog_noise_scale), float(params.drift_scale), _ref.DRIFT_G_FLOOR,
            *_ref.DRIFT_MU, *_ref.DRIFT_SIGMA, BLOCK=block)
    return g_prog, nu


def pcm_at_time_fwd(g_prog: Tensor, nu: Tensor, t_inference: float, params: NoiseModelParameters,
                    generator: Optional[torch.Generator] = None) -> Tensor:
    """Launch ``_pcm_at_time_fwd_kernel``; returns a new tensor g(t)."""
    if g_prog.shape != nu.shape:
        raise ValueError(f"g_prog {tuple(g_prog.shape)} and nu {tuple(nu.shape)} must have the same shape")
    t = check_time(t_inference) + params.t_0
    src, nu_src = g_prog.contiguous(), nu.contiguous()
    out = torch.empty_like(src)
    seed = draw_seed(generator, src.device)
    numel = src.numel()
    if numel:
        block = elementwise_block(numel)
        _pcm_at_time_fwd_kernel[(triton.cdiv(numel, block),)](
            src, nu_src, out, numel, seed, math.log(t / params.t_0), float(params.g_max),
            math.sqrt(math.log((t + params.t_read) / (2 * params.t_read))),
            float(params.read_noise_scale), *_ref.READ_Q_S, BLOCK=block)
    return out


def pcm_program(g_target: Tensor, params: NoiseModelParameters,
                generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
    """(g_prog, nu) for targets ``g_target`` (contract of :func:`.reference.pcm_program`)."""
    with torch.no_grad():
        return pcm_program_fwd(g_target, params, generator)


def pcm_at_time(g_prog: Tensor, nu: Tensor, t_inference: float, params: NoiseModelParameters,
                generator: Optional[torch.Generator] = None) -> Tensor:
    """g(t) (contract of :func:`.reference.pcm_at_time`)."""
    with torch.no_grad():
        return pcm_at_time_fwd(g_prog, nu, t_inference, params, generator)
