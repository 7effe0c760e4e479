"""Triton kernel of the stochastic pulse-train update; same signature as ``reference.pulsed_update``.

One program owns a [BLOCK_N, BLOCK_K] block of devices and walks the batch rows m and the BL slots t
in order, exactly as the hardware does: in slot s = m·BLmax + t, row j fires when
``rand(seed_x, s·2³² + j) < p[m, j]`` and column i when ``rand(seed_d, s·2³² + i) < q[m, i]`` (the same
bits in every program, so a row's bit is shared along the column as in the reference); a coincidence
applies one pulse in direction −sign(x·d) by the rule of ``PulsedDevice.pulse`` (the model's step at
the current weight, cycle-to-cycle noise from ``randn(seed_n, s·2³² + i·K + j)`` on every pulse:
multiplicative s·(1 + σξ) or additive s + σ·Δ^d·ξ, then clipping to the bounds). Pulse-by-pulse, so it follows the spec
without the reference's closed-form shortcut and without its block reordering: it is the
reference's ``exact=True`` (row-by-row) semantics; the reference's default block update agrees with it
in distribution (tested). The factors (BL, p, q) come from the reference's
``pulse_train_factors`` (update and BL management).

Supported: the constant and linear kinds of ``PulseModel`` (ConstantStep, LinearStep, SoftBounds:
s(w) = Δ^d·(1 + γ^d·w) clamped at >= 0, per-device γ^d); the dispatcher runs the reference for the others.
Like every kernel it takes tensors and plain parameters, never a device object. Random streams differ from the torch reference:
the two agree in distribution (tested statistically under ``TRITON_INTERPRET=1``), not bit for bit.
Philox counters are 64-bit, slot in the high word (``_philox_offset``): they never wrap for any batch
(32-bit offsets slot·N·K + i·K + j overflowed for a 512×512 tile from 265 rows on). The launcher
checks what remains 32-bit: N·K < 2³¹ (element offsets) and M·BLmax < 2³¹ (slot numbers).
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from aimc_lab.kernels._triton_util import draw_seeds
from aimc_lab.kernels.pulsed_update.reference import PulseModel, check_update_args, pulse_train_factors

__all__ = ["pulsed_update", "pulsed_update_fwd", "check_launch_size"]


_INT32_LIMIT = 2 ** 31


@triton.jit
def _philox_offset(slot, idx):
    """Philox counter of element ``idx`` in slot ``slot``: slot·2³² + idx, int64 (never wraps)."""
    return (slot.to(tl.int64) << 32) + idx.to(tl.int64)


@triton.jit
def _pulsed_update_fwd_kernel(w_ptr, out_ptr, dw_up_ptr, dw_down_ptr, b_max_ptr, b_min_ptr,
                              g_up_ptr, g_down_ptr, p_ptr, q_ptr, sx_ptr, sd_ptr, bl_ptr,
                              M, N, K, BL_MAX, seed_x, seed_d, seed_n, sigma,
                              MULT_NOISE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # output index i
    cols = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)  # input index j
    rmask = rows < N
    cmask = cols < K
    mask = rmask[:, None] & cmask[None, :]
    offs = rows[:, None] * K + cols[None, :]
    w = tl.load(w_ptr + offs, mask=mask, other=0.0)
    dw_up = tl.load(dw_up_ptr + offs, mask=mask, other=0.0)
    dw_down = tl.load(dw_down_ptr + offs, mask=mask, other=0.0)
    b_max = tl.load(b_max_ptr + offs, mask=mask, other=1.0)
    b_min = tl.load(b_min_ptr + offs, mask=mask, other=-1.0)
    g_up = tl.load(g_up_ptr + offs, mask=mask, other=0.0)  # per-device slopes γ^d (0: constant step)
    g_down = tl.load(g_down_ptr + offs, mask=mask, other=0.0)
    for m in range(0, M):
        p = tl.load(p_ptr + m * K + cols, mask=cmask, other=0.0)
        q = tl.load(q_ptr + m * N + rows, mask=rmask, other=0.0)
        sx = tl.load(sx_ptr + m * K + cols, mask=cmask, other=0.0)
        sd = tl.load(sd_ptr + m * N + rows, mask=rmask, other=0.0)
        up = (sd[:, None] * sx[None, :]) < 0
        delta = tl.where(up, dw_up, dw_down)
        gamma = tl.where(up, g_up, g_down)
        sign = tl.where(up, 1.0, -1.0)
        bl = tl.load(bl_ptr + m)
        for t in range(0, BL_MAX):
            slot = m * BL_MAX + t
            fire_x = tl.rand(seed_x, _philox_offset(slot, cols)) < p
            fire_d = tl.rand(seed_d, _philox_offset(slot, rows)) < q
            hit = fire_d[:, None] & fire_x[None, :] & mask & (t < bl)
            step = tl.maximum(delta * (1.0 + gamma * w), 0.0)
            xi = tl.randn(seed_n, _philox_offset(slot, offs))
            if MULT_NOISE:
                step = step * (1.0 + sigma * xi)
            else:
                step = step + sigma * delta * xi
            w_new = tl.minimum(tl.maximum(w + sign * step, b_min), b_max)
            w = tl.where(hit, w_new, w)
    tl.store(out_ptr + offs, w, mask=mask)


def pulsed_update_fwd(w: Tensor, p: Tensor, q: Tensor, sx: Tensor, sd: Tensor, bl: Tensor,
                      model: PulseModel, seeds) -> Tensor:
    """Launch the kernel on contiguous fp32 tensors; returns the new weights."""
    N, K = w.shape
    M = p.shape[0]
    bl_max = int(bl.max().item()) if M else 0
    check_launch_size(M, N, K, bl_max)
    out = torch.empty_like(w)
    block_n, block_k = 16, 16
    t = model.tensors
    if model.gamma_up is None:  # the constant kind: zero slopes
        g_up = g_down = torch.zeros_like(w)
    else:
        g_up, g_down = model.gamma_up.to(w.dtype).contiguous(), model.gamma_down.to(w.dtype).contiguous()
    grid = (triton.cdiv(N, block_n), triton.cdiv(K, block_k))
    _pulsed_update_fwd_kernel[grid](
        w, out, t.dw_up.contiguous(), t.dw_down.contiguous(), t.b_max.contiguous(), t.b_min.contiguous(),
        g_up, g_down, p, q, sx, sd, bl, M, N, K, bl_max, seeds[0], seeds[1], seeds[2], float(model.sigma),
        MULT_NOISE=bool(model.mult_noise), BLOCK_N=block_n, BLOCK_K=block_k)
    return out


def check_launch_size(M: int, N: int, K: int, bl_max: int) -> None:
    """The kernel's 32-bit quantities: element offsets i·K + j (N·K) and slot numbers (M·BLmax)."""
    if N * K >= _INT32_LIMIT:
        raise ValueError(f"N·K = {N}·{K} = {N * K} is too large for the Triton pulsed update; "
                         f"allowed: N·K < 2^31 (split the tile)")
    if M * bl_max >= _INT32_LIMIT:
        raise ValueError(f"M·BL = {M}·{bl_max} = {M * bl_max} is too large for the Triton pulsed update; "
                         f"allowed: M·BL < 2^31 (split the batch)")


