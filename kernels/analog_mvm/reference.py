"""The noisy analog MVM in plain torch: THE SPEC of ``aimc_lab.kernels.analog_mvm``.

Written to be read beside docs/physics.md §1 (its steps 1-9 appear below in that order), not to be
fast: every step makes a new tensor, everything runs in the dtype of ``x``. The fast CPU path
(:mod:`.cpu_fast`) and the Triton kernel (:mod:`.triton_impl`) are tested against this module.

A weight matrix [N, K] lies on one or more physical tiles: the K inputs are split into S slices of
at most ``in_size`` rows (one tile each); every slice is a separate analog MVM (own noise
management, DAC, noise, ADC, bound management), and the slice results are multiplied by
``out_scales[s]`` and summed digitally. A layer split along N into several tiles needs no special
treatment except for bound management, which here decides per (input row, slice) over all N outputs
of the slice: a conservative deviation (a tile may use a smaller input scale than it needed when
another tile of the same slice saturated).

Conventions (shared by every implementation):

* Q(u; Δ) = Δ·round(u/Δ) rounds half away from zero: ``sign(v)·floor(|v| + 0.5)``.
  Stochastic rounding (``inp_sto_round``) is ``floor(v + U[0, 1))``.
* Gradients are straight-through (:func:`mvm_backward`, the spec every implementation's backward
  runs): the quantizers pass the gradient; inputs whose quantized value lies outside ±inp_bound and
  outputs whose quantized value lies outside ±out_bound stop it (the bounds themselves pass); noise
  terms and the IR-drop correction are constants; α and 2^k are constants, so inside the bounds
  dy/dx = w·out_scales and dy/dw = x̃·α·2^k·out_scales, with x̃ the DAC output (incl. input noise).
* An input slice that is all zero gives exactly 0 for that slice (no output noise).
* Noise management "max" (AIHWKIT's Max, meant for non-negative inputs such as ReLU outputs) scales
  by α = max_j x_j, so negative inputs below −α clip at the DAC. A slice row with no positive input
  but a nonzero one takes α = max_j |x_j| instead (AIHWKIT returns 0 for such a row without input
  noise and leaves it unscaled with it; both lose the row).
* ``is_perfect`` gives ``x @ w.T`` per slice (times ``out_scales`` and ``out_scale``).
* Randomness comes only from ``generator``, in this order per pass: the stochastic-rounding
  uniforms [S, R, Kp], the input noise [S, R, Kp] (also drawn for the zero padding of the last
  slice, then discarded), one Gaussian per output [S, R, N] for weight read noise and output noise
  together; a bound-management re-run draws for the R rows it re-runs (every slice of each). The
  fast CPU path draws the same numbers in the same order, so a seeded generator gives both the
  same output.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from aimc_lab.config import IOParameters

__all__ = ["analog_mvm", "mvm_forward", "mvm_backward", "check_mvm_args", "round_half_away",
           "max_bm_exponent", "AnalogMVMFunction", "apply_with_gradients"]


def round_half_away(v: Tensor) -> Tensor:
    """Round to the nearest integer, halves away from zero (the project's rounding rule)."""
    return torch.sign(v) * torch.floor(v.abs() + 0.5)


def quantize(v: Tensor, step: float, stochastic: bool = False,
             generator: Optional[torch.Generator] = None) -> Tensor:
    """Q(v; Δ) = Δ·round(v/Δ); ``step`` <= 0: no quantization. Stochastic: Δ·floor(v/Δ + U[0, 1))."""
    if step <= 0:
        return v
    if stochastic:
        uniform = torch.rand(v.shape, generator=generator, device=v.device, dtype=v.dtype)
        return torch.floor(v / step + uniform) * step
    return round_half_away(v / step) * step


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
    if w.shape[1] == 0:
        raise ValueError(f"w has no columns (shape {tuple(w.shape)}); allowed: K >= 1 inputs")
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


def max_bm_exponent(io: IOParameters) -> int:
    """Step 8's limit: the largest k with 2^k <= max_bm_factor and 2^k·Δ_in <= max_bm_res."""
    k = 0
    while 2 ** (k + 1) <= io.max_bm_factor and (io.inp_step <= 0 or 2 ** (k + 1) * io.inp_step <= io.max_bm_res):
        k += 1
    return k


def split_slices(x: Tensor, w: Tensor, S: int, size: int) -> Tuple[Tensor, Tensor]:
    """x [M, K] -> [S, M, Kp], w [N, K] -> [S, Kp, N], the last slice zero-padded to Kp = size."""
    M, K = x.shape
    N = w.shape[0]
    pad = S * size - K
    if pad:
        x = torch.nn.functional.pad(x, (0, pad))
        w = torch.nn.functional.pad(w, (0, pad))
    return x.reshape(M, S, size).transpose(0, 1), w.reshape(N, S, size).permute(1, 2, 0)


def join_weight_slices(gw: Tensor, K: int) -> Tensor:
    """[S, Kp, N] -> [N, K] (the inverse of :func:`split_slices` for w)."""
    S, Kp, N = gw.shape
    return gw.permute(2, 0, 1).reshape(N, S * Kp)[:, :K]


def rows_used(S: int, size: int, K: int) -> Tensor:
    """K_s, the real (unpadded) rows of each slice: [S]."""
    k_used = torch.full((S,), size)
    k_used[-1] = K - (S - 1) * size
    return k_used


def noise_management(xs: Tensor, io: IOParameters) -> Tensor:
    """Step 1: α per (slice, row) [S, M]; α <= 0 (an all-zero row) becomes 1."""
    if io.noise_management == "abs_max":
        alpha = xs.abs().amax(dim=-1)
        if io.nm_thres > 0:
            alpha = torch.clamp(alpha, max=io.nm_thres)
    elif io.noise_management == "max":
        alpha = xs.amax(dim=-1)
        alpha = torch.where(alpha > 0, alpha, xs.abs().amax(dim=-1))  # no positive input: max|x|
    elif io.noise_management == "constant":
        alpha = torch.full(xs.shape[:2], io.nm_thres, dtype=xs.dtype, device=xs.device)
    else:
        alpha = torch.ones(xs.shape[:2], dtype=xs.dtype, device=xs.device)
    return torch.where(alpha > 0, alpha, torch.ones_like(alpha))


def ir_drop_position(S: int, size: int, K: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Step 4b's (1 − (1 − j/K_s)²) per slice and row j of the slice, 0 on the padding: [S, 1, Kp]."""
    k_used = rows_used(S, size, K).to(dtype=dtype, device=device).unsqueeze(1)  # [S, 1]
    j = torch.arange(size, dtype=dtype, device=device).unsqueeze(0)  # [1, Kp]
    position = (1 - (1 - j / k_used) ** 2) * (j < k_used)
    return position.unsqueeze(1)


def one_pass(xs: Tensor, ws: Tensor, io: IOParameters, alpha: Tensor, inv_pow2: Tensor, K: int,
             generator: Optional[torch.Generator]):
    """Steps 2-7 for slice inputs xs [S, R, Kp] at the input scale s_k = 1/(α·2^k): divided by α
    [S, R], then multiplied by 2^-k (``inv_pow2`` [S, R]).

    Returns (y after the ADC [S, R, N], DAC output x̃ [S, R, Kp], input-pass mask [S, R, Kp],
    output-pass mask [S, R, N]); masks are 1.0 where the gradient passes, 0.0 where it stops.
    """
    S, R, Kp = xs.shape
    u = xs / alpha.unsqueeze(-1) * inv_pow2.unsqueeze(-1)
    # 3. DAC: quantize, clip, input noise
    u = quantize(u, io.inp_step, io.inp_sto_round, generator)
    in_pass = (u.abs() <= io.inp_bound).to(u.dtype)
    u = torch.clamp(u, -io.inp_bound, io.inp_bound)
    if io.inp_noise > 0:
        noise = torch.randn(u.shape, generator=generator, device=u.device, dtype=u.dtype)
        padding = (torch.arange(S * Kp, device=u.device) >= K).reshape(S, 1, Kp)
        u = u + io.inp_noise * torch.where(padding, 0.0, noise)  # the zero padding gets no noise
    x_dac = u
    # 4. MAC
    z = torch.bmm(x_dac, ws)  # [S, R, N]
    # 4b. IR drop: z -= ρ·a(0.5 − 0.2a + 0.05a²)·Σ_j w x̃ (1 − (1 − j/K_s)²), a = (K_s/G_r)·Σ_j |w||x̃|
    if io.ir_drop > 0:
        k_used = rows_used(S, Kp, K).to(z).reshape(S, 1, 1)
        a = torch.bmm(x_dac.abs(), ws.abs()) * (k_used / io.ir_drop_g_ratio)
        c = ((a * 0.05 - 0.2) * a + 0.5) * a
        position = ir_drop_position(S, Kp, K, z.dtype, z.device)
        z = z - c * torch.bmm(x_dac * (position * io.ir_drop), ws)
    # 5 + 6. weight read noise and output noise: independent Gaussians, drawn as one with the summed variance
    std = None
    if io.w_noise > 0:
        if io.w_noise_type == "additive_constant":
            w_var = (x_dac * x_dac).sum(dim=-1, keepdim=True) * io.w_noise ** 2  # σ_w²·‖x̃‖²: [S, R, 1]
        else:  # pcm_read
            w_var = torch.bmm(x_dac * x_dac, ws.abs()) * io.w_noise ** 2  # σ_w²·Σ_j |w| x̃²: [S, R, N]
        std = torch.sqrt(w_var + io.out_noise ** 2)
    elif io.out_noise > 0:
        std = io.out_noise
    if std is not None:
        xi = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        z = z + xi * std
    # 7. ADC: quantize, clip
    y = quantize(z, io.out_step)
    out_pass = (y.abs() <= io.out_bound).to(y.dtype)
    y = torch.clamp(y, -io.out_bound, io.out_bound)
    return y, x_dac, in_pass, out_pass


def _replace_rows(t: Tensor, rows: Tensor, values: Tensor) -> Tensor:
    """A copy of ``t`` [S, M, ...] with ``t[:, rows] = values``."""
    out = t.clone()
    out[:, rows] = values
    return out


def mvm_forward(x: Tensor, w: Tensor, io: IOParameters, in_size: Optional[int], out_scales: Optional[Tensor],
                generator: Optional[torch.Generator], need_saved: bool = True):
    """The whole forward without autograd: returns (y [M, N], saved, dims).

    ``saved`` = (x̃ [S, M, Kp], input-pass mask [S, M, Kp], output-pass mask [S, M, N], α·2^k [S, M])
    is what :func:`mvm_backward` reads (``is_perfect``: (x slices, None, None, None)); ``dims`` =
    (S, slice size, K). ``need_saved`` is accepted for the common signature and ignored (the spec
    always computes everything).
    """
    S, size = check_mvm_args(x, w, io, in_size, out_scales)
    M, K = x.shape
    xs, ws = split_slices(x, w, S, size)  # [S, M, Kp], [S, Kp, N]
    if torch.isnan(xs).any():
        raise ValueError("analog_mvm: x contains NaN")
    if io.is_perfect:
        ys = torch.bmm(xs, ws)
        saved = (xs, None, None, None)
    else:
        # 1. noise management
        alpha = noise_management(xs, io)  # [S, M]
        nonzero = xs.abs().amax(dim=-1) > 0  # [S, M]: an all-zero slice row gives exactly 0
        # 2.-7. with k = 0 for every row
        kexp = torch.zeros(S, M, dtype=x.dtype, device=x.device)
        ys, x_dac, in_pass, out_pass = one_pass(xs, ws, io, alpha, torch.ones_like(alpha), K, generator)
        # 8. bound test: redo steps 3-7 with k + 1 for the (slice, row) pairs whose ADC saturated
        if io.bound_management == "iterative":
            k_max = max_bm_exponent(io)
            for _ in range(k_max):
                redo = (ys.abs() >= io.out_bound).any(dim=-1) & (kexp < k_max) & nonzero  # [S, M]
                rows = redo.any(dim=0).nonzero().squeeze(-1)  # rows with a saturated slice
                if rows.numel() == 0:
                    break
                kexp = kexp + redo
                again = one_pass(xs[:, rows], ws, io, alpha[:, rows], torch.exp2(-kexp[:, rows]), K, generator)
                take = redo[:, rows].unsqueeze(-1)  # only the saturated slices take the new result
                ys, x_dac, in_pass, out_pass = (_replace_rows(old, rows, torch.where(take, new, old[:, rows]))
                                                for old, new in zip((ys, x_dac, in_pass, out_pass), again))
        # 9. rescale by α·2^k (0 for an all-zero slice row)
        factor = alpha * torch.exp2(kexp) * nonzero
        ys = ys * factor.unsqueeze(-1)
        saved = (x_dac, in_pass, out_pass, factor)
    ys = ys * io.out_scale
    if out_scales is not None:
        ys = ys * out_scales.unsqueeze(1)
    return ys.sum(dim=0), saved, (S, size, K)


def mvm_backward(grad_y: Tensor, w: Tensor, io: IOParameters, out_scales: Optional[Tensor], saved, dims,
                 need_x: bool, need_w: bool):
    """Straight-through gradients (see the module docstring) from what a forward saved."""
    x_dac, in_pass, out_pass, factor = saved
    S, size, K = dims
    _, ws = split_slices(grad_y.new_zeros(1, K), w, S, size)  # [S, Kp, N]
    g = grad_y.unsqueeze(0) * io.out_scale  # [1, M, N]
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
        g_w = g * factor.unsqueeze(-1) if factor is not None else g
        grad_w = join_weight_slices(torch.bmm(x_dac.transpose(1, 2), g_w), K)
    return grad_x, grad_w


ForwardImpl = Callable[..., tuple]


class AnalogMVMFunction(torch.autograd.Function):
    """Autograd for every implementation: its noisy forward, the spec's straight-through backward.

    ``forward_impl(x, w, io, in_size, out_scales, generator, need_saved)`` returns (y, saved, dims)
    as :func:`mvm_forward` does (the reference, the fast CPU path or the Triton launcher).
    """

    @staticmethod
    def forward(ctx, x, w, out_scales, io, in_size, generator, forward_impl):
        y, saved, dims = forward_impl(x, w, io, in_size, out_scales, generator, True)
        ctx.io, ctx.dims = io, dims
        ctx.saved_parts = saved
        ctx.save_for_backward(w, out_scales)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        w, out_scales = ctx.saved_tensors
        if ctx.needs_input_grad[2]:
            raise RuntimeError("analog_mvm: gradients for out_scales are not supported; scale outside")
        grad_x, grad_w = mvm_backward(grad_y, w, ctx.io, out_scales, ctx.saved_parts, ctx.dims,
                                      ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return grad_x, grad_w, None, None, None, None, None


def apply_with_gradients(forward_impl: ForwardImpl, x: Tensor, w: Tensor, io: IOParameters,
                         in_size: Optional[int], out_scales: Optional[Tensor],
                         generator: Optional[torch.Generator]) -> Tensor:
    """``forward_impl`` through :class:`AnalogMVMFunction` when a gradient is needed, else without
    saving anything for a backward."""
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
        return AnalogMVMFunction.apply(x, w, out_scales, io, in_size, generator, forward_impl)
    with torch.no_grad():
        return forward_impl(x, w, io, in_size, out_scales, generator, False)[0]


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
    return apply_with_gradients(mvm_forward, x, w, io, in_size, out_scales, generator)
