"""The noisy analog MVM, fast on the CPU: the same contract and random draws as :mod:`.reference`.

What makes it faster than the spec (tests/kernels/test_analog_mvm_cpu_fast.py compares the two on
every switch, gradient and odd shape):

* in-place element-wise steps on tensors this module owns (the spec makes a new tensor per step),
  and few new tensors (on the CPU a fresh multi-MB tensor costs its page faults, often more than
  the pass that fills it): the DAC divides x by α and Δ·2^k into one tensor and rounds it in place
  as a magnitude, floor(|v| + 0.5)·Δ, whose pass mask and clip need no second |·|, then takes the
  sign back from x (bit for bit the spec's ``sign(v)·floor(|v| + 0.5)·Δ``); the ADC does the same
  in the memory of the output noise, the three second-order products share one temporary;
* no work for what is 1: no division by α for constant-1 or no noise management, the digital
  scales multiplied together before they meet the [M, N] output (and in the backward);
* the masks the backward reads are computed only when a gradient is needed; the backward
  (:func:`mvm_backward`) is the spec's straight-through rule in fewer passes, a single slice's
  weight gradient one matmul;
* iterative bound management runs its per-row test only when one global min/max finds a saturated
  output, re-runs only the rows with a saturated slice, and after the first pass tests saturation
  only on the rows it has just re-run (the others cannot change);
* an all-zero row takes α = the smallest subnormal instead of the spec's 1 (one clamp instead of
  three ops; the row divides to 0 either way and its output is zeroed by the rescale);
* a read-out of the columns (:func:`analog_mvm_one_hot`, the MVM of the identity that drift
  compensation measures) forms its products as each one-hot row's entry times a weight row, not as
  K×K×N matmuls (the same numbers: each sum has one nonzero term);
* the second-order products (the IR-drop sums Σ|w||x̃| and Σ w x̃ (1 − (1 − j/K_s)²), the PCM
  read-noise variance Σ|w| x̃²) may run in bfloat16 with fp32 accumulation (``aux_dtype``; by
  default on CPUs with native bf16 matmuls, where that is about 2x faster). The main MAC always
  runs in x's dtype. This is the one deliberate numerical difference from the spec: bf16 keeps 8
  significant bits, so each product term is off by at most 2^-8 relative and the sums of
  non-negative terms (Σ|w||x̃|, Σ|w|x̃²) by at most ~2^-7 relative; the IR-drop correction and the
  read-noise std are second-order terms, so the output before the ADC moves by at most ~2^-6 of
  those terms (tested), and after the ADC a few outputs near a rounding threshold land one step
  away.

Randomness: the same draws in the same order as the spec (see its module docstring), so with
``aux_dtype=torch.float32`` a seeded call reproduces the spec's output up to the last bits of the
float arithmetic (an output on an ADC rounding tie may land one step away).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from aimc_lab.config import IOParameters
from aimc_lab.kernels.analog_mvm import compiled, compiled_steps
from aimc_lab.kernels.analog_mvm.reference import (check_mvm_args, ir_drop_position, join_weight_slices,
                                                   max_bm_exponent, rows_used, split_slices)

__all__ = ["analog_mvm", "analog_mvm_one_hot", "identity_inputs", "mvm_forward", "mvm_backward", "AnalogMVMFastFunction", "default_aux_dtype"]

_NATIVE_BF16 = ("AVX512" in torch.backends.cpu.get_cpu_capability()
                and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def default_aux_dtype(x: Tensor) -> torch.dtype:
    """bfloat16 for fp32 CPU tensors on CPUs with native bf16 matmuls, else x's dtype."""
    if x.device.type == "cpu" and x.dtype == torch.float32 and _NATIVE_BF16:
        return torch.bfloat16
    return x.dtype


def _round_half_away(v: Tensor) -> Tensor:
    """sign(v)·floor(|v| + 1/2) in three passes and one temporary (``copysign`` gives the same bits
    as the spec's product with sign(v); floor is vectorized on the CPU, trunc is not)."""
    return v.abs().add_(0.5).floor_().copysign_(v)


