"""The pulse loop of the closed-form device kinds compiled with numba: the CPU path's third gear.

On the small tiles of in-memory training (a few thousand devices, batch 5, 1-30 pulses per device
and update) the eager pulse loop of :mod:`.cpu_fast` costs ~20 tensor operations per pulse and its
ordering a sort, a ``nonzero`` and six gathers: 1-4 ms per layer and update whatever the arithmetic.
Here the same work is compiled functions over plain arrays:

* :func:`loop_order` — the spec's order (devices with pulses, stably sorted by their pulse count T,
  largest first) by a counting sort, O(devices);
* :func:`run_loop` — every device's T pulses one after the other (Bresenham directions, the linear
  or constant step, cycle-to-cycle noise, clipping after each pulse), reading each device's
  constants at its own index: no gathers, no temporaries;
* :func:`slot_counts` — the coincidence counts of the slots' random bits by a loop over the fired
  rows and columns instead of two matmuls of bit matrices.

The random draws stay torch's: the spec's one draw of ΣT normals (:func:`reference.loop_draws`,
pulse k's draws for its still-pulsing devices after pulse k − 1's), and the compiled loop reads pulse
k's draw of device j at ``off[k − 1] + j``. So the result equals :mod:`.cpu_fast`'s (and the spec's) up to
float rounding (tests/kernels/test_pulsed_update_compiled.py).

Compiled by numba at first use (:mod:`aimc_lab.kernels._numba`, which says why numba); without it,
or with ``AIMC_LAB_NUMBA=0``, :func:`available` is False and the callers run the eager loop (same
results).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from aimc_lab.kernels import _numba
from aimc_lab.kernels.pulsed_update import reference as R

__all__ = ["available", "loop_order", "run_loop", "slot_counts", "pulse_counts", "pulse_train_factors", "commit"]


def available() -> bool:
    """Whether the compiled loop can run (:func:`aimc_lab.kernels._numba.available`)."""
    return _numba.available()


def _kernels():
    """The compiled kernels (order, loop, counts), compiled or loaded from numba's disk cache on first use."""
    return _numba.compiled(_order_py), _numba.compiled(_loop_py), _numba.compiled(_counts_py)


def _radicands_py(x, d, lr, dw_min, one, tiny, bl_cap, blm, bl, rad, active):
    """First half of the spec's :func:`reference.pulse_train_factors`, with torch's float operations in
    its order (the constants arrive in x's float type, so float32 arithmetic stays float32): per row
    BL, whether the row is active, and the two radicands rad[0] = lr/(dw_min·BL) (torch's ``lr / t`` is
    ``t.reciprocal() * lr``) and rad[1] = x_max/d_max (1 for an inactive row). torch takes their square
    roots (its float32 sqrt is not the correctly rounded one, so the spec's bits need torch's)."""
    M, K = x.shape
    N = d.shape[1]
    for m in range(M):
        x_max = abs(x[m, 0])
        for j in range(1, K):
            if abs(x[m, j]) > x_max:
                x_max = abs(x[m, j])
        d_max = abs(d[m, 0])
        for i in range(1, N):
            if abs(d[m, i]) > d_max:
                d_max = abs(d[m, i])
        active[m] = x_max > 0 and d_max > 0
        b_m = bl_cap  # desired BL, in x's float type (an int would promote float32 to float64)
        if blm:
            b_m = np.ceil(lr * x_max * d_max / dw_min)
            b_m = min(max(b_m, one), bl_cap)
        bl[m] = np.int64(b_m)
        rad[0, m] = one / (dw_min * b_m) * lr
        rad[1, m] = x_max / max(d_max, tiny) if active[m] else one


def _probabilities_py(x, d, roots, active, um, one, zero, p, q, keep):
    """Second half: with base = roots[0] and ratio = roots[1] (update management), the firing
    probabilities p = min(B·|x|, 1), q = min(A·|d|, 1) (A = base·ratio, B = base/ratio), zero for an
    inactive row, and keep[m] = a probability of each side is > 0."""
    M, K = x.shape
    N = d.shape[1]
    for m in range(M):
        a = roots[0, m]
        b = roots[0, m]
        if um:
            a = roots[0, m] * roots[1, m]
            b = roots[0, m] / roots[1, m]
        any_p = False
        any_q = False
        for j in range(K):
            v = min(b * abs(x[m, j]), one) if active[m] else zero
            p[m, j] = v
            any_p = any_p or v > 0
        for i in range(N):
            v = min(a * abs(d[m, i]), one) if active[m] else zero
            q[m, i] = v
            any_q = any_q or v > 0
        keep[m] = any_p and any_q


