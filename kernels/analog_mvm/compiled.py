"""Small analog MVMs without autograd, compiled with numba.

In in-memory training every layer runs a forward and a transposed backward MVM per mini-batch of 5
rows; :func:`.cpu_fast.mvm_forward` spends ~30 tensor operations on them (~0.3 ms whatever the size),
the arithmetic itself ~0.01 ms. Here each pass is three compiled functions over plain arrays and one
torch draw, for the periphery the training presets use:

* :func:`_dac_py` — x / α / (2^k·Δ_in) (α: abs-max noise management, or 1), rounding to the DAC's
  grid, clipping at the input bound, the sign back on;
* :func:`_mac_py` — the MAC (vectorized dot products) plus the output noise, drawn by torch as the
  fast path draws it (one ``randn`` of the pass's [1, R, N]);
* :func:`_adc_py` — rounding to the ADC's grid, clipping, each row's saturation flag;
* iterative bound management re-runs the saturated rows with 2^k, the spec's loop, each pass with
  its own output-noise draw; then the rescale by α·2^k.

The DAC, ADC, bound management and rescale are the fast path's operations in its order and float
type, and the draws are its draws; only the MAC's sums are ordered differently (vectorized), so an
output that sits on an ADC rounding tie may land one step away, as against the spec
(tests/kernels/test_analog_mvm_compiled.py compares the two, seeded, on every supported switch).
``transposed`` reads the same array backwards (x @ w) without a transposed copy.
:func:`supports` says which calls take this path: one slice, no gradient, at most ``MAX_ROWS`` = 16
input rows (larger batches are faster in the eager path's vectorized passes), deterministic DAC
rounding, no input noise, IR drop or weight read noise, noise management ``abs_max``/``none``, bound
management ``iterative``/``none``, float32/float64 on the CPU, numba present
(:mod:`aimc_lab.kernels._numba`). Every other call runs :mod:`.cpu_fast` itself.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor

from aimc_lab.config import IOParameters
from aimc_lab.kernels import _numba
from aimc_lab.kernels.analog_mvm.reference import max_bm_exponent

__all__ = ["supports", "mvm_forward"]


#: Most input rows served: the compiled loops are single-threaded scalar code, the eager path's passes
#: vectorized; measured on the 2-core machine (training preset, 1 thread): [5, 64] @ 64×256 363 → 250 µs
#: (eager → compiled), [64, 256] @ 256×128 650 → 702 µs, [1000, 256] @ 256×128 4.1 → 6.4 ms.
MAX_ROWS = 16


def _by_identity(fn):
    """``fn(io, *rest)`` cached by the identity of ``io``: hashing a frozen dataclass's 18 fields on every
    call would cost more than the cached work (the io is kept alive with its entry)."""
    cache = {}

    @functools.wraps(fn)
    def cached(io, *rest):
        key = (id(io),) + rest
        hit = cache.get(key)
        if hit is None or hit[0] is not io:
            if len(cache) >= 128:
                cache.clear()
            hit = cache[key] = (io, fn(io, *rest))
        return hit[1]
    return cached


def supports(x: Tensor, io: IOParameters, slices: int, need_saved: bool, one_hot: bool) -> bool:
    """Whether :func:`mvm_forward` serves this call (module doc; at most ``MAX_ROWS`` rows)."""
    return (not need_saved and slices == 1 and not one_hot and x.device.type == "cpu" and x.shape[0] <= MAX_ROWS
            and x.dtype in (torch.float32, torch.float64) and _periphery_supported(io) and _numba.available())


@_by_identity
def _periphery_supported(io: IOParameters) -> bool:
    return (not io.is_perfect and io.inp_noise == 0 and not io.inp_sto_round and io.ir_drop == 0 and io.w_noise == 0
            and io.inp_step > 0 and io.out_step > 0
            and io.noise_management in ("abs_max", "none") and io.bound_management in ("iterative", "none"))


def _dac_py(x, rows, first, use_alpha, nm_thres, smallest, one, pow2, step, bound, half, alpha, mag, u):
    """For the rows x[rows[r]]: on the ``first`` pass each row's max|x| into mag[m], α into alpha[m]
    (abs-max noise management: max|x| clamped to [smallest, nm_thres]; else 1) and 2^0 into pow2[m];
    then u[r] = the DAC's output for x / α / (2^k·Δ) (2^k = pow2[m]):
    sign(x)·min(floor(|x/α/(2^k·Δ)| + 1/2)·Δ, bound). Returns False when a row holds a NaN (nothing
    else is then computed)."""
    K = x.shape[1]
    for r in range(rows.shape[0]):
        m = rows[r]
        if first:
            peak = abs(x[m, 0])
            for j in range(1, K):
                a = abs(x[m, j])
                if a > peak:
                    peak = a
                if a != a:
                    return False
            if peak != peak:
                return False
            mag[m] = peak
            pow2[m] = one
            alpha[m] = one
            if use_alpha:
                a_m = max(peak, smallest)
                alpha[m] = min(a_m, nm_thres) if nm_thres > 0 else a_m
    for r in range(rows.shape[0]):
        m = rows[r]
        div = step * pow2[m]
        for j in range(K):
            v = x[m, j]
            if use_alpha:
                v = v / alpha[m]
            q = np.floor(abs(v / div) + half) * step  # half in x's float type: float32 stays float32
            if q > bound:
                q = bound
            u[r, j] = q if v > 0 or (v == 0 and not np.signbit(v)) else -q
    return True


def _adc_py(z, step, bound, half, sat, rescale, alpha, mag, use_alpha, scales, one, zero):
    """In place: z = sign(z)·min(floor(|z/Δ_out| + 1/2)·Δ_out, bound); sat[r] = any |z[r]| >= bound
    after the ADC (row r saturated). Returns whether any row saturated. ``rescale`` 2 (a first pass
    without bound management) or 1 (a first pass, when no row saturated): then also the rescale of
    :func:`_rescale_py` with 2^0; 0 (a re-run): never."""
    M, N = z.shape
    some = False
    for m in range(M):
        sat[m] = False
        for i in range(N):
            v = z[m, i] / step
            q = np.floor(abs(v) + half) * step
            if q > bound:
                q = bound
            if q >= bound:
                sat[m] = True
                some = True
            z[m, i] = q if v > 0 or (v == 0 and not np.signbit(v)) else -q
    if rescale == 2 or (rescale == 1 and not some):
        for m in range(M):
            f = (alpha[m] if use_alpha else one) * (one if mag[m] > 0 else zero)
            for i in range(N):
                v = z[m, i] * f
                z[m, i] = v * (scales[0] if scales.shape[0] == 1 else scales[i])
    return some


def _rescale_py(y, alpha, mag, use_alpha, pow2, scales, one, zero):
    """y[m] *= α_m·[max|x_m| > 0]·2^k_m, then y[m] *= scales (per column, or one number): the fast
    path's products in its order (2^k scales exactly, so multiplying by 2^0 changes nothing)."""
    M, N = y.shape
    for m in range(M):
        f = (alpha[m] if use_alpha else one) * (one if mag[m] > 0 else zero) * pow2[m]
        for i in range(N):
            v = y[m, i] * f
            y[m, i] = v * (scales[0] if scales.shape[0] == 1 else scales[i])


