"""The noisy analog MVM as one fused Triton kernel (same contract as :mod:`.reference`).

``_analog_mvm_fwd_kernel`` computes, for a block of input rows and a block of outputs, every K-slice
of the layer in turn and sums the slices digitally, in one launch:

1. noise management: α per (slice, row) (abs_max / max / constant / none; "max" takes max|x| for a
   row without a positive input; α ≤ 0 → 1), from a first pass over the slice's inputs;
2. DAC: x̃ = clip(Q(x/α·2^-k; Δ_in), ±b_in) + σ_in·ξ, with round-half-away or stochastic rounding;
3. MAC ``tl.dot`` with fp32 accumulation, plus the second-order sums the noise terms need
   (Σ|w||x̃| and Σ w x̃ (1 − (1 − j/K_s)²) for IR drop, Σ|w| x̃² for PCM read noise, ‖x̃‖² for
   additive-constant read noise);
4. IR-drop correction, weight read noise and output noise (one Gaussian with the summed variance,
   as the reference draws it), ADC quantize and clip;
5. rescale by α·2^k·out_scale·out_scales[s] (0 for an all-zero input slice) and the sum over slices.

Iterative bound management is a masked re-launch: the kernel flags every (slice, row) whose ADC
output reached ±out_bound; the launcher raises the exponent k of those (slice, row) pairs (the
reference's rule, up to ``max_bm_exponent``) and runs the kernel again on the affected rows only.

Deviations from the reference (documented, tested):

* Randomness is Triton's Philox (``tl.rand``/``tl.randn``), keyed by one integer drawn from the
  caller's ``torch.Generator`` per call (only when some noise is on). Noise *values* therefore
  differ from the reference's; their distributions are the same. The noise of (slice s, row m) at
  bound-management exponent k is a fixed function of (seed, k, s, m, column), so the re-launch
  reproduces the slices that did not saturate exactly (the reference keeps their first result).
* Arithmetic is fp32 for every input dtype (the output has x's dtype). The dot products sum in a
  different order than torch's ``bmm``, so an output that lies on a rounding tie of the ADC can come
  out one quantization step away from the reference (a tiny fraction of elements, see the tests).
* On a GPU the MAC follows torch's ``torch.backends.cuda.matmul.allow_tf32`` (TF32 when allowed,
  IEEE fp32 otherwise); the interpreter always uses IEEE fp32.
* Input noise is drawn only for real inputs (the reference draws it for padding and zeroes it).

Gradients are the reference's straight-through gradients (one autograd Function for every
implementation, :class:`~aimc_lab.kernels.analog_mvm.reference.AnalogMVMFunction`), computed in torch
from what the kernel saves (x̃, the input/output pass masks and α·2^k).
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from aimc_lab.config import IOParameters
from aimc_lab.kernels._triton_util import MIN_BLOCK, block, draw_seed, on_gpu, round_half_away
from aimc_lab.kernels.analog_mvm import reference as _ref

__all__ = ["analog_mvm", "analog_mvm_fwd"]

_NM_CODES = {"abs_max": 0, "max": 1, "constant": 2, "none": 3}
_W_NOISE_CODES = {"none": 0, "additive_constant": 1, "pcm_read": 2}


@triton.jit
def _analog_mvm_fwd_kernel(
        x_ptr, w_ptr, scales_ptr, rows_ptr, kexp_ptr, pow2_ptr, ipow2_ptr,
        y_ptr, sat_ptr, factor_ptr, xt_ptr, inpass_ptr, outpass_ptr,
        R, M, N, K, SIZE, S, NB,
        stride_xm, stride_xk, stride_wn, stride_wk, stride_ym, stride_yn,
        seed,
        nm_thres, inp_step, inp_bound, inp_noise, out_step, out_bound,
        w_noise_sq, out_noise_sq, ir_drop, ir_g_ratio, out_scale,
        NM: tl.constexpr, PERFECT: tl.constexpr, INP_QUANT: tl.constexpr, INP_STO: tl.constexpr,
        INP_NOISE: tl.constexpr, IR_DROP: tl.constexpr, W_NOISE: tl.constexpr,
        OUT_NOISE: tl.constexpr, OUT_QUANT: tl.constexpr, HAS_SCALES: tl.constexpr,
        BOUND_TEST: tl.constexpr, SAVE: tl.constexpr, PRECISION: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """y[rows, n-block] = Σ_s out_scales[s]·out_scale·α·2^k·ADC(noisy MAC(DAC(x_s/(α·2^k)), w_s)).

    Program (pid_m, pid_n) handles rows ``rows[pid_m·BLOCK_M:...]`` (indices into x's M rows) and
    outputs ``pid_n·BLOCK_N:...``. Per (slice, row) it reads the exponent k (``kexp``, 2^k and 2^-k)
    and writes α·2^k (0 for an all-zero slice) to ``factor`` [S, M]; with BOUND_TEST it writes
    whether any output of its block saturated to ``sat`` [S, M, NB]; with SAVE it writes x̃ and the
    input-pass mask ([S, M, SIZE], only programs with pid_n == 0) and the output-pass mask
    [S, M, N]. Writes only, never accumulates: a launch is idempotent (safe to autotune).
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_r = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    r_mask = offs_r < R
    rows = tl.load(rows_ptr + offs_r, mask=r_mask, other=0).to(tl.int64)  # [BM] rows of x
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < N
    offs_k = tl.arange(0, BLOCK_K)
    first_n = pid_n == 0
    out_mask = r_mask[:, None] & n_mask[None, :]
    key_sto = tl.to_tensor(seed).to(tl.int64) * 4  # seed may arrive as constexpr 1
    key_inp = key_sto + 1
    key_out = key_sto + 2
    y_acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for s in range(0, S):
        k_start = s * SIZE
        k_used = tl.minimum(K - k_start, SIZE)
        kf = k_used.to(tl.float32)
        sm = s * M + rows  # [BM] index into [S, M]
        # 1. noise management
        if NM == 0 or NM == 1:
            amax = tl.full((BLOCK_M,), float("-inf"), tl.float32)
            amin = tl.full((BLOCK_M,), float("inf"), tl.float32)
            for kk in range(0, k_used, BLOCK_K):
                j = kk + offs_k
                xm = r_mask[:, None] & (j < k_used)[None, :]
                xv = tl.load(x_ptr + rows[:, None] * stride_xm + (k_start + j)[None, :] * stride_xk,
                             mask=xm, other=0.0).to(tl.float32)
                if NM == 0:
                    amax = tl.maximum(amax, tl.max(tl.abs(xv), axis=1))
                else:
                    amax = tl.maximum(amax, tl.max(tl.where(xm, xv, float("-inf")), axis=1))
                    amin = tl.minimum(amin, tl.min(tl.where(xm, xv, float("inf")), axis=1))
            if NM == 0:
                amax = tl.where(nm_thres > 0, tl.minimum(amax, nm_thres), amax)
            else:  # no positive input: max|x| = −min x (the reference's rule)
                amax = tl.where(amax > 0, amax, -amin)
            alpha = tl.where(amax > 0, amax, 1.0)
        elif NM == 2:
            alpha = tl.full((BLOCK_M,), nm_thres, tl.float32)
        else:
            alpha = tl.full((BLOCK_M,), 1.0, tl.float32)
        if PERFECT:
            kexp = tl.zeros((BLOCK_M,), dtype=tl.int64)
            pow2 = tl.full((BLOCK_M,), 1.0, tl.float32)
            ipow2 = tl.full((BLOCK_M,), 1.0, tl.float32)
        else:
            kexp = tl.load(kexp_ptr + sm, mask=r_mask, other=0).to(tl.int64)
            pow2 = tl.load(pow2_ptr + sm, mask=r_mask, other=1.0)
            ipow2 = tl.load(ipow2_ptr + sm, mask=r_mask, other=1.0)
        # Philox offsets of this (k, s, row): element j of the slice / output n
        rand_in = ((kexp * S + s) * M + rows) * SIZE  # [BM]
        rand_out = ((kexp * S + s) * M + rows) * N  # [BM]
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        if IR_DROP:
            acc_abs = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            acc_pos = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        if W_NOISE == 2:
            acc_var = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        if W_NOISE == 1:
            sq = tl.zeros((BLOCK_M,), dtype=tl.float32)
        xabs = tl.zeros((BLOCK_M,), dtype=tl.float32)
        for kk in range(0, k_used, BLOCK_K):
            j = kk + offs_k  # [BK] index inside the slice
            kmask = j < k_used
            xm = r_mask[:, None] & kmask[None, :]
            cols = k_start + j
            xv = tl.load(x_ptr + rows[:, None] * stride_xm + cols[None, :] * stride_xk,
                         mask=xm, other=0.0).to(tl.float32)  # [BM, BK]
            xabs = tl.maximum(xabs, tl.max(tl.abs(xv), axis=1))
            if PERFECT:
                u = xv
            else:
                # 3. DAC
                u = tl.math.div_rn(xv, alpha[:, None]) * ipow2[:, None]
                if INP_QUANT:
                    v = tl.math.div_rn(u, inp_step)
                    if INP_STO:
                        v = tl.floor(v + tl.rand(key_sto, rand_in[:, None] + j[None, :]))
                    else:
                        v = round_half_away(v)
                    u = v * inp_step
                ip = tl.abs(u) <= inp_bound
                u = tl.minimum(tl.maximum(u, -inp_bound), inp_bound)
                if INP_NOISE:
                    u = u + inp_noise * tl.randn(key_inp, rand_in[:, None] + j[None, :])
                u = tl.where(xm, u, 0.0)
                if SAVE:
                    sidx = sm[:, None] * SIZE + j[None, :]
                    tl.store(inpass_ptr + sidx, ip.to(tl.int8), mask=xm & first_n)
            if SAVE:
                tl.store(xt_ptr + sm[:, None] * SIZE + j[None, :], u, mask=xm & first_n)
            wv = tl.load(w_ptr + offs_n[None, :] * stride_wn + cols[:, None] * stride_wk,
                         mask=kmask[:, None] & n_mask[None, :], other=0.0).to(tl.float32)  # [BK, BN]
            # 4. MAC
            acc = tl.dot(u, wv, acc, input_precision=PRECISION)
            if IR_DROP:
                q = 1.0 - tl.math.div_rn(j.to(tl.float32), kf)
                pos = tl.where(kmask, 1.0 - q * q, 0.0)
                acc_abs = tl.dot(tl.abs(u), tl.abs(wv), acc_abs, input_precision=PRECISION)
                acc_pos = tl.dot(u * pos[None, :], wv, acc_pos, input_precision=PRECISION)
            if W_NOISE == 2:
                acc_var = tl.dot(u * u, tl.abs(wv), acc_var, input_precision=PRECISION)
            if W_NOISE == 1:
                sq += tl.sum(u * u, axis=1)
        if PERFECT:
            ys = acc
        else:
            z = acc
            # 4b. IR drop
            if IR_DROP:
                a = acc_abs * tl.math.div_rn(kf, ir_g_ratio)
                c = ((a * 0.05 - 0.2) * a + 0.5) * a  # a(0.5 - 0.2a + 0.05a²), the reference's order
                z = z - (c * acc_pos) * ir_drop
            # 5 + 6. weight read noise and output noise
            if W_NOISE == 2:
                var = w_noise_sq * acc_var
                if OUT_NOISE:
                    var = var + out_noise_sq
                z = z + tl.randn(key_out, rand_out[:, None] + offs_n[None, :]) * tl.sqrt(var)
            elif W_NOISE == 1:
                var = w_noise_sq * sq
                if OUT_NOISE:
                    var = var + out_noise_sq
                z = z + tl.randn(key_out, rand_out[:, None] + offs_n[None, :]) * tl.sqrt(var)[:, None]
            elif OUT_NOISE:
                z = z + tl.randn(key_out, rand_out[:, None] + offs_n[None, :]) * tl.sqrt(out_noise_sq)
            # 7. ADC
            if OUT_QUANT:
                z = round_half_away(tl.math.div_rn(z, out_step)) * out_step
            op = tl.abs(z) <= out_bound
            if BOUND_TEST:
                hit = tl.where(out_mask & (tl.abs(z) >= out_bound), 1, 0)
                tl.store(sat_ptr + sm * NB + pid_n, tl.max(hit, axis=1).to(tl.int8), mask=r_mask)
            if SAVE:
                tl.store(outpass_ptr + sm[:, None] * N + offs_n[None, :], op.to(tl.int8), mask=out_mask)
            z = tl.minimum(tl.maximum(z, -out_bound), out_bound)
            # 9. rescale: α·2^k, 0 for an all-zero slice
            factor = tl.where(xabs > 0, alpha, 0.0) * pow2
            tl.store(factor_ptr + sm, factor, mask=r_mask & first_n)
            ys = z * factor[:, None]
        ys = ys * out_scale
        if HAS_SCALES:
            sc = tl.load(scales_ptr + s * N + offs_n, mask=n_mask, other=0.0).to(tl.float32)
            ys = ys * sc[None, :]
        y_acc += ys
    tl.store(y_ptr + rows[:, None] * stride_ym + offs_n[None, :] * stride_yn,
             y_acc.to(y_ptr.dtype.element_ty), mask=out_mask)


if on_gpu():
    _fwd_kernel = triton.autotune(
        configs=[
            triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=3),
            triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=3),
            triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=4, num_stages=3),
            triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=8, num_stages=3),
            triton.Config({"BLOCK_M": 32, "BLOCK_N": 64, "BLOCK_K": 64}, num_warps=4, num_stages=2),
            triton.Config({"BLOCK_M": 16, "BLOCK_N": 128, "BLOCK_K": 64}, num_warps=4, num_stages=2),
        ],
        key=["N", "SIZE", "S"],
    )(_analog_mvm_fwd_kernel)