def _quantize_clip(v: Tensor, step: float, bound: float, stochastic: bool, generator: Optional[torch.Generator],
                   need_mask: bool, sign: Optional[Tensor] = None):
    """Q(v·Δ; Δ) clipped at ±bound, for ``v`` already divided by Δ (Δ = ``step`` > 0) and owned by
    the caller (overwritten). Returns (the clipped value, the pass mask |Q| <= bound as 0/1 floats or
    None). Deterministic rounding keeps |Q| = floor(|v| + 1/2)·Δ before the sign goes back on, so the
    mask and the clip read the magnitude the rounding already made (the spec's bits: the magnitude of
    a product does not depend on its sign). ``sign``: a tensor with v's signs (zeros included), and
    then ``v`` holds |v| and becomes the result (no temporary)."""
    if stochastic:
        v.add_(torch.rand(v.shape, generator=generator, device=v.device, dtype=v.dtype)).floor_().mul_(step)
        mask = torch.le(v.abs(), bound, out=torch.empty_like(v)) if need_mask else None
        return v.clamp_(-bound, bound), mask
    mag = (v if sign is not None else v.abs()).add_(0.5).floor_().mul_(step)  # |Q|
    mask = torch.le(mag, bound, out=torch.empty_like(v)) if need_mask else None
    return mag.clamp_(max=bound).copysign_(v if sign is None else sign), mask


def _clip(v: Tensor, bound: float, need_mask: bool):
    """``v`` (owned) clipped at ±bound, and its pass mask |v| <= bound (without quantization)."""
    mask = torch.le(v.abs(), bound, out=torch.empty_like(v)) if need_mask else None
    return v.clamp_(-bound, bound), mask


def _saturated(y: Tensor, bound: float) -> Tensor:
    """Step 8's test per (slice, row): any |y| >= bound, from the row's max and min (no temporary;
    ``(y.abs() >= bound).any(-1)`` and ``aminmax(dim=-1)`` take 100x longer on the CPU)."""
    return (y.amax(dim=-1) >= bound) | (y.amin(dim=-1) <= -bound)


def _noise_management(xs: Tensor, abs_max: Tensor, io: IOParameters) -> Optional[Tensor]:
    """α per (slice, row): [S, M]; ``abs_max`` = max|x| per (slice, row). None when α is 1 everywhere
    (no noise management, or a constant threshold of 1), so nothing is divided by it. Where the spec
    replaces α <= 0 (an all-zero row) by 1, α here is the dtype's smallest positive number: such a row
    still divides to 0 and its output is zeroed by the rescale, and a clamp is one op where the
    spec's replacement is three."""
    smallest = torch.finfo(xs.dtype).tiny * torch.finfo(xs.dtype).eps  # the smallest subnormal
    if io.noise_management == "abs_max":
        return abs_max.clamp(min=smallest, max=io.nm_thres if io.nm_thres > 0 else None)
    if io.noise_management == "max":  # a row without a positive input: max|x|
        alpha = xs.amax(dim=-1)
        return torch.where(alpha > 0, alpha, abs_max).clamp_(min=smallest)
    if io.noise_management == "constant" and io.nm_thres > 0 and io.nm_thres != 1.0:
        return torch.full(xs.shape[:2], io.nm_thres, dtype=xs.dtype, device=xs.device)
    return None  # "none", or a constant threshold of 1 (or <= 0, which the spec replaces by 1)


def _any_saturated(y: Tensor, bound: float) -> bool:
    """Whether any |y| >= bound: one reduction (the per-row test runs only when this says yes)."""
    if y.numel() == 0:
        return False
    low, high = torch.aminmax(y)
    return float(high) >= bound or float(low) <= -bound