def pulsed_update(w: Tensor, x: Tensor, d: Tensor, lr: float, model: PulseModel, *,
                  desired_bl: int = 31, update_management: bool = True, bl_management: bool = True,
                  generator: Optional[torch.Generator] = None) -> Tensor:
    """Same contract as :func:`aimc_lab.kernels.pulsed_update.reference.pulsed_update` (fp32)."""
    check_update_args(w, x, d, lr, desired_bl)
    if not model.closed_form:
        raise NotImplementedError("the Triton pulsed update supports the constant and linear kinds of "
                                  "PulseModel (ConstantStep, LinearStep, SoftBounds), not a generic step "
                                  "function or the ideal device; use the torch backend")
    if w.dtype != torch.float32:
        raise ValueError(f"the Triton pulsed update needs float32 weights, got {w.dtype}")
    x = x.to(w.dtype)
    d = d.to(w.dtype)
    bl, p, q = pulse_train_factors(x, d, float(lr), model.dw_min, desired_bl, update_management, bl_management)
    seeds = draw_seeds(generator, w.device, 3)
    return pulsed_update_fwd(w.contiguous(), p.contiguous(), q.contiguous(), torch.sign(x).contiguous(),
                             torch.sign(d).contiguous(), bl.to(torch.int32).contiguous(), model, seeds)
