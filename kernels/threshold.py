"""Mixed precision's thresholded transfer of the digital accumulator χ, compiled for CPU tensors.

The torch form (:class:`aimc_lab.train.inmemory.mixed_precision.MixedPrecision`, the spec) takes
n = clamp(trunc(χ/ε), ±bl), tests n for any pulse, subtracts n·ε from χ and hands the dense [N, K]
counts to the joint write, which looks for the devices with pulses again: seven passes over χ and
three [N, K] temporaries per layer and update (with the overflow check, ~0.6 ms of a 1.8 ms
optimizer step of the digits MLP; the pulses that follow take ~0.2 ms). :func:`threshold_transfer` does the same float operations in one pass and returns
only the devices with pulses, in flat order, which is what the joint write
(``PendingCounts.add_flat``) takes. Without numba, or on other devices and dtypes, :func:`serves`
is False and the caller runs the torch form. :func:`row_bound` is the accumulator's overflow check
of the rows, in one pass.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
from torch import Tensor

from aimc_lab.kernels import _numba

__all__ = ["serves", "threshold_transfer", "row_bound"]


def _threshold_py(h, step, below, bound, idx, counts):
    """In place on χ (flat): n = clamp(trunc(χ/ε), −bound, bound) per device; where n ≠ 0, χ ← χ − n·ε
    and the device's flat index and n go to idx[c], counts[c]. Returns c. The float operations are
    torch's (χ/ε and n·ε rounded to χ's float type, no fused multiply-add). Most of χ is below one
    step after a transfer: |χ| < ``below`` = ε·(1 − 2⁻²⁰) (float64) gives n = 0 without the division,
    as the rounded quotient is then below 1 (where χ = ±0, torch's χ − n·ε gives +0)."""
    c = 0
    for i in range(h.shape[0]):
        if abs(h[i]) < below:
            if h[i] == 0:
                h[i] = 0.0
            continue
        n = np.trunc(h[i] / step)
        if n > bound:
            n = bound
        elif n < -bound:
            n = -bound
        if n != 0:
            idx[c] = i
            counts[c] = n
            h[i] = h[i] - n * step
            c += 1
    return c


def _row_bound_py(x, d):
    """Σ_m max_j |x[m, j]|·max_i |d[m, i]| in float64 (NaN if either holds a NaN)."""
    total = 0.0
    for m in range(x.shape[0]):
        a = 0.0
        for j in range(x.shape[1]):
            v = abs(np.float64(x[m, j]))
            if v > a or v != v:  # a NaN stays
                a = v
        b = 0.0
        for i in range(d.shape[1]):
            v = abs(np.float64(d[m, i]))
            if v > b or v != v:
                b = v
        total += a * b
    return total


def row_bound(x: Tensor, d: Tensor) -> float:
    """Σ_m max|x_m|·max|δ_m| over the rows x [M, K], δ [M, N], in float64: the bound mixed precision puts
    on |Δχ|/η. One compiled pass where :func:`serves` holds for both, else torch (the same number up to
    the last bits of the sum's order)."""
    if x.dim() == 2 and d.dim() == 2 and serves(x) and serves(d) and not (x.requires_grad or d.requires_grad):
        return float(_numba.compiled(_row_bound_py)(x.numpy(), d.numpy()))
    return float(x.abs().amax(1).double() @ d.abs().amax(1).double())


def serves(h: Tensor) -> bool:
    """Whether :func:`threshold_transfer` takes χ: a contiguous float32/float64 CPU tensor, numba present."""
    return (h.device.type == "cpu" and h.dtype in (torch.float32, torch.float64) and h.is_contiguous()
            and _numba.available())


def threshold_transfer(h: Tensor, step: float, bound: int) -> Tuple[Tensor, Tensor]:
    """Mixed precision's transfer of χ = ``h`` [N, K] in place (:func:`serves` holds): n = clamp(trunc(χ/ε),
    ±bound) with ε = ``step`` > 0, χ ← χ − n·ε. Returns (idx [P] int64, n [P] in χ's dtype): the flat
    indices of the devices with n ≠ 0, ascending, and their counts."""
    flat = h.numpy().reshape(-1)
    idx = np.empty(flat.shape[0], np.int64)
    counts = np.empty(flat.shape[0], flat.dtype)
    scalar = flat.dtype.type
    c = _numba.compiled(_threshold_py)(flat, scalar(step), float(scalar(step)) * (1 - 2.0 ** -20), scalar(bound), idx,
                                       counts)
    return torch.from_numpy(idx[:c]), torch.from_numpy(counts[:c])