def _counts_py(ux, ud, p, q, sx, sd, rows, total, signed):
    """Add the coincidences of a chunk of slots to total/signed [N, K]: slot t (of batch row rows[t])
    fires input j when ux[t, j] < p[r, j] and output i when ud[t, i] < q[r, i] (the spec's test on the
    spec's uniforms); each fired pair counts once, signed by sign(d_i)·sign(x_j)."""
    K = ux.shape[1]
    N = ud.shape[1]
    fired_j = np.empty(K, np.int64)
    for t in range(rows.shape[0]):
        r = rows[t]
        nj = 0
        for j in range(K):
            if ux[t, j] < p[r, j]:
                fired_j[nj] = j
                nj += 1
        if nj == 0:
            continue
        for i in range(N):
            if ud[t, i] < q[r, i]:
                si = sd[r, i]
                for a in range(nj):
                    j = fired_j[a]
                    total[i, j] += 1
                    signed[i, j] += si * sx[r, j]


def _changed_py(w, w_new):
    """How many devices changed (w_new != w)."""
    n = 0
    for i in range(w.shape[0]):
        if w_new[i] != w[i]:
            n += 1
    return n


def _commit_py(w, w_new, write_noise, scale, xi):
    """w ← w_new; the k-th changed device (in flat order) takes write noise scale·xi[k]."""
    k = 0
    for i in range(w.shape[0]):
        if w_new[i] != w[i]:
            if xi.shape[0] > 0:
                write_noise[i] = scale * xi[k]
                k += 1
            w[i] = w_new[i]


def commit(w: Tensor, w_new: Tensor, write_noise: Tensor, scale: float, generator: Optional[torch.Generator]) -> None:
    """``DeviceArray.commit`` compiled: in place on the contiguous CPU tensors w and write_noise, the
    same draws as its eager form (one normal per changed device, in flat order; none when ``scale`` is 0)."""
    wf, nf = w.numpy().reshape(-1), w_new.contiguous().numpy().reshape(-1)
    xi = np.empty(0, wf.dtype)
    if scale > 0:
        n = _numba.compiled(_changed_py)(wf, nf)
        xi = torch.randn(n, generator=generator, dtype=w.dtype).numpy()
    _numba.compiled(_commit_py)(wf, nf, write_noise.numpy().reshape(-1), wf.dtype.type(scale), xi)


def _order_py(n_up, n_down):
    """Counting sort of the devices with pulses by T = n⁺ + n⁻, largest first, stable: (idx, U, T,
    live) with live[k − 1] = #devices with T >= k."""
    n = n_up.shape[0]
    t_max = 0
    for i in range(n):
        t = int(n_up[i] + n_down[i])
        if t > t_max:
            t_max = t
    live = np.zeros(t_max, np.int64)
    per_t = np.zeros(t_max + 2, np.int64)
    for i in range(n):
        per_t[int(n_up[i] + n_down[i])] += 1
    start = np.zeros(t_max + 2, np.int64)  # first position of the devices with T = t
    pos = 0
    for t in range(t_max, 0, -1):
        start[t] = pos
        pos += per_t[t]
        live[t - 1] = pos
    idx = np.empty(pos, np.int64)
    U = np.empty(pos, np.int64)
    T = np.empty(pos, np.int64)
    for i in range(n):
        t = int(n_up[i] + n_down[i])
        if t > 0:
            p = start[t]
            start[t] = p + 1
            idx[p] = i
            U[p] = int(n_up[i])
            T[p] = t
    return idx[:pos], U[:pos], T[:pos], live


def _loop_py(w, idx, U, T, off, xi, dw_up, dw_down, g_up, g_down, b_max, b_min, sigma, noisy, mult,
             constant):
    """Pulse k = 1..T[j] of device i = idx[j] (in place on w): the cpu_fast loop's arithmetic, in its
    order of float32 operations."""
    for j in range(idx.shape[0]):
        i = idx[j]
        u = U[j]
        t = T[j]
        v = w[i]
        hi = b_max[i]
        lo = b_min[i]
        for k in range(1, t + 1):
            up = ((k - 1) * u % t + u) >= t
            delta = dw_up[i] if up else dw_down[i]
            if constant:
                step = delta
                if noisy:
                    step = step * (xi[off[k - 1] + j] * sigma + np.float32(1.0))
            else:
                slope = (g_up[i] if up else g_down[i]) * delta
                step = delta + slope * v
                if step < 0:
                    step = np.float32(0.0)
                if noisy:
                    scale = step if mult else delta
                    step = step + sigma * scale * xi[off[k - 1] + j]
            v = v + step if up else v - step
            if v > hi:
                v = hi
            if v < lo:
                v = lo
        w[i] = v


def pulse_train_factors(x: np.ndarray, d: np.ndarray, lr: float, dw_min: float, desired_bl: int,
                        update_management: bool, bl_management: bool):
    """The spec's :func:`reference.pulse_train_factors` bit for bit, on arrays: (BL [M] int64, p [M, K],
    q [M, N], keep [M]: the rows with a firing probability on both sides)."""
    scalar = x.dtype.type
    M, K = x.shape
    bl = np.empty(M, np.int64)
    rad = torch.empty(2, M, dtype=torch.from_numpy(x[:0]).dtype)
    active = np.empty(M, np.bool_)
    _numba.compiled(_radicands_py)(x, d, scalar(lr), scalar(dw_min), scalar(1), scalar(1e-30), scalar(desired_bl),
                                   bl_management, bl, rad.numpy(), active)
    rad.sqrt_()
    p = np.empty((M, K), scalar)
    q = np.empty((M, d.shape[1]), scalar)
    keep = np.empty(M, np.bool_)
    _numba.compiled(_probabilities_py)(x, d, rad.numpy(), active, update_management, scalar(1), scalar(0), p, q,
                                       keep)
    return bl, p, q, keep