def _mac_py(u, w, transposed, noise, sigma, zero, z):
    """z = u @ w.T (w [N, K]) or, ``transposed``, u @ w (the backward's read of the same array), plus
    sigma·noise (the pass's output noise; ``noise`` empty: none). Compiled with reassociation
    (:func:`aimc_lab.kernels._numba.compiled`): the dot products are vectorized, so the sums' last bits
    are not torch's."""
    R = u.shape[0]
    noisy = noise.shape[0] > 0
    if transposed:
        K, N = w.shape  # z [R, N]: rows of w scaled and added
        for r in range(R):
            for i in range(N):
                z[r, i] = sigma * noise[r, i] if noisy else zero
            for k in range(K):
                a = u[r, k]
                for i in range(N):
                    z[r, i] += a * w[k, i]
    else:
        N, K = w.shape
        for r in range(R):
            for i in range(N):
                acc = zero
                for k in range(K):
                    acc += u[r, k] * w[i, k]
                z[r, i] = acc + sigma * noise[r, i] if noisy else acc


class _Periphery(NamedTuple):
    """A periphery's constants in the array float type and its compiled kernels (:func:`_constants`)."""
    scalar: type  # np.float32 or np.float64
    dac: tuple  # (abs-max noise management?, nm_thres, smallest α, 1)
    inp: tuple  # (Δ_in, input bound, 1/2)
    out: tuple  # (Δ_out, output bound, 1/2)
    k_max: int  # bound management's largest exponent (0: no re-runs)
    scales: np.ndarray  # [out_scale], read-only
    one_zero: tuple  # (1, 0)
    sigma: object  # output noise σ
    none: np.ndarray  # an empty noise array
    kernels: tuple  # (DAC, MAC, ADC)


