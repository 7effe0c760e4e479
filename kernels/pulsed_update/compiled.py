"""The pulse loop of the closed-form device kinds compiled with numba: the CPU path's third gear.

On the small tiles of in-memory training (a few thousand devices, batch 5, 1-30 pulses per device
and update) the eager pulse loop of :mod:`.cpu_fast` costs ~20 tensor operations per pulse and its
ordering a sort, a ``nonzero`` and six gathers: 1-4 ms per layer and update whatever the arithmetic.
Here the same loop is two compiled functions over plain arrays:

* :func:`loop_order` — the spec's order (devices with pulses, stably sorted by their pulse count T,
  largest first) by a counting sort, O(devices);
* :func:`run_loop` — every device's T pulses one after the other (Bresenham directions, the linear
  or constant step, cycle-to-cycle noise, clipping after each pulse), reading each device's
  constants at its own index: no gathers, no temporaries.

The random draws stay torch's: the spec's one draw of ΣT normals (:func:`reference.loop_draws`,
pulse k's draws for its still-pulsing devices after pulse k − 1's), and the compiled loop reads pulse
k's draw of device j at ``off[k − 1] + j``. So the result equals :mod:`.cpu_fast`'s (and the spec's) up to
float rounding (tests/kernels/test_pulsed_update_compiled.py).

Why numba (a dependency, DESIGN-level): it compiles plain Python loops to machine code at first use,
without a C compiler or a build step, and caches the machine code on disk (``cache=True``), so a
later process pays ~1 s once instead of ~1.5 s. ``torch.compile`` was measured on this loop: 34 s
to compile on a 2-core machine, a recompile for every new number of draws, and 6.5 ms per call.

:func:`available` is False when numba cannot be imported or ``AIMC_LAB_NUMBA=0`` is set; the callers
then run the eager loop (same results).
"""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from aimc_lab.kernels.pulsed_update import reference as R

__all__ = ["available", "loop_order", "run_loop", "slot_counts"]

_state = {"kernels": None, "tried": False}


def available() -> bool:
    """Whether the compiled loop can run: numba imports and ``AIMC_LAB_NUMBA`` is not ``0``
    (read on every call, so a test or a user can switch it off at run time)."""
    if os.environ.get("AIMC_LAB_NUMBA", "1").strip() == "0":
        return False
    return _kernels() is not None


def _kernels():
    """Compile (or load from numba's disk cache) the kernels on first use; None without numba."""
    if not _state["tried"]:
        _state["tried"] = True
        try:
            import numba
        except ImportError:  # the eager loop serves (module doc)
            return None
        jit = numba.njit(cache=True, nogil=True)
        _state["kernels"] = (jit(_order_py), jit(_loop_py), jit(_counts_py))
    return _state["kernels"]


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