def pulse_counts(x: Tensor, d: Tensor, lr: float, dw_min: float, desired_bl: int, update_management: bool,
                 bl_management: bool, generator: Optional[torch.Generator]):
    """:func:`.cpu_fast.pulsed_update`'s counts, compiled: the pulse-train factors of every row, the rows
    with a firing probability on both sides, their slots' coincidences (the spec's uniforms, drawn by
    :func:`slot_counts`). Returns (n_up, n_down, total) [N, K] in x's dtype, or None when no row fires."""
    M = x.shape[0]
    xn, dn = x.contiguous().numpy(), d.contiguous().numpy()
    bl, p, q, keep = pulse_train_factors(xn, dn, lr, dw_min, desired_bl, update_management, bl_management)
    rows = np.nonzero(keep)[0]
    if rows.size == 0:
        return None
    if rows.size < M:
        p, q, bl, xn, dn = p[rows], q[rows], bl[rows], xn[rows], dn[rows]
    total, signed = slot_counts(torch.from_numpy(p), torch.from_numpy(q), torch.from_numpy(bl),
                                torch.from_numpy(np.sign(xn)), torch.from_numpy(np.sign(dn)), generator)
    n_up = (total - signed).mul_(0.5)
    return n_up, total.add(signed).mul_(0.5), total


def slot_counts(p: Tensor, q: Tensor, bl: Tensor, sx: Tensor, sd: Tensor,
                generator: Optional[torch.Generator]) -> Tuple[Tensor, Tensor]:
    """The spec's :func:`reference._slot_counts` (total, signed) [N, K] on the CPU: the same chunks of
    slots and the same uniforms (two ``torch.rand`` per chunk), the coincidences counted by a compiled
    loop over the fired rows and columns instead of two matmuls of bit matrices (exact integers either
    way, so the counts are equal)."""
    counts = _kernels()[2]
    dtype = p.dtype
    R_, K = p.shape
    N = q.shape[1]
    chunk = R._BF16_SLOTS if R._count_dtype(p.device) == torch.bfloat16 else R._FP32_SLOTS
    rows = np.repeat(np.arange(R_, dtype=np.int64), bl.numpy())
    total = torch.zeros(N, K, dtype=dtype)
    signed = torch.zeros(N, K, dtype=dtype)
    arrays = [v.contiguous().numpy() for v in (p, q, sx.to(dtype), sd.to(dtype))]
    for s0 in range(0, rows.shape[0], chunk):
        r = rows[s0:s0 + chunk]
        ux = torch.rand((r.shape[0], K), generator=generator, dtype=dtype)
        ud = torch.rand((r.shape[0], N), generator=generator, dtype=dtype)
        counts(ux.numpy(), ud.numpy(), *arrays, r, total.numpy(), signed.numpy())
    return total, signed


def loop_order(n_up: Tensor, n_down: Tensor) -> Tuple[Tensor, Tensor, Tensor, List[int]]:
    """The spec's :func:`reference.loop_order` (same idx, U, T, live) by the compiled counting sort;
    n_up, n_down 1-d float CPU tensors of integer counts."""
    order = _kernels()[0]
    idx, U, T, live = order(n_up.numpy(), n_down.numpy())
    return torch.from_numpy(idx), torch.from_numpy(U), torch.from_numpy(T), live.tolist()


def run_loop(w: Tensor, n_up: Tensor, n_down: Tensor, model, generator: Optional[torch.Generator]) -> Tensor:
    """The spec's pulse loop (:func:`reference._pulse_loop` without the constant-step shortcut, which
    the caller takes first) on 1-d CPU tensors, compiled: returns the new w (a copy)."""
    loop = _kernels()[1]
    out = w.clone().contiguous()
    idx, U, T, live = loop_order(n_up.contiguous(), n_down.contiguous())
    if not live:
        return out
    dtype = w.dtype
    draws = R.loop_draws(live, model, w, generator)  # the spec's draws
    xi = torch.zeros(0, dtype=dtype) if draws is None else draws
    counts = np.asarray(live, np.int64)
    off = np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)[:-1]])
    t = model.tensors
    constant = model.gamma_up is None
    g_up = t.dw_up if constant else model.gamma_up
    g_down = t.dw_down if constant else model.gamma_down
    scalar = np.float32 if dtype == torch.float32 else np.float64
    arrays = [v.contiguous().numpy() for v in (t.dw_up, t.dw_down, g_up, g_down, t.b_max, t.b_min)]
    loop(out.numpy(), idx.numpy(), U.numpy(), T.numpy(), off, xi.numpy(), *arrays, scalar(model.sigma),
         draws is not None, model.mult_noise, constant)
    return out
