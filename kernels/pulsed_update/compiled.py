"""The pulsed update of the closed-form device kinds compiled with numba: the CPU path's third gear.

On the small tiles of in-memory training (a few thousand devices, batch 5, 1-30 pulses per device
and update) the eager path of :mod:`.cpu_fast` costs ~20 tensor operations per pulse, a sort, a
``nonzero`` and gathers: 1-4 ms per layer and update whatever the arithmetic. Here the same work is
compiled functions over plain arrays:

* :func:`pulse_train_factors` — the spec's per-row BL and firing probabilities, bit for bit;
* :func:`pulse_counts` — the coincidences of the slots' random bits by a loop
  over the fired rows and columns instead of two matmuls of bit matrices (exact integer counts);
* :func:`run_loop` — every device's T pulses one after the other, the devices in flat order
  (Bresenham directions, the linear or constant step, cycle-to-cycle noise, clipping after each
  pulse), reading each device's constants at its own index and its draws at its position in the
  spec's order (counted, not sorted for): no sort, no gathers, no temporaries;
* :func:`commit` — the new weights stored, write noise redrawn where a weight changed;
  :func:`read` — what the MVMs see, w + write noise − reference, in one pass;
* :func:`update_in_place` — all of these for one array's update, without tensor conversions between
  them (``DeviceArray.pulsed_update`` runs it for the linear kinds); :func:`update_columns_in_place`
  the same for a few columns of an array (the transfers' writes, ``DeviceArray.pulsed_update_columns``).

The random draws stay torch's, in the spec's order and layout: the slots' uniforms chunk by chunk,
the loop's one draw of ΣT normals (pulse k's for the devices still pulsing, in the loop's order, after
pulse k − 1's: :func:`reference.loop_draws`), the write noise one normal per changed device. So the
result equals :mod:`.cpu_fast`'s (and the spec's) up to float rounding
(tests/kernels/test_pulsed_update_compiled.py).

Compiled by numba at first use (:mod:`aimc_lab.kernels._numba`, which says why numba); without it,
or with ``AIMC_LAB_NUMBA=0``, :func:`available` is False and the callers run the eager path (same
results).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from aimc_lab.kernels import _numba
from aimc_lab.kernels.pulsed_update import reference as R

__all__ = ["available", "run_loop", "pulse_counts", "pulse_train_factors", "commit", "read",
           "serves_update", "update_in_place", "counts_in_place", "update_columns_in_place",
           "counts_columns_in_place", "counts_together", "loop_arrays"]


_CPU = torch.device("cpu")


def available() -> bool:
    """Whether the compiled loop can run (:func:`aimc_lab.kernels._numba.available`)."""
    return _numba.available()


def _kernels():
    """The compiled kernels (totals, loop, counts), compiled or loaded from numba's disk cache on first use."""
    return _numba.compiled(_totals_py), _numba.compiled(_loop_py), _numba.compiled(_counts_py)


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
    spec's uniforms); each fired pair counts once, signed by sign(d_i)·sign(x_j) (no branch on the
    signs: they are random, a branch would be mispredicted half the time)."""
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


def _split_py(total, signed, half):
    """In place: total ← n⁺ = (total − signed)/2, signed ← n⁻ = (total + signed)/2 (the spec's
    formulas; exact on integer counts)."""
    for i in range(total.shape[0]):
        t = total[i]
        s = signed[i]
        total[i] = (t - s) * half
        signed[i] = (t + s) * half


def _changed_py(w, w_new, changed):
    """The devices whose weight changed (w_new != w), in flat order, into changed[:count] without a
    branch per device; returns count."""
    c = 0
    for i in range(w.shape[0]):
        changed[c] = i
        c += w_new[i] != w[i]
    return c


def _read_py(w, write_noise, reference, out):
    for i in range(w.shape[0]):
        out[i] = w[i] + write_noise[i] - reference[i]


def read(w: Tensor, write_noise: Tensor, reference: Tensor) -> Tensor:
    """``DeviceArray.read`` compiled: (w + write noise) − reference, the same float operations in one
    pass (contiguous CPU tensors of one float dtype, the caller checked)."""
    out = torch.empty_like(w)
    _numba.compiled(_read_py)(w.numpy().reshape(-1), write_noise.numpy().reshape(-1), reference.numpy().reshape(-1),
                              out.numpy().reshape(-1))
    return out


def _write_noise_py(write_noise, changed, scale, xi):
    """write_noise[changed[k]] = scale·xi[k] (the commit's draws: one per changed device, flat order)."""
    for k in range(xi.shape[0]):
        write_noise[changed[k]] = scale * xi[k]


def _redraw_write_noise(write_noise: Tensor, changed: np.ndarray, count: int, scale: float,
                        generator: Optional[torch.Generator]) -> None:
    """The commit's draws: one normal per changed device (``changed[:count]``, flat order) into the
    write noise, scaled; none when ``scale`` is 0 or nothing changed."""
    if scale > 0 and count:
        flat = write_noise.numpy().reshape(-1)
        xi = torch.randn(count, generator=generator, dtype=write_noise.dtype).numpy()
        _numba.compiled(_write_noise_py)(flat, changed, flat.dtype.type(scale), xi)


def commit(w: Tensor, w_new: Tensor, write_noise: Tensor, scale: float, generator: Optional[torch.Generator]) -> None:
    """``DeviceArray.commit`` compiled: in place on the contiguous CPU tensors w and write_noise, the
    same draws as its eager form (one normal per changed device, in flat order; none when ``scale`` is 0)."""
    wf, nf = w.numpy().reshape(-1), w_new.contiguous().numpy().reshape(-1)
    changed = np.empty(wf.shape[0], np.int64)
    count = _numba.compiled(_changed_py)(wf, nf, changed)
    _redraw_write_noise(write_noise, changed, count, scale, generator)
    np.copyto(wf, nf)


def _totals_py(n_up, n_down):
    """(ΣT, max T) of the devices' pulse counts T = n⁺ + n⁻; (−1, −1) when a count is negative, NaN or
    inf (an integer conversion of those would index out of bounds)."""
    total = 0
    t_max = 0
    for i in range(n_up.shape[0]):
        a = n_up[i]
        b = n_down[i]
        if not (a >= 0 and b >= 0 and a - a == 0 and b - b == 0):
            return -1, -1
        t = int(a + b)
        total += t
        if t > t_max:
            t_max = t
    return total, t_max


def _loop_py(w, n_up, n_down, t_max, xi, dw_up, dw_down, g_up, g_down, b_max, b_min, sigma, noisy, mult, constant,
             changed):
    """Pulse k = 1..T of every device i with T = n⁺ + n⁻ > 0, in place on w: the cpu_fast loop's
    arithmetic, in its order of float operations, device after device in flat order. The draws are
    the spec's (:func:`reference._pulse_loop`): pulse k's normals for the devices still pulsing, in the
    loop's order (T descending, stable), after pulse k − 1's; device i at position p of that order
    takes xi[off[k − 1] + p], off[k − 1] = Σ_{k' < k} #{T >= k'}. Its position is counted, not sorted
    for: p = #{T > T_i} + #{T = T_i before i}. The devices with pulses are listed first without a branch
    per device (which half of them would mispredict), and pulse 1's direction needs no division
    (u >= T). Returns how many devices changed, their indices (flat order) in changed[:count]."""
    n = w.shape[0]
    live = np.empty(n, np.int64)
    per_t = np.zeros(t_max + 2, np.int64)
    m = 0
    for i in range(n):
        t = int(n_up[i] + n_down[i])
        live[m] = i
        m += t > 0
        per_t[t] += 1
    first = np.zeros(t_max + 2, np.int64)  # next position of a device with T = t
    off = np.zeros(t_max + 1, np.int64)  # off[k - 1]: the first draw of pulse k
    pos = 0
    for t in range(t_max, 0, -1):
        first[t] = pos
        pos += per_t[t]
    for k in range(2, t_max + 1):  # #{T >= k − 1} = first[k − 1] + per_t[k − 1]
        off[k - 1] = off[k - 2] + first[k - 1] + per_t[k - 1]
    c = 0
    for j in range(m):
        i = live[j]
        t = int(n_up[i] + n_down[i])
        p = first[t]
        first[t] = p + 1
        u = int(n_up[i])
        v = w[i]
        hi = b_max[i]
        lo = b_min[i]
        for k in range(1, t + 1):
            up = (u >= t) if k == 1 else (((k - 1) * u % t + u) >= t)  # Bresenham
            delta = dw_up[i] if up else dw_down[i]
            if constant:
                step = delta
                if noisy:
                    step = step * (xi[off[k - 1] + p] * sigma + np.float32(1.0))
            else:
                slope = (g_up[i] if up else g_down[i]) * delta
                step = delta + slope * v
                if step < 0:
                    step = np.float32(0.0)
                if noisy:
                    scale = step if mult else delta
                    step = step + sigma * scale * xi[off[k - 1] + p]
            v = v + step if up else v - step
            if v > hi:
                v = hi
            if v < lo:
                v = lo
        changed[c] = i
        c += v != w[i]
        w[i] = v
    return c


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


def _fired_counts(xn: np.ndarray, dn: np.ndarray, lr: float, dw_min: float, desired_bl: int, update_management: bool,
                  bl_management: bool, generator: Optional[torch.Generator]):
    """(n_up, n_down) [N, K] numpy arrays in x's dtype of the spec's pulse trains, or None when no row
    fires (module doc of :func:`pulse_counts`)."""
    M = xn.shape[0]
    bl, p, q, keep = pulse_train_factors(xn, dn, lr, dw_min, desired_bl, update_management, bl_management)
    rows = np.nonzero(keep)[0]
    if rows.size == 0:
        return None
    if rows.size < M:
        p, q, bl, xn, dn = p[rows], q[rows], bl[rows], xn[rows], dn[rows]
    return _chunked_counts(p, q, bl, np.sign(xn), np.sign(dn), generator)


def _chunked_counts(p: np.ndarray, q: np.ndarray, bl: np.ndarray, sx: np.ndarray, sd: np.ndarray,
                    generator: Optional[torch.Generator], split: bool = True):
    """The spec's chunks of slots and uniforms (two ``torch.rand`` per chunk), counted by
    :func:`_counts_py`: (n⁺, n⁻) [N, K], or with ``split`` False (total, signed); ``sx``, ``sd``: the
    signs of the rows' x and d."""
    counts = _kernels()[2]
    R_, K = p.shape
    N = q.shape[1]
    dtype = torch.from_numpy(p[:0]).dtype
    chunk = R._BF16_SLOTS if R._count_dtype(_CPU) == torch.bfloat16 else R._FP32_SLOTS
    rows = np.repeat(np.arange(R_, dtype=np.int64), bl)
    total = np.zeros((N, K), p.dtype)
    signed = np.zeros((N, K), p.dtype)
    for s0 in range(0, rows.shape[0], chunk):
        r = rows[s0:s0 + chunk]
        ux = torch.rand((r.shape[0], K), generator=generator, dtype=dtype)
        ud = torch.rand((r.shape[0], N), generator=generator, dtype=dtype)
        counts(ux.numpy(), ud.numpy(), p, q, sx, sd, r, total, signed)
    if split:
        _numba.compiled(_split_py)(total.reshape(-1), signed.reshape(-1), p.dtype.type(0.5))
    return total, signed


def pulse_counts(x: Tensor, d: Tensor, lr: float, dw_min: float, desired_bl: int, update_management: bool,
                 bl_management: bool, generator: Optional[torch.Generator]):
    """:func:`.cpu_fast.pulsed_update`'s counts, compiled: the pulse-train factors of every row, the rows
    with a firing probability on both sides, their slots' coincidences (the spec's uniforms, drawn in
    the spec's chunks). Returns (n_up, n_down, total) [N, K] in x's dtype, or None when no row fires."""
    found = _fired_counts(x.contiguous().numpy(), d.contiguous().numpy(), lr, dw_min, desired_bl, update_management,
                          bl_management, generator)
    if found is None:
        return None
    n_up, n_down = torch.from_numpy(found[0]), torch.from_numpy(found[1])
    return n_up, n_down, n_up + n_down


def run_loop(w: Tensor, n_up: Tensor, n_down: Tensor, model, generator: Optional[torch.Generator]) -> Tensor:
    """The spec's pulse loop (:func:`reference._pulse_loop` without the constant-step shortcut, which
    the caller takes first) on 1-d CPU tensors, compiled: returns the new w (a copy)."""
    out = w.clone().contiguous()
    _loop_in_place(out.numpy(), n_up.contiguous().numpy(), n_down.contiguous().numpy(), model, generator)
    return out


def _loop_in_place(out: np.ndarray, n_up: np.ndarray, n_down: np.ndarray, model,
                   generator: Optional[torch.Generator], totals=None, arrays=None) -> Tuple[int, np.ndarray]:
    """:func:`run_loop` on flat arrays, in place on ``out``; ``totals``: :func:`_totals_py`'s result,
    ``arrays``: :func:`loop_arrays` of the model, when the caller has them. Returns how many devices
    changed and an array whose first that many entries are their flat indices, in order."""
    draws, t_max = _kernels()[0](n_up, n_down) if totals is None else totals
    if t_max < 0:
        raise ValueError("pulse counts must be finite and >= 0 (got a negative, NaN or inf count)")
    changed = np.empty(out.shape[0], np.int64)
    if t_max == 0:
        return 0, changed
    noisy = model.sigma > 0
    # the spec's draws (reference.loop_draws): ΣT normals, pulse 1's first
    xi = torch.randn(draws, generator=generator, dtype=torch.from_numpy(out[:0]).dtype).numpy() \
        if noisy else np.zeros(0, out.dtype)
    count = _kernels()[1](out, n_up, n_down, t_max, xi, *(loop_arrays(model) if arrays is None else arrays),
                          out.dtype.type(model.sigma), noisy, model.mult_noise, model.gamma_up is None, changed)
    return count, changed


def loop_arrays(model) -> tuple:
    """(Δ⁺, Δ⁻, γ⁺ or Δ⁺, γ⁻ or Δ⁻, b_max, b_min) of the model as flat numpy arrays, what the compiled
    loop reads (the constant kind has no slopes: its Δ stand in, unread). Views of the model's tensors
    where they are contiguous; ``DeviceArray`` keeps them with its cached model."""
    t = model.tensors
    constant = model.gamma_up is None
    values = (t.dw_up, t.dw_down, t.dw_up if constant else model.gamma_up, t.dw_down if constant else model.gamma_down,
              t.b_max, t.b_min)
    return tuple(v.reshape(-1).contiguous().numpy() for v in values)


def serves_update(w: Tensor, write_noise: Tensor, model) -> bool:
    """Whether :func:`update_in_place` can run an array's pulsed update: the linear kinds (the pulse loop;
    the constant kind's shortcut and the generic kinds are the kernels'), contiguous float32/64 CPU
    tensors, numba present."""
    return (model.closed_form and model.gamma_up is not None and w.device.type == "cpu"
            and w.dtype in (torch.float32, torch.float64) and w.is_contiguous() and write_noise.is_contiguous()
            and write_noise.dtype == w.dtype and available())


def update_in_place(w: Tensor, write_noise: Tensor, write_scale: float, x: Tensor, d: Tensor, lr: float, model,
                    desired_bl: int, update_management: bool, bl_management: bool,
                    generator: Optional[torch.Generator], arrays=None) -> Optional[Tuple[Tensor, Tensor]]:
    """An array's pulsed update and its commit in one compiled pass (:func:`serves_update` holds): the
    same draws and result as the kernel (:func:`.cpu_fast.pulsed_update`, the compiled loop) followed by
    :func:`commit`, without their tensor conversions. When a device gets more than the loop's
    ``LOOP_PULSES`` pulses the kernel's closed forms apply instead: then nothing is changed and the
    counts (n_up, n_down) [N, K] are returned for the caller's ``apply_mixed_counts`` and commit.
    ``arrays``: :func:`loop_arrays` of the model, when the caller keeps them."""
    R.check_update_args(w, x, d, lr, desired_bl)
    found = _fired_counts(x.to(w.dtype).contiguous().numpy(), d.to(w.dtype).contiguous().numpy(), float(lr),
                          model.dw_min, desired_bl, update_management, bl_management, generator)
    if found is None:
        return None  # no pulse: the commit would find no change and draw nothing
    return _counts_in_place(w, write_noise, write_scale, found[0], found[1], model, generator, arrays)


def counts_in_place(w: Tensor, write_noise: Tensor, write_scale: float, counts: Tensor, model,
                    generator: Optional[torch.Generator], arrays=None) -> Optional[Tuple[Tensor, Tensor]]:
    """An array's ``signed_counts_update`` (|counts| pulses of direction sign(counts), counts [N, K]) and
    its commit in one compiled pass, as :func:`update_in_place` (the same contract, draws and return)."""
    c = counts.to(w.dtype).contiguous().numpy()
    return _counts_in_place(w, write_noise, write_scale, np.maximum(c, 0), np.maximum(-c, 0), model, generator,
                            arrays)


def _counts_in_place(w, write_noise, write_scale, n_up, n_down, model, generator, arrays):
    """The pulse loop on the stored weights for the counts n_up, n_down [N, K] (numpy), then the
    commit's write noise; or, with more than ``LOOP_PULSES`` pulses on a device, nothing changed and the
    counts returned for the kernel's closed forms."""
    up, down = n_up.reshape(-1), n_down.reshape(-1)
    totals = _kernels()[0](up, down)
    if totals[1] > R.LOOP_PULSES or totals[1] < 0:  # the closed forms (the kernel handles bad counts)
        return torch.from_numpy(n_up), torch.from_numpy(n_down)
    # the loop runs on the stored weights themselves and lists the devices it changed: the commit's
    # write noise (one normal per changed device, flat order) goes to those, no comparison pass
    count, changed = _loop_in_place(w.numpy().reshape(-1), up, down, model, generator, totals, arrays)
    _redraw_write_noise(write_noise, changed, count, write_scale, generator)
    return None


def _column_noise_py(write_noise, changed, count, n, K, cols, scale, xi):
    """The column commit's write noise: device k of the [N, n] slice (flat) is write_noise[i·K + cols[m]],
    k = i·n + m, and takes scale·xi[k] (xi: the slice's whole [N, n] block, flat) where it changed."""
    for c in range(count):
        k = changed[c]
        write_noise[(k // n) * K + cols[k % n]] = scale * xi[k]


def update_columns_in_place(w: Tensor, write_noise: Tensor, write_scale: float, cols: Tensor, x: Tensor, d: Tensor,
                            lr: float, model, desired_bl: int, update_management: bool, bl_management: bool,
                            generator: Optional[torch.Generator], arrays) -> Optional[Tuple[Tensor, Tensor]]:
    """:func:`update_in_place` of the columns ``cols`` (distinct) of w [N, K] only, for inputs x [M, n]
    of those columns: the same draws and result as the kernel on the slice w[:, cols] (with the slice's
    own device constants) followed by ``DeviceArray.commit_columns`` (whose write noise is one [N, n]
    block, drawn whenever the array has write noise). ``arrays``: :func:`loop_arrays` of the whole
    array's model. With more than ``LOOP_PULSES`` pulses on a device nothing is changed and the counts
    [N, n] are returned for the kernel's closed forms."""
    R.check_update_args(w.new_empty(1, 1).expand(w.shape[0], cols.shape[0]), x, d, lr, desired_bl)  # the slice's shape
    found = _fired_counts(x.to(w.dtype).contiguous().numpy(), d.to(w.dtype).contiguous().numpy(), float(lr),
                          model.dw_min, desired_bl, update_management, bl_management, generator)
    if found is None:
        n_up = n_down = np.zeros((w.shape[0], cols.shape[0]), w.numpy().dtype)
    else:
        n_up, n_down = found
    return _columns_in_place(w, write_noise, write_scale, cols, n_up, n_down, model, generator, arrays)


def counts_columns_in_place(w: Tensor, write_noise: Tensor, write_scale: float, cols: Tensor, counts: Tensor, model,
                            generator: Optional[torch.Generator], arrays) -> Optional[Tuple[Tensor, Tensor]]:
    """:func:`counts_in_place` of the columns ``cols`` of w [N, K] (counts [N, n]), with the column
    commit's draws: the contract of :func:`update_columns_in_place`."""
    c = counts.to(w.dtype).contiguous().numpy()
    return _columns_in_place(w, write_noise, write_scale, cols, np.maximum(c, 0), np.maximum(-c, 0), model, generator,
                             arrays)


def _columns_in_place(w, write_noise, write_scale, cols, n_up, n_down, model, generator, arrays):
    """The pulse loop on the devices w[:, cols] for the counts n_up, n_down [N, n] (numpy), then the
    column commit's write noise; or nothing changed and the counts returned (the closed forms)."""
    N, K = w.shape
    up, down = n_up.reshape(-1), n_down.reshape(-1)
    totals = _kernels()[0](up, down)
    if totals[1] > R.LOOP_PULSES or totals[1] < 0:  # the closed forms (the kernel handles bad counts)
        return torch.from_numpy(n_up), torch.from_numpy(n_down)
    c = cols.numpy()
    wn = w.numpy()
    slice_w = np.take(wn, c, axis=1)  # [N, n]: the slice's weights and constants, contiguous
    own = tuple(np.take(a.reshape(N, K), c, axis=1).reshape(-1) for a in arrays)
    count, changed = _loop_in_place(slice_w.reshape(-1), up, down, model, generator, totals, own)
    if write_scale > 0:  # commit_columns: one [N, n] block of normals, used where a weight changed
        xi = torch.randn(slice_w.shape, generator=generator, dtype=w.dtype).numpy().reshape(-1)
        flat = write_noise.numpy().reshape(-1)
        _numba.compiled(_column_noise_py)(flat, changed, count, c.shape[0], K, c, flat.dtype.type(write_scale), xi)
    wn[:, c] = slice_w


def counts_together(parts, model, generator: Optional[torch.Generator]) -> bool:
    """One signed-counts write on the devices of several arrays with one device model (``PendingCounts``'
    joint write), compiled with its eager form's draws: the loop's normals for the concatenation of the
    arrays' devices with pulses (in ``parts``' order) from ``generator``, then each array's commit (one
    normal per changed device, in its flat order, from its own generator). ``parts``: one tuple (w,
    write_noise, write scale, idx, counts, generator, loop arrays) per array: ``idx`` [P] (numpy int64)
    the flat indices of its devices with pulses, ``counts`` [P] (numpy, w's dtype) their signed counts.
    Returns False, having changed nothing, when a device gets more than ``LOOP_PULSES`` pulses (the
    kernel's closed forms)."""
    counts = np.concatenate([p[4] for p in parts])
    up, down = np.maximum(counts, 0), np.maximum(-counts, 0)
    totals = _kernels()[0](up, down)
    if totals[1] > R.LOOP_PULSES or totals[1] < 0:
        return False
    values = np.concatenate([p[0].numpy().reshape(-1)[p[3]] for p in parts])
    own = tuple(np.concatenate(column) for column in zip(*[tuple(a[p[3]] for a in p[6]) for p in parts]))
    count, changed = _loop_in_place(values, up, down, model, generator, totals, own)
    changed = changed[:count]  # ascending positions in the concatenation
    start = 0
    for w, write_noise, scale, idx, _, gen, _ in parts:
        lo, hi = np.searchsorted(changed, (start, start + idx.shape[0]))
        at = changed[lo:hi]
        if at.size:
            order = np.argsort(idx[at - start], kind="stable")  # the commit's flat order
            devices = idx[at - start][order]
            _redraw_write_noise(write_noise, devices, devices.shape[0], scale, gen)
            w.numpy().reshape(-1)[devices] = values[at][order]
        start += idx.shape[0]
    return True
