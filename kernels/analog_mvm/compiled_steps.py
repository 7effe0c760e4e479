"""The fast path's element-wise converter steps compiled with numba: one pass each instead of ~8.

:mod:`.cpu_fast` runs the DAC as divide, divide, ``abs``, add ½, floor, multiply, compare, clamp and
``copysign``: each a pass over the [S, R, K] inputs, each memory-bound, most into a fresh tensor.
Compiled, each element goes through the same float operations in the same order in one pass, so the
numbers are the same bit for bit (tests/kernels/test_analog_mvm_compiled_steps.py compares both
ways, the masks and generator state included):

* :func:`dac` — x / α / (2^k·Δ_in) rounded half away from zero on the DAC's grid, clipped at the
  input bound, the sign of x back on, and the pass mask |Q| <= bound when the backward needs it. It
  reads a bound-management re-run's rows from x and α itself, so x / α is never stored;
* :func:`adc` — the same for the outputs, in place: z / Δ_out rounded, clipped, signed, and its mask.

Deterministic rounding only (the stochastic DAC's uniforms stay torch's draws). :func:`serves` says
when these run: contiguous float32/float64 CPU tensors, numba present (:mod:`aimc_lab.kernels._numba`);
otherwise :mod:`.cpu_fast` runs its torch passes. Single-threaded; measured with
benchmarks/bench_tile.py (1 thread, CPU clock) the library defaults' forward went from 1.46-1.49× to
1.35-1.37× its floor on N(0, 1) inputs; with 2 threads the difference is inside the machine's noise.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from aimc_lab.kernels import _numba

__all__ = ["serves", "dac", "adc"]

_SCALAR = {torch.float32: np.float32, torch.float64: np.float64}


def serves(t: Tensor) -> bool:
    """Whether the compiled steps take ``t``: a contiguous float32/float64 CPU tensor, numba present."""
    return t.device.type == "cpu" and t.dtype in _SCALAR and t.is_contiguous() and _numba.available()


def _dac_py(src, rows, alpha, pow2, step, bound, half, u, mask):
    """For the rows ``rows`` [R] of src [S, M, K]: u[s, r] = sign(x)·min(floor(|x / α / (Δ·2^k)| + ½)·Δ,
    bound) for x = src[s, rows[r]], α = alpha[s, rows[r]] ([S, M], or empty: 1), 2^k = pow2[s, r]
    ([S, R], or empty: 1); mask[s, r] = that magnitude <= bound (1/0; empty: none). The fast path's
    operations in its order: the division by α, then by Δ·2^k (exact: 2^k scales exactly), ½ added to
    the magnitude, floor, ×Δ. Each row is contiguous, so the inner loop vectorizes."""
    S = src.shape[0]
    K = src.shape[2]
    by_alpha = alpha.shape[0] > 0
    by_pow2 = pow2.shape[0] > 0
    masked = mask.shape[0] > 0
    one = half + half
    zero = half - half
    for s in range(S):
        for r in range(rows.shape[0]):
            m = rows[r]
            div = step * pow2[s, r] if by_pow2 else step
            a = alpha[s, m] if by_alpha else one
            x = src[s, m]
            out = u[s, r]
            if masked:
                passed = mask[s, r]
                for j in range(K):
                    q = np.floor(abs((x[j] / a if by_alpha else x[j]) / div) + half) * step
                    passed[j] = one if q <= bound else zero
                    out[j] = np.copysign(q if q < bound else bound, x[j])
            else:
                for j in range(K):
                    q = np.floor(abs((x[j] / a if by_alpha else x[j]) / div) + half) * step
                    out[j] = np.copysign(q if q < bound else bound, x[j])


_ALL_ROWS = {}  # M -> arange(M): the rows of a first pass


def dac(src: Tensor, rows: Optional[Tensor], alpha: Optional[Tensor], pow2: Optional[Tensor], step: float,
        bound: float, need_mask: bool):
    """The deterministic DAC of the rows ``rows`` (None: all) of src [S, M, K] (contiguous; see
    :func:`_dac_py`): (x̃ [S, R, K], pass mask or None), new tensors; ``alpha`` [S, M], ``pow2`` [S, R]
    or None (1). Reading the rows and dividing by α here spares the fast path a gathered copy of x/α."""
    scalar = _SCALAR[src.dtype]
    S, M, K = src.shape
    if rows is None:
        picked = _ALL_ROWS.get(M)
        if picked is None:
            if len(_ALL_ROWS) >= 64:
                _ALL_ROWS.clear()
            picked = _ALL_ROWS[M] = np.arange(M, dtype=np.int64)
    else:
        picked = rows.numpy()
    shape = (S, picked.shape[0], K)
    u = torch.empty(shape, dtype=src.dtype)
    mask = torch.empty(shape, dtype=src.dtype) if need_mask else None
    none = np.empty((0, 0), scalar)
    _numba.compiled(_dac_py)(src.numpy(), picked, none if alpha is None else alpha.contiguous().numpy(),
                             none if pow2 is None else pow2.contiguous().numpy(), scalar(step), scalar(bound),
                             scalar(0.5), u.numpy(), none.reshape(0, 0, 0) if mask is None else mask.numpy())
    return u, mask


def _adc_py(z, step, bound, half, mask):
    """In place on flat z: z = sign(v)·min(floor(|v| + ½)·Δ, bound) for v = z / Δ; mask = the
    magnitude <= bound (1/0; ``mask`` empty: none)."""
    one = half + half
    zero = half - half
    if mask.shape[0] > 0:
        for i in range(z.shape[0]):
            v = z[i] / step
            q = np.floor(abs(v) + half) * step
            mask[i] = one if q <= bound else zero
            z[i] = np.copysign(q if q < bound else bound, v)
    else:
        for i in range(z.shape[0]):
            v = z[i] / step
            q = np.floor(abs(v) + half) * step
            z[i] = np.copysign(q if q < bound else bound, v)


def adc(z: Tensor, step: float, bound: float, need_mask: bool) -> Optional[Tensor]:
    """The ADC on z [S, R, N] in place (contiguous; see :func:`_adc_py`); returns the pass mask or None."""
    scalar = _SCALAR[z.dtype]
    mask = torch.empty(z.shape, dtype=z.dtype) if need_mask else None
    _numba.compiled(_adc_py)(z.numpy().reshape(-1), scalar(step), scalar(bound), scalar(0.5),
                             np.empty(0, scalar) if mask is None else mask.numpy().reshape(-1))
    return mask
