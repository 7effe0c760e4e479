"""The noisy analog MVM in pure torch: THE SPEC of ``aimc_lab.kernels.analog_mvm`` and the CPU path.

Implements docs/physics.md §1, steps 1-9, for a weight matrix laid out on one or more physical tiles:
the K inputs are split into S slices of at most ``in_size`` rows (one tile each); every slice is a
separate analog MVM (own noise management, DAC, noise, ADC, bound management), and the slice results
are multiplied by ``out_scales[s]`` and summed digitally. A layer split along N into several tiles
needs no special treatment except for bound management, which here decides per (input row, slice)
over all N outputs of the slice: a conservative deviation (a tile may use a smaller input scale than
it needed when another tile of the same slice saturated).

Conventions (shared with the Triton kernel):

* Q(u; Δ) = Δ·round(u/Δ) rounds half away from zero: ``sign(v)·floor(|v| + 0.5)``.
  Stochastic rounding (``inp_sto_round``) is ``floor(v + U[0, 1))``.
* Gradients are straight-through (an explicit backward, the spec for the kernel's): the quantizers
  pass the gradient; inputs whose quantized value lies outside ±inp_bound and outputs whose
  quantized value lies outside ±out_bound stop it (the bounds themselves pass); noise terms and the
  IR-drop correction are constants; α and 2^k are constants, so inside the bounds
  dy/dx = w·out_scales and dy/dw = x̃·α·2^k·out_scales, with x̃ the DAC output (incl. input noise).
* An input slice that is all zero gives exactly 0 for that slice (no output noise).
* Noise management "max" (AIHWKIT's Max, meant for non-negative inputs such as ReLU outputs) scales
  by α = max_j x_j, so negative inputs below −α clip at the DAC. A slice row with no positive input
  but a nonzero one takes α = max_j |x_j| instead (AIHWKIT returns 0 for such a row without input
  noise and leaves it unscaled with it; both lose the row).
* ``is_perfect`` gives ``x @ w.T`` per slice (times ``out_scales`` and ``out_scale``).
* Randomness comes only from ``generator`` (``torch.randn``/``torch.rand``), so a seeded generator
  reproduces the output exactly.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from aimc_lab.config import IOParameters

__all__ = ["analog_mvm", "check_mvm_args", "round_half_away", "AnalogMVMFunction"]


def round_half_away(v: Tensor) -> Tensor:
    """Round to the nearest integer, halves away from zero (the project's rounding rule)."""
    r = v.abs()
    r.add_(0.5).floor_()
    return r.copysign_(v)


# The second-order terms (IR-drop correction, PCM read-noise std) only need ~1 % accuracy; on CPUs
# with native bfloat16 matmuls they run in bfloat16 with fp32 accumulation (2x faster here; the
# resulting relative error of the corrected output is ~1e-4). The main MAC always runs in x.dtype.
# Set to None to force x.dtype everywhere (the Triton equivalence tests do).
AUX_CPU_DTYPE: Optional[torch.dtype] = (
    torch.bfloat16 if "AVX512" in torch.backends.cpu.get_cpu_capability() and
    torch.ops.mkldnn._is_mkldnn_bf16_supported() else None)


def _aux_dtype(u: Tensor) -> torch.dtype:
    """The dtype of the second-order terms for DAC outputs ``u`` (see AUX_CPU_DTYPE)."""
    if u.device.type == "cpu" and AUX_CPU_DTYPE is not None and u.dtype == torch.float32:
        return AUX_CPU_DTYPE
    return u.dtype


def _aux_bmm(a: Tensor, b: Tensor, out_dtype: torch.dtype) -> Tensor:
    """bmm of operands already in the aux dtype, result in ``out_dtype``."""
    return torch.bmm(a, b.to(a.dtype)).to(out_dtype)


def _quantize_(v: Tensor, step: float, stochastic: bool, generator: Optional[torch.Generator]) -> Tensor:
    """In place: v <- Δ·round(v/Δ) (step <= 0: unchanged). ``v`` must be a tensor the caller owns."""
    if step <= 0:
        return v
    v.div_(step)
    if stochastic:
        v.add_(torch.rand(v.shape, generator=generator, device=v.device, dtype=v.dtype)).floor_()
    else:  # sign(v)·floor(|v| + 1/2): halves away from zero (floor is vectorized on CPU, trunc is not)
        sign = torch.sign(v)
        v.abs_().add_(0.5).floor_().mul_(sign)
    return v.mul_(step)


def check_mvm_args(x: Tensor, w: Tensor, io: IOParameters, in_size: Optional[int],
                   out_scales: Optional[Tensor]) -> Tuple[int, int]:
    """Validate the arguments of ``analog_mvm``; return (S, slice size)."""
    if not isinstance(io, IOParameters):
        raise TypeError(f"io must be an IOParameters, got {type(io).__name__}")
    if not isinstance(x, Tensor) or not isinstance(w, Tensor):
        raise TypeError("x and w must be torch tensors")
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D [M, K], got shape {tuple(x.shape)}")
    if w.dim() != 2:
        raise ValueError(f"w must be 2-D [N, K], got shape {tuple(w.shape)}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has K = {x.shape[1]} inputs but w has {w.shape[1]} columns (shape {tuple(w.shape)})")
    if not x.is_floating_point() or x.dtype != w.dtype:
        raise TypeError(f"x and w must share a floating dtype, got {x.dtype} and {w.dtype}")
    if x.device != w.device:
        raise ValueError(f"x is on {x.device} but w is on {w.device}")
    K, N = w.shape[1], w.shape[0]
    if in_size is not None and (isinstance(in_size, bool) or int(in_size) < 1):
        raise ValueError(f"in_size = {in_size!r} is invalid; allowed: an integer >= 1")
    size = K if in_size is None or int(in_size) >= K else int(in_size)
    S = max(1, math.ceil(K / size))
    if out_scales is not None and tuple(out_scales.shape) != (S, N):
        raise ValueError(f"out_scales must have shape [S, N] = [{S}, {N}], got {tuple(out_scales.shape)}")
    return S, size


def _slices(x: Tensor, w: Tensor, S: int, size: int) -> Tuple[Tensor, Tensor, int]:
    """x -> [S, M, Kp], w -> [S, Kp, N] (zero padded); returns also the padding."""
    M, K = x.shape
    N = w.shape[0]
    pad = S * size - K
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
        w = torch.nn.functional.pad(w, (0, pad))
    return x.reshape(M, S, size).transpose(0, 1), w.reshape(N, S, size).permute(1, 2, 0), pad


def _unslice_w(gw: Tensor, K: int) -> Tensor:
    """[S, Kp, N] -> [N, K]."""
    S, Kp, N = gw.shape
    return gw.permute(2, 0, 1).reshape(N, S * Kp)[:, :K]


def _noise_management(xs: Tensor, abs_max: Tensor, io: IOParameters) -> Tensor:
    """α per (slice, row): [S, M]; ``abs_max`` = max|x| per (slice, row) (read only by abs_max)."""
    if io.noise_management == "abs_max":
        alpha = abs_max.clamp(max=io.nm_thres) if io.nm_thres > 0 else abs_max
    elif io.noise_management == "max":  # a row without a positive input: max|x| = −min x
        alpha = xs.amax(dim=-1)
        alpha = torch.where(alpha > 0, alpha, xs.amin(dim=-1).neg_())
    elif io.noise_management == "constant":
        alpha = torch.full(xs.shape[:2], io.nm_thres, dtype=xs.dtype, device=xs.device)
    else:
        alpha = torch.ones(xs.shape[:2], dtype=xs.dtype, device=xs.device)
    return torch.where(alpha > 0, alpha, torch.ones_like(alpha))


def _ir_position(S: int, size: int, K: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(1 - (1 - j/K_s)^2) per slice and row j of the slice, 0 on padding: [S, 1, Kp]."""
    k_used = torch.full((S, 1), float(size), dtype=dtype, device=device)
    k_used[-1, 0] = K - (S - 1) * size
    j = torch.arange(size, dtype=dtype, device=device).unsqueeze(0)
    position = (1 - (1 - j / k_used) ** 2) * (j < k_used)
    return position.unsqueeze(1), k_used.unsqueeze(-1)


def _one_pass(xn: Tensor, ws: Tensor, io: IOParameters, inv_factor: Optional[Tensor], K: int,
              generator: Optional[torch.Generator], need_masks: bool, consume: bool = False):
    """Steps 3-7 for inputs already divided by α: xn [S, R, Kp], scaled by inv_factor [S, R].

    ``consume``: ``xn`` is a temporary the caller will not read again; without ``inv_factor`` the DAC
    then works in its memory instead of a copy.

    Returns (y after the ADC [S, R, N], DAC output x̃ [S, R, Kp], input-pass mask [S, R, Kp],
    output-pass mask [S, R, N]); the masks (1.0 = the gradient passes, 0.0 = it stops) are None unless
    ``need_masks`` (for the backward).
    """
    S, R, Kp = xn.shape
    u = xn * inv_factor.unsqueeze(-1) if inv_factor is not None else (xn if consume else xn.clone())
    # 3. DAC: quantize, clip, input noise
    _quantize_(u, io.inp_step, io.inp_sto_round, generator)
    # masks as 0/1 floats: products with float masks are vectorized on the CPU, with bool ones not
    in_pass = torch.le(u.abs(), io.inp_bound, out=torch.empty_like(u)) if need_masks else None
    u.clamp_(-io.inp_bound, io.inp_bound)
    if io.inp_noise > 0:
        noise = torch.randn(u.shape, generator=generator, device=u.device, dtype=u.dtype)
        if S * Kp != K:  # padded inputs carry no signal and no noise
            noise[-1, :, K - (S - 1) * Kp:] = 0
        u.add_(noise.mul_(io.inp_noise))
    # 4. MAC
    z = torch.bmm(u, ws)  # [S, R, N]
    # the second-order terms read u in the aux dtype: one conversion, then half-size passes
    need_aux = io.ir_drop > 0 or (io.w_noise > 0 and io.w_noise_type != "additive_constant")
    ua = u.to(_aux_dtype(u)) if need_aux else None
    ws_abs = ws.abs() if need_aux else None
    # 4b. IR drop (a constant correction for the gradient)
    if io.ir_drop > 0:
        position, k_used = _ir_position(S, Kp, K, u.dtype, u.device)
        a = _aux_bmm(ua.abs(), ws_abs, u.dtype).mul_(k_used / io.ir_drop_g_ratio)
        c = a.mul(0.05).sub_(0.2).mul_(a).add_(0.5).mul_(a)  # a(0.5 - 0.2a + 0.05a²)
        del a
        c.mul_(_aux_bmm(ua * position.mul(io.ir_drop).to(ua.dtype), ws, u.dtype))
        z.sub_(c)
        del c
    # 5 + 6. weight read noise and output noise: independent Gaussians, drawn as one
    std = None
    if io.w_noise > 0:
        if io.w_noise_type == "additive_constant":
            std = (u * u).sum(dim=-1, keepdim=True).mul_(io.w_noise ** 2)  # [S, R, 1] (variance)
        else:
            std = _aux_bmm(ua * ua, ws_abs, u.dtype).mul_(io.w_noise ** 2)  # [S, R, N] (variance)
        std.add_(io.out_noise ** 2).sqrt_()
    elif io.out_noise > 0:
        std = io.out_noise
    if std is not None:
        noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        z.add_(noise.mul_(std))
        del noise
    # 7. ADC
    _quantize_(z, io.out_step, False, generator)
    out_pass = torch.le(z.abs(), io.out_bound, out=torch.empty_like(z)) if need_masks else None
    z.clamp_(-io.out_bound, io.out_bound)
    return z, u, in_pass, out_pass


def _max_bm_exponent(io: IOParameters) -> int:
    """Largest k with 2^k <= max_bm_factor and 2^k·Δ_in <= max_bm_res."""
    k = 0
    while 2 ** (k + 1) <= io.max_bm_factor and (io.inp_step <= 0 or 2 ** (k + 1) * io.inp_step <= io.max_bm_res):
        k += 1
    return k


def _forward(x: Tensor, w: Tensor, io: IOParameters, in_size: Optional[int], out_scales: Optional[Tensor],
             generator: Optional[torch.Generator], need_masks: bool = True):
    """The whole forward without autograd; returns y and what the backward needs."""
    S, size = check_mvm_args(x, w, io, in_size, out_scales)
    M, K = x.shape
    xs, ws, _ = _slices(x, w, S, size)
    # max|x| per (slice, row) where noise management reads it, else Σ|x| (a contiguous sum is several
    # times faster than a max over short rows); either is NaN for a NaN row and > 0 for a nonzero one
    magnitude = xs.abs()
    if not io.is_perfect and io.noise_management == "abs_max":
        magnitude = magnitude.amax(dim=-1)  # [S, M]
    else:
        magnitude = magnitude.sum(dim=-1)
    if torch.isnan(magnitude).any():
        raise ValueError("analog_mvm: x contains NaN")
    if io.is_perfect:
        ys = torch.bmm(xs, ws)
        saved = (xs, None, None, None)
    else:
        alpha = _noise_management(xs, magnitude, io)  # [S, M]
        nonzero = magnitude > 0  # [S, M]
        owned = io.noise_management != "none"  # xn is a new tensor, not a view of x
        xn = xs / alpha.unsqueeze(-1) if owned else xs
        # the bound-management loop re-reads xn, so only a single pass may consume it
        ys, xt, in_pass, out_pass = _one_pass(xn, ws, io, None, K, generator, need_masks,
                                              consume=owned and io.bound_management != "iterative")
        factor = alpha * nonzero  # [S, M]: alpha·2^k, 0 for all-zero slices
        if io.bound_management == "iterative":
            kexp = torch.zeros(S, M, dtype=x.dtype, device=x.device)
            k_max = _max_bm_exponent(io)
            for _ in range(k_max):
                redo = (ys.abs() >= io.out_bound).any(dim=-1) & (kexp < k_max) & nonzero  # [S, M]
                rows = redo.any(dim=0).nonzero().squeeze(-1)
                if rows.numel() == 0:
                    break
                kexp += redo
                sub = redo[:, rows].unsqueeze(-1)  # [S, R, 1]
                y_r, xt_r, ip_r, op_r = _one_pass(xn[:, rows], ws, io, torch.exp2(-kexp[:, rows]), K, generator,
                                                  need_masks)
                ys[:, rows] = torch.where(sub, y_r, ys[:, rows])
                if need_masks:
                    xt[:, rows] = torch.where(sub, xt_r, xt[:, rows])
                    in_pass[:, rows] = torch.where(sub, ip_r, in_pass[:, rows])
                    out_pass[:, rows] = torch.where(sub, op_r, out_pass[:, rows])
            factor = factor * torch.exp2(kexp)
        ys *= factor.unsqueeze(-1)
        saved = (xt, in_pass, out_pass, factor) if need_masks else None
    if io.out_scale != 1.0:
        ys *= io.out_scale
    if out_scales is not None:
        ys *= out_scales.unsqueeze(1)
    y = ys.sum(dim=0) if S > 1 else ys[0]
    return y, saved, (S, size, K)


def _backward(grad_y: Tensor, w: Tensor, io: IOParameters, out_scales: Optional[Tensor], saved, dims,
              need_x: bool, need_w: bool):
    """Straight-through gradients (see the module docstring)."""
    xt, in_pass, out_pass, factor = saved
    S, size, K = dims
    _, ws, _ = _slices(grad_y.new_zeros(1, K), w, S, size)
    g = grad_y.unsqueeze(0)  # [1, M, N]
    if io.out_scale != 1.0:
        g = g * io.out_scale
    if out_scales is not None:
        g = g * out_scales.unsqueeze(1)  # [S, M, N]
    if out_pass is not None:
        g = g * out_pass
    g = g.expand(S, -1, -1)
    grad_x = grad_w = None
    if need_x:
        gx = torch.bmm(g, ws.transpose(1, 2))  # [S, M, Kp]
        if in_pass is not None:
            gx = gx * in_pass
        grad_x = gx.transpose(0, 1).reshape(gx.shape[1], S * gx.shape[2])[:, :K]  # sizes explicit: M may be 0
    if need_w:
        gw_scale = g * factor.unsqueeze(-1) if factor is not None else g
        grad_w = _unslice_w(torch.bmm(xt.transpose(1, 2), gw_scale), K)  # [S, Kp, N] -> [N, K]
    return grad_x, grad_w


class AnalogMVMFunction(torch.autograd.Function):
    """Autograd wrapper: noisy forward, straight-through backward."""

    @staticmethod
    def forward(ctx, x, w, out_scales, io, in_size, generator):
        y, saved, dims = _forward(x, w, io, in_size, out_scales, generator)
        ctx.io, ctx.dims = io, dims
        ctx.saved_parts = saved
        ctx.save_for_backward(w, out_scales)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        w, out_scales = ctx.saved_tensors
        grad_x, grad_w = _backward(grad_y, w, ctx.io, out_scales, ctx.saved_parts, ctx.dims,
                                   ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        grad_scales = None
        if ctx.needs_input_grad[2]:
            raise RuntimeError("analog_mvm: gradients for out_scales are not supported; scale outside")
        return grad_x, grad_w, grad_scales, None, None, None


def analog_mvm(x: Tensor, w: Tensor, io: IOParameters, *, in_size: Optional[int] = None,
               out_scales: Optional[Tensor] = None, generator: Optional[torch.Generator] = None) -> Tensor:
    """Noisy analog ``y = x @ w.T`` (docs/physics.md §1).

    Args:
        x: inputs [M, K].
        w: normalized tile weights [N, K] (|w| <= 1 is the conductance range).
        io: the MVM's nonidealities.
        in_size: physical tile rows; K is split into S = ceil(K / in_size) slices (default: one).
        out_scales: [S, N] digital scale per slice and output, applied before the slices are summed
            (no gradient flows to it: apply trainable scales outside).
        generator: the only source of randomness.

    Returns:
        y [M, N] with straight-through gradients for x and w.
    """
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
        return AnalogMVMFunction.apply(x, w, out_scales, io, in_size, generator)
    with torch.no_grad():
        return _forward(x, w, io, in_size, out_scales, generator, need_masks=False)[0]