def _ir_position(S: int, Kp: int, K: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The spec's :func:`.reference.ir_drop_position` [S, 1, Kp]; one slice without padding in a few ops."""
    if S > 1 or Kp != K:
        return ir_drop_position(S, Kp, K, dtype, device)
    j = torch.arange(K, dtype=dtype, device=device)
    return (1 - (1 - j / K) ** 2).reshape(1, 1, K)


def _rows_times(v: Tensor, wm: Tensor, hot: Tensor) -> Tensor:
    """``torch.bmm(v, wm)`` [1, R, N] for v [1, R, Kp] that is zero but at v[0, r, hot[r]]: that entry
    times the weight row hot[r]. The same numbers as the matmul (each sum has one nonzero term, and
    adding exact zeros leaves a product unchanged; a zero result may differ in its sign) for a
    fraction of its cost: R·N products instead of R·Kp·N."""
    entry = v[0].gather(1, hot.unsqueeze(1))  # [R, 1]
    # hot is an ascending subset of 0..Kp-1, so all Kp of them are the weights' rows in order
    rows = wm[0] if hot.shape[0] == wm.shape[1] else wm[0].index_select(0, hot)
    return (entry * rows).unsqueeze(0)


def _compiled_dac(src: Tensor, io: IOParameters) -> bool:
    """Whether the DAC of src [S, M, K] runs compiled (:mod:`.compiled_steps`: deterministic rounding on a
    grid, a contiguous float32/64 CPU tensor, numba present): the same bits in one pass."""
    return io.inp_step > 0 and not io.inp_sto_round and compiled_steps.serves(src)


def _divided(src: Tensor, alpha: Optional[Tensor], pow2: Optional[Tensor], step: float) -> Tensor:
    """src / α / (Δ·2^k) as a new tensor (``alpha``, ``pow2`` [S, R] or None: 1; no Δ when ``step`` is 0)."""
    div = None
    if step > 0:
        div = step if pow2 is None else (pow2 * step).unsqueeze(-1)
    elif pow2 is not None:
        div = pow2.unsqueeze(-1)
    u = torch.div(src, alpha.unsqueeze(-1)) if alpha is not None else None
    if div is not None:
        u = torch.div(src, div) if u is None else u.div_(div)
    elif u is None:
        u = src.clone()
    return u


def _one_pass(src: Tensor, alpha: Optional[Tensor], ws: Tensor, ws_abs: Optional[Tensor], io: IOParameters,
              pow2: Optional[Tensor], K: int, generator: Optional[torch.Generator], need_masks: bool,
              aux: torch.dtype, hot: Optional[Tensor] = None, rows: Optional[Tensor] = None):
    """Steps 3-7 for the inputs src [S, R, Kp] divided by α (``alpha`` [S, R], None: 1), times 2^-k
    (``pow2`` = 2^k [S, R], None: k = 0).

    ``hot`` [R] (one slice, no input noise): row r of src is zero but at column hot[r], so after the
    DAC too, and each product of x̃ (or |x̃|, x̃·position, x̃²) with a weight matrix is that row's one
    entry times the weight row hot[r]: :func:`_rows_times` instead of a matmul, the same numbers.

    ``rows`` (only with the compiled DAC, :func:`_compiled_dac`): the pass reads the rows ``rows`` of src
    [S, M, Kp] and of ``alpha`` [S, M] (a bound-management re-run, without a gathered copy).

    ``ws_abs``: |w| in the aux dtype when a second-order term needs it. Returns (y after the ADC, x̃,
    input-pass mask, output-pass mask); masks None unless ``need_masks``. The DAC makes one [S, R, Kp]
    tensor: src / α / (Δ·2^k) (the spec's src / α · 2^-k / Δ bit for bit: 2^k scales exactly) is
    rounded in place as a magnitude and takes its sign back from src (α, Δ, 2^k > 0).
    """
    S, Kp = src.shape[0], src.shape[2]
    step = io.inp_step
    # 3. DAC: quantize and clip (Δ > 0: u is already divided by Δ), then input noise
    if _compiled_dac(src, io):  # the same steps in one pass
        u, in_pass = compiled_steps.dac(src, rows, alpha, pow2, step, io.inp_bound, need_masks)
    elif step > 0:
        u = _divided(src, alpha, pow2, step)
        if io.inp_sto_round:
            u, in_pass = _quantize_clip(u, step, io.inp_bound, True, generator, need_masks)
        else:
            u, in_pass = _quantize_clip(u.abs_(), step, io.inp_bound, False, generator, need_masks, src)
    else:
        u, in_pass = _clip(_divided(src, alpha, pow2, step), io.inp_bound, need_masks)
    if io.inp_noise > 0:
        noise = torch.randn(u.shape, generator=generator, device=u.device, dtype=u.dtype)
        if S * Kp != K:  # padded inputs carry no signal and no noise
            noise[-1, :, K - (S - 1) * Kp:] = 0
        u.add_(noise.mul_(io.inp_noise))
        del noise
    # 4. MAC
    if hot is None:
        times = torch.bmm
    else:  # one-hot rows: each row's entry times a row of the weights (see _rows_times)
        def times(v, wm, out=None):
            return _rows_times(v, wm, hot)
    z = times(u, ws)  # [S, R, N]
    ua = u.to(aux) if ws_abs is not None else None
    # 4b. IR drop; the second-order products share one temporary [S, R, Kp] (|x̃|, x̃·position, x̃²)
    tmp = torch.abs(ua) if io.ir_drop > 0 else None
    if io.ir_drop > 0:
        k_used = K if S == 1 else rows_used(S, Kp, K).to(z).reshape(S, 1, 1)
        a = times(tmp, ws_abs).to(z.dtype).mul_(k_used / io.ir_drop_g_ratio)
        c = a.mul(0.05).sub_(0.2).mul_(a).add_(0.5).mul_(a)  # a(0.5 - 0.2a + 0.05a²)
        position = _ir_position(S, Kp, K, u.dtype, u.device).mul_(io.ir_drop).to(aux)
        torch.mul(ua, position, out=tmp)
        z.addcmul_(c, times(tmp, ws if aux == ws.dtype else ws.to(aux), out=a if aux == z.dtype else None)
                   .to(z.dtype), value=-1)
        del a, c
    # 5 + 6. weight read noise and output noise: one Gaussian with the summed variance
    std = None
    if io.w_noise > 0:
        if io.w_noise_type == "additive_constant":
            std = (u * u).sum(dim=-1, keepdim=True).mul_(io.w_noise ** 2)  # [S, R, 1]
        else:
            sq = torch.mul(ua, ua, out=tmp) if tmp is not None else ua * ua
            std = times(sq, ws_abs).to(z.dtype).mul_(io.w_noise ** 2)  # [S, R, N]
        std.add_(io.out_noise ** 2).sqrt_()
    elif io.out_noise > 0:
        std = io.out_noise
    del tmp
    noise = None
    if std is not None:
        noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        if isinstance(std, Tensor):
            z.addcmul_(noise, std)
        else:
            z.add_(noise, alpha=std)
    # 7. ADC (its magnitude goes into the noise's memory, which is free again)
    if io.out_step > 0 and compiled_steps.serves(z):  # the same steps in one pass
        out_pass = compiled_steps.adc(z, io.out_step, io.out_bound, need_masks)
    elif io.out_step > 0:
        z.div_(io.out_step)
        mag = z.abs() if noise is None else torch.abs(z, out=noise)
        z, out_pass = _quantize_clip(mag, io.out_step, io.out_bound, False, generator, need_masks, z)
    else:
        z, out_pass = _clip(z, io.out_bound, need_masks)
    return z, u, in_pass, out_pass


def mvm_forward(x: Tensor, w: Tensor, io: IOParameters, in_size: Optional[int], out_scales: Optional[Tensor],
                generator: Optional[torch.Generator], need_saved: bool = True,
                aux_dtype: Optional[torch.dtype] = None, one_hot: bool = False):
    """The forward without autograd: (y, saved, dims) as :func:`.reference.mvm_forward` returns them
    (``saved`` is None unless ``need_saved``). ``aux_dtype``: dtype of the second-order products
    (None: :func:`default_aux_dtype`). ``one_hot``: the caller guarantees that x is the identity
    (:func:`analog_mvm_one_hot`); with one slice and no input noise its products with the weights
    are rows of the weights instead of matmuls, the same numbers."""
    S, size = check_mvm_args(x, w, io, in_size, out_scales)
    M, K = x.shape
    if compiled.supports(x, io, S, need_saved, one_hot):  # the same steps, compiled around the MAC
        return compiled.mvm_forward(x, w, io, out_scales, generator), None, (S, size, K)
    hot = torch.arange(M, device=x.device) if one_hot and S == 1 and io.inp_noise == 0 else None
    xs, ws = split_slices(x, w, S, size)
    # max|x| per (slice, row) where noise management reads it, else Σ|x| (a contiguous sum is several
    # times faster than a max over short rows); either is NaN for a NaN row and > 0 for a nonzero one
    magnitude = xs.abs()
    if not io.is_perfect and io.noise_management in ("abs_max", "max"):
        magnitude = magnitude.amax(dim=-1)  # [S, M]
    else:
        magnitude = magnitude.sum(dim=-1)
    if math.isnan(float(magnitude.sum())):  # Σ of non-negative numbers: NaN only from a NaN
        raise ValueError("analog_mvm: x contains NaN")
    # the digital scales applied after the rescale by α·2^k: out_scale times out_scales, [S, 1, N] or a number
    scales = io.out_scale if out_scales is None else (out_scales * io.out_scale).unsqueeze(1)
    if io.is_perfect:
        ys = torch.bmm(xs, ws)
        saved = (xs, None, None, None) if need_saved else None
        if not isinstance(scales, float) or scales != 1.0:
            ys *= scales
    else:
        aux = default_aux_dtype(x) if aux_dtype is None else aux_dtype
        need_aux = io.ir_drop > 0 or (io.w_noise > 0 and io.w_noise_type != "additive_constant")
        ws_abs = ws.abs().to(aux) if need_aux else None
        alpha = _noise_management(xs, magnitude, io)  # [S, M] or None (α = 1)
        nonzero = magnitude > 0  # [S, M]
        k_max = max_bm_exponent(io) if io.bound_management == "iterative" else 0
        # bound management re-reads x / α, so it keeps it; a single pass, or the compiled DAC (which reads
        # the re-run rows itself), divides inside the DAC
        compiled_dac = _compiled_dac(xs, io)
        xn = xs / alpha.unsqueeze(-1) if k_max > 0 and alpha is not None and not compiled_dac else xs
        ys, xt, in_pass, out_pass = _one_pass(xs, alpha, ws, ws_abs, io, None, K, generator, need_saved, aux, hot) \
            if xn is xs else _one_pass(xn, None, ws, ws_abs, io, None, K, generator, need_saved, aux, hot)
        factor = nonzero.to(x.dtype) if alpha is None else alpha * nonzero  # [S, M]: α·2^k, 0 for all-zero slices
        if k_max > 0 and _any_saturated(ys, io.out_bound):
            kexp = torch.zeros(S, M, dtype=x.dtype, device=x.device)
            # saturated (slice, row) pairs; after the first pass only re-run rows can change
            saturated = _saturated(ys, io.out_bound) & nonzero  # [S, M]
            for _ in range(k_max):
                redo = saturated & (kexp < k_max)
                rows = redo.any(dim=0).nonzero().squeeze(-1)
                if rows.numel() == 0:
                    break
                kexp += redo
                hot_r = None if hot is None else hot[rows]
                if compiled_dac:
                    y_r, xt_r, ip_r, op_r = _one_pass(xs, alpha, ws, ws_abs, io, torch.exp2(kexp[:, rows]), K,
                                                      generator, need_saved, aux, hot_r, rows)
                else:
                    y_r, xt_r, ip_r, op_r = _one_pass(xn[:, rows], None, ws, ws_abs, io, torch.exp2(kexp[:, rows]),
                                                      K, generator, need_saved, aux, hot_r)
                if S > 1:  # a re-run row keeps the first result of its slices that did not saturate
                    sub = redo[:, rows].unsqueeze(-1)  # [S, R, 1]
                    y_r = torch.where(sub, y_r, ys[:, rows])
                    if need_saved:
                        xt_r = torch.where(sub, xt_r, xt[:, rows])
                        ip_r = torch.where(sub, ip_r, in_pass[:, rows])
                        op_r = torch.where(sub, op_r, out_pass[:, rows])
                ys[:, rows] = y_r
                if need_saved:
                    xt[:, rows], in_pass[:, rows], out_pass[:, rows] = xt_r, ip_r, op_r
                saturated = torch.zeros_like(saturated)
                saturated[:, rows] = _saturated(y_r, io.out_bound) & nonzero[:, rows]
            factor = factor * torch.exp2(kexp)
        ys *= factor.unsqueeze(-1)
        if not isinstance(scales, float) or scales != 1.0:
            ys *= scales
        saved = (xt, in_pass, out_pass, factor) if need_saved else None
    y = ys.sum(dim=0) if S > 1 else ys[0]
    return y, saved, (S, size, K)


def mvm_backward(grad_y: Tensor, w: Tensor, io: IOParameters, out_scales: Optional[Tensor], saved, dims,
                 need_x: bool, need_w: bool):
    """The spec's straight-through gradients (:func:`.reference.mvm_backward`) in fewer passes: the
    digital scales are multiplied together before they meet the [M, N] gradient, and a single slice
    skips the slice reshapes (its weight gradient comes out of one matmul as [N, K])."""
    x_dac, in_pass, out_pass, factor = saved
    S, size, K = dims
    M, N = grad_y.shape
    _, ws = split_slices(grad_y.new_zeros(1, K), w, S, size)  # [S, Kp, N]
    scales = io.out_scale if out_scales is None else (out_scales * io.out_scale).unsqueeze(1)  # [S, 1, N]
    g = grad_y.unsqueeze(0)  # [1, M, N]
    if out_pass is not None:
        g = g * out_pass  # [S, M, N], a new tensor
        if not isinstance(scales, float) or scales != 1.0:
            g.mul_(scales)
    elif not isinstance(scales, float) or scales != 1.0:
        g = g * scales
    g = g.expand(S, M, N)
    grad_x = grad_w = None
    if need_x:
        gx = torch.bmm(g, ws.transpose(1, 2))  # [S, M, Kp]
        if in_pass is not None:
            gx.mul_(in_pass)
        grad_x = gx[0] if S == 1 else gx.transpose(0, 1).reshape(M, S * gx.shape[2])[:, :K]
    if need_w:
        g_w = g * factor.unsqueeze(-1) if factor is not None else g  # [S, M, N]
        if S == 1:
            grad_w = torch.mm(g_w[0].t(), x_dac[0])[:, :K]  # [N, K]
        else:
            grad_w = join_weight_slices(torch.bmm(x_dac.transpose(1, 2), g_w), K)
    return grad_x, grad_w


class AnalogMVMFastFunction(torch.autograd.Function):
    """Autograd of the fast path: :func:`mvm_forward`, and :func:`mvm_backward` (the spec's
    straight-through gradients in fewer passes)."""

    @staticmethod
    def forward(ctx, x, w, out_scales, io, in_size, generator, aux_dtype):
        y, saved, dims = mvm_forward(x, w, io, in_size, out_scales, generator, True, aux_dtype)
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


def analog_mvm(x: Tensor, w: Tensor, io: IOParameters, *, in_size: Optional[int] = None,
               out_scales: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
               aux_dtype: Optional[torch.dtype] = None) -> Tensor:
    """Noisy analog ``y = x @ w.T``; contract of :func:`.reference.analog_mvm`, plus ``aux_dtype``
    (the dtype of the second-order products, see the module docstring; None: the CPU's best)."""
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
        return AnalogMVMFastFunction.apply(x, w, out_scales, io, in_size, generator, aux_dtype)
    with torch.no_grad():
        return mvm_forward(x, w, io, in_size, out_scales, generator, False, aux_dtype)[0]


@torch.no_grad()
def analog_mvm_one_hot(w: Tensor, io: IOParameters, *, generator: Optional[torch.Generator] = None,
                       aux_dtype: Optional[torch.dtype] = None) -> Tensor:
    """The response [K, N] of a tile w [N, K] to each one-hot input e_k (a read-out of its columns
    through the noisy periphery): :func:`analog_mvm` of the K×K identity, the same draws and numbers,
    without the K×K×N matmuls (see ``one_hot`` of :func:`mvm_forward`). No gradient."""
    return mvm_forward(identity_inputs(w), w, io, None, None, generator, False, aux_dtype, one_hot=True)[0]


def identity_inputs(w: Tensor) -> Tensor:
    """The K×K identity in w's dtype and device: one one-hot input per column of w [N, K]."""
    if not isinstance(w, Tensor) or w.dim() != 2:
        raise ValueError(f"w must be a 2-D tensor [N, K], got {tuple(w.shape) if isinstance(w, Tensor) else w!r}")
    return torch.eye(w.shape[1], dtype=w.dtype, device=w.device)