@_by_identity
def _constants(io: IOParameters, dtype: torch.dtype) -> _Periphery:
    """The float constants of a periphery in the array float type (the DAC's, the ADC's, the rescale's),
    bound management's largest exponent and the three compiled kernels: computed once per (io, dtype)."""
    scalar = np.float32 if dtype == torch.float32 else np.float64
    fi = torch.finfo(dtype)
    scale = np.array([io.out_scale], scalar)
    scale.setflags(write=False)
    return _Periphery(
        scalar=scalar,
        dac=(io.noise_management == "abs_max", scalar(io.nm_thres), scalar(fi.tiny * fi.eps), scalar(1)),
        inp=(scalar(io.inp_step), scalar(io.inp_bound), scalar(0.5)),
        out=(scalar(io.out_step), scalar(io.out_bound), scalar(0.5)),
        k_max=max_bm_exponent(io) if io.bound_management == "iterative" else 0,
        scales=scale, one_zero=(scalar(1), scalar(0)), sigma=scalar(io.out_noise), none=np.empty((0, 0), scalar),
        kernels=(_numba.compiled(_dac_py), _numba.compiled(_mac_py, reassociate=True), _numba.compiled(_adc_py)))


_FIRST_ROWS = np.arange(MAX_ROWS, dtype=np.int64)  # a first pass's rows 0..M-1


def mvm_forward(x: Tensor, w: Tensor, io: IOParameters, out_scales: Optional[Tensor],
                generator: Optional[torch.Generator], transposed: bool = False) -> Tensor:
    """y [M, N] = the periphery around x [M, K] @ w.T for w [N, K] (one slice, no saved tensors; the
    caller checked the arguments and :func:`supports`); ``transposed``: y [M, K] from x [M, N] @ w, the
    transposed read of the same array, without a transposed copy. The draws are :mod:`.cpu_fast`'s (one
    output-noise draw per pass); a NaN in x raises ValueError before any draw."""
    x = x.contiguous()
    M = x.shape[0]
    c = _constants(io, x.dtype)
    scales = c.scales if out_scales is None else (out_scales.reshape(-1) * io.out_scale).numpy()
    xn, wn = x.numpy(), w.contiguous().numpy()
    state = np.empty((3, M), c.scalar)  # α, max|x| and 2^k per row, filled by the first pass
    y, sat, some = _pass(xn, wn, _FIRST_ROWS[:M], True, transposed, c, state, scales, generator)
    k_max = c.k_max
    if k_max == 0 or not some:
        return y  # rescaled by the ADC pass
    # the fast path's loop: re-run the saturated nonzero rows with 2^k, then rescale every row
    alpha, mag, pow2 = state
    kexp = np.zeros(M, np.int64)
    redo = sat & (mag > 0)
    for _ in range(k_max):
        redo &= kexp < k_max
        picked = np.nonzero(redo)[0]
        if picked.size == 0:
            break
        kexp[picked] += 1
        pow2[picked] = np.exp2(kexp[picked])
        y_r, sat_r, _ = _pass(xn, wn, picked, False, transposed, c, state, scales, generator)
        y[torch.from_numpy(picked)] = y_r
        redo = np.zeros(M, np.bool_)
        redo[picked] = sat_r
    _numba.compiled(_rescale_py)(y.numpy(), alpha, mag, c.dac[0], pow2, scales, *c.one_zero)
    return y


def _pass(xn, wn, rows, first, transposed, c, state, scales, generator):
    """One pass of the rows ``rows``: DAC, the output-noise draw, MAC, ADC. Returns (z [R, N] tensor,
    saturation flags [R], whether any row saturated)."""
    dac_k, mac_k, adc_k = c.kernels
    alpha, mag, pow2 = state
    R = rows.shape[0]
    N = wn.shape[1] if transposed else wn.shape[0]
    u = np.empty((R, xn.shape[1]), c.scalar)
    if not dac_k(xn, rows, first, *c.dac, pow2, *c.inp, alpha, mag, u):
        raise ValueError("analog_mvm: x contains NaN")
    dtype = torch.float32 if c.scalar is np.float32 else torch.float64
    noise = torch.randn((1, R, N), generator=generator, dtype=dtype).numpy()[0] if c.sigma > 0 else c.none
    z = torch.empty(R, N, dtype=dtype)
    zn = z.numpy()
    mac_k(u, wn, transposed, noise, c.sigma, c.one_zero[1], zn)
    sat = np.empty(R, np.bool_)
    rescale = 0 if not first else (2 if c.k_max == 0 else 1)  # the first pass may rescale itself
    return z, sat, adc_k(zn, *c.out, sat, rescale, alpha, mag, c.dac[0], scales, *c.one_zero)
