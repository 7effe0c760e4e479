"""The learned input range's backward (``aimc_lab.tile.InputRangeFunction``) in one compiled pass.

The torch form reads the clipped mask off the forward's output u = clip(x)/r (floor|u|) and makes the
input gradient g/r (masked unless straight-through), the per-column sums Σ min(g·u·mask, 0) of the
range's gradient and, with a decay, the per-column counts of clipped entries: about ten passes over
[M, K] and four temporaries of that size, on a convolution's patches (LeNet's second layer at batch
64: M·K = 1.6 M; the hardware-aware LeNet step measured 87 → 82–84 ms). :func:`backward` makes the same
element-wise float operations in one pass; the column sums add the rows in order (as torch's sum
over dim 0 of a contiguous matrix does here, so the sums are torch's up to the order of a
reduction: tests/kernels/test_input_range_grad.py compares the two). Without numba, or on other
devices and dtypes, :func:`serves` is False and the torch form runs.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from aimc_lab.kernels import _numba

__all__ = ["serves", "backward"]


def _backward_py(u, grad, r_cols, mask_x, need_x, need_r, one, zero, grad_x, per_col, n_clipped):
    """For every entry: c = floor|u| (1 where the forward clipped); grad_x = grad / r_col, × (1 − c)
    with ``mask_x``; per_col[j] += min(grad·u·c, 0) and n_clipped[j] += c (columns summed row after row)."""
    M, K = u.shape
    for j in range(K):
        per_col[j] = zero
        n_clipped[j] = zero
    for m in range(M):
        for j in range(K):
            c = np.floor(abs(u[m, j]))
            g = grad[m, j]
            if need_x:
                v = g / r_cols[j]
                if mask_x:
                    v = v * (one - c)
                grad_x[m, j] = v
            if need_r:
                s = g * u[m, j] * c
                if s > zero:
                    s = zero
                per_col[j] += s
                n_clipped[j] += c


def serves(u: Tensor, grad: Tensor, r_cols: Tensor) -> bool:
    """Whether :func:`backward` takes this call: u a contiguous 2-d float32/float64 CPU tensor, ``grad``
    and ``r_cols`` of its dtype on the CPU (``grad`` may be strided: it is copied), numba present."""
    return (u.device.type == "cpu" and u.dim() == 2 and u.dtype in (torch.float32, torch.float64)
            and u.is_contiguous() and grad.dtype == u.dtype and r_cols.dtype == u.dtype
            and grad.device.type == "cpu" and r_cols.device.type == "cpu" and _numba.available())


def backward(u: Tensor, grad: Tensor, r_cols: Tensor, straight_through: bool, need_x: bool,
             need_r: bool) -> Tuple[Optional[Tensor], Tensor, Tensor]:
    """(grad_x [M, K] or None, per-column Σ min(grad·u·clipped, 0) [K], per-column clipped count [K]) for
    the forward's output u [M, K] (:func:`serves`), the gradient ``grad`` by u and the ranges per column
    ``r_cols`` [K]: :class:`~aimc_lab.tile.InputRangeFunction`'s backward before its per-slice sums."""
    grad, r = grad.contiguous(), r_cols.contiguous()
    M, K = u.shape
    grad_x = torch.empty_like(u) if need_x else u.new_empty(0, 0)
    per_col, n_clipped = u.new_empty(K), u.new_empty(K)
    scalar = u.numpy().dtype.type
    _numba.compiled(_backward_py)(u.numpy(), grad.numpy(), r.numpy(), not straight_through, need_x, need_r,
                                  scalar(1), scalar(0), grad_x.numpy(), per_col.numpy(), n_clipped.numpy())
    return (grad_x if need_x else None), per_col, n_clipped