else:
    _fwd_kernel = _analog_mvm_fwd_kernel


def _precision(device: torch.device) -> str:
    if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee"


def analog_mvm_fwd(x: Tensor, w: Tensor, io: IOParameters, in_size: Optional[int] = None,
                   out_scales: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                   save: bool = False):
    """Launch the fused forward (plus bound-management re-launches); the ``forward_impl`` of
    :class:`~aimc_lab.kernels.analog_mvm.reference.AnalogMVMFunction`.

    Returns ``(y [M, N], saved, dims)``; ``saved`` is what the reference's ``mvm_backward`` takes
    (x̃ [S, M, size], input-pass mask, output-pass mask [S, M, N], α·2^k [S, M]) when ``save``,
    else None; ``dims = (S, size, K)``.
    """
    S, size = _ref.check_mvm_args(x, w, io, in_size, out_scales)
    M, K = x.shape
    N = w.shape[0]
    dev = x.device
    y = torch.empty(M, N, dtype=x.dtype, device=dev)
    dims = (S, size, K)
    perfect = io.is_perfect
    if torch.isnan(x).any():
        raise ValueError("analog_mvm: x contains NaN")
    if M == 0 or N == 0:
        y.zero_()
        return y, None, dims
    inp_quant = not perfect and io.inp_step > 0
    inp_sto = inp_quant and io.inp_sto_round
    inp_noise = not perfect and io.inp_noise > 0
    w_noise = 0 if perfect or io.w_noise <= 0 else _W_NOISE_CODES[io.w_noise_type]
    out_noise = not perfect and io.out_noise > 0
    noisy = inp_sto or inp_noise or w_noise > 0 or out_noise
    seed = draw_seed(generator, dev) if noisy else 0
    bound_test = not perfect and io.bound_management == "iterative"
    f32 = dict(dtype=torch.float32, device=dev)
    kexp = torch.zeros(S, M, dtype=torch.int32, device=dev)
    pow2 = torch.ones(S, M, **f32)
    ipow2 = torch.ones(S, M, **f32)
    factor = torch.zeros(S, M, **f32)
    nb_max = triton.cdiv(N, MIN_BLOCK)
    sat = torch.zeros(S, M, nb_max if bound_test else 1, dtype=torch.int8, device=dev)
    if save:
        xt = torch.zeros(S, M, size, **f32)
        in_pass = torch.ones(S, M, size, dtype=torch.int8, device=dev)
        out_pass = torch.ones(S, M, N, dtype=torch.int8, device=dev)
    else:
        xt = in_pass = out_pass = factor  # never written (SAVE is off)
    scales = out_scales if out_scales is not None else factor
    nm = 3 if perfect else _NM_CODES[io.noise_management]
    consts = dict(
        NM=nm, PERFECT=perfect, INP_QUANT=inp_quant, INP_STO=inp_sto, INP_NOISE=inp_noise,
        IR_DROP=not perfect and io.ir_drop > 0, W_NOISE=w_noise, OUT_NOISE=out_noise,
        OUT_QUANT=not perfect and io.out_step > 0, HAS_SCALES=out_scales is not None,
        BOUND_TEST=bound_test, SAVE=save, PRECISION=_precision(dev))
    scalars = (seed, float(io.nm_thres), float(io.inp_step), float(io.inp_bound), float(io.inp_noise),
               float(io.out_step), float(io.out_bound), float(io.w_noise) ** 2,
               float(io.out_noise) ** 2, float(io.ir_drop), float(io.ir_drop_g_ratio),
               float(io.out_scale))

    def launch(rows: Tensor) -> None:
        R = rows.numel()
        args = (x, w, scales, rows, kexp, pow2, ipow2, y, sat, factor, xt, in_pass, out_pass,
                R, M, N, K, size, S, sat.shape[-1],
                x.stride(0), x.stride(1), w.stride(0), w.stride(1), y.stride(0), y.stride(1),
                *scalars)
        if _fwd_kernel is _analog_mvm_fwd_kernel:
            blocks = dict(BLOCK_M=block(R, 64), BLOCK_N=block(N, 128), BLOCK_K=block(size, 128))
            grid = (triton.cdiv(R, blocks["BLOCK_M"]), triton.cdiv(N, blocks["BLOCK_N"]))
            _fwd_kernel[grid](*args, **consts, **blocks)
        else:
            def grid(meta):
                return (triton.cdiv(R, meta["BLOCK_M"]), triton.cdiv(N, meta["BLOCK_N"]))
            _fwd_kernel[grid](*args, **consts)

    launch(torch.arange(M, dtype=torch.int64, device=dev))
    if bound_test:
        k_max = _ref.max_bm_exponent(io)
        for _ in range(k_max):
            redo = sat.any(dim=-1) & (kexp < k_max) & (factor != 0)  # [S, M]
            rows = redo.any(dim=0).nonzero().squeeze(-1)
            if rows.numel() == 0:
                break
            kexp += redo.to(torch.int32)
            pow2 = torch.exp2(kexp.to(torch.float32))
            ipow2 = torch.exp2(-kexp.to(torch.float32))
            launch(rows)
    saved = None
    if save:
        dt = x.dtype
        if perfect:
            saved = (xt.to(dt), None, None, None)
        else:
            saved = (xt.to(dt), in_pass.bool(), out_pass.bool(), factor.to(dt))
    return y, saved, dims


def analog_mvm(x: Tensor, w: Tensor, io: IOParameters, *, in_size: Optional[int] = None,
               out_scales: Optional[Tensor] = None, generator: Optional[torch.Generator] = None) -> Tensor:
    """Noisy analog ``y = x @ w.T`` with the fused Triton kernel; contract of
    :func:`aimc_lab.kernels.analog_mvm.reference.analog_mvm` (deviations: module docstring)."""
    return _ref.apply_with_gradients(analog_mvm_fwd, x, w, io, in_size, out_scales, generator)
