"""The pulsed update, fast on the CPU: the same contract and random draws as :mod:`.reference`.

The spec (:mod:`.reference`) is written to be read; on the small tiles of in-memory training (a few
thousand devices, batch 5) its cost is the number of tensor operations, not the arithmetic. This module
computes the same thing with fewer, mostly in-place operations
(tests/kernels/test_pulsed_update_cpu_fast.py compares the two, seeded, for every closed-form device
kind, both noise types, odd shapes, empty and zero-pulse cases, and in distribution):

* the closed forms (module doc of :mod:`.reference`): the single-direction form on every device and
  the mixed (up and down) form on the devices with both directions only, gathered; the spec computes
  both forms on every device and selects;
* the pulse loop (few pulses, and the devices near a bound) computes the directions (Bresenham,
  ``(k − 1)·n⁺ mod T + n⁺ >= T``) and coefficients of a stretch of pulses at once, so one pulse of the
  linear kind is five in-place operations on the prefix of still-pulsing devices: s = max(Δ^d +
  Δ^dγ^d·w, 0), s += σ·(Δ^d or s)·ξ, w += d·s, clip (the spec calls :func:`reference.pulse`, about
  fifteen); the loop's normals are drawn at once, as the spec's.

Randomness: the same draws in the same order as the spec, so a seeded call reproduces the spec's
result up to the last bits of float arithmetic (Δ + Δγ·w instead of Δ·(1 + γw); a device whose
closed-form safety test or clip sits within rounding of its threshold may take the other branch,
which then shifts the later draws). The generic kinds (ExpStep, PowStep, PiecewiseStep), the ideal
device, ``exact=True`` and ``block_rows`` run the spec itself.
"""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from aimc_lab.kernels.pulsed_update import compiled
from aimc_lab.kernels.pulsed_update import reference as R
from aimc_lab.kernels.pulsed_update.reference import MARGIN_SIGMAS, MAX_MIXED_C, PulseModel

__all__ = ["pulsed_update", "signed_counts_update", "apply_mixed_counts"]

#: Largest [pulses, devices] block of precomputed pulse coefficients in the loop (elements).
_LOOP_BLOCK = 1 << 20


def pulsed_update(w: Tensor, x: Tensor, d: Tensor, lr: float, model: PulseModel, *,
                  desired_bl: int = 31, update_management: bool = True, bl_management: bool = True,
                  generator: Optional[torch.Generator] = None, exact: bool = False,
                  block_rows: Optional[int] = None) -> Tensor:
    """Same contract, draws and result (up to float rounding) as :func:`reference.pulsed_update`."""
    if exact or block_rows is not None or not model.closed_form:
        return R.pulsed_update(w, x, d, lr, model, desired_bl=desired_bl, update_management=update_management,
                               bl_management=bl_management, generator=generator, exact=exact,
                               block_rows=block_rows)
    R.check_update_args(w, x, d, lr, desired_bl)
    x = x.to(w.dtype)
    d = d.to(w.dtype)
    if w.device.type == "cpu" and w.dtype in (torch.float32, torch.float64) and compiled.available():
        counts = compiled.pulse_counts(x, d, float(lr), model.dw_min, desired_bl, update_management, bl_management,
                                       generator)  # the same factors, draws and counts, compiled
        return w.clone() if counts is None else _apply(w, *counts[:2], model, generator, counts[2])
    bl, p, q = R.pulse_train_factors(x, d, float(lr), model.dw_min, desired_bl, update_management, bl_management)
    rows = ((p.amax(dim=1) > 0) & (q.amax(dim=1) > 0)).nonzero().squeeze(-1)
    if rows.numel() == 0:
        return w.clone()
    if rows.numel() < p.shape[0]:
        p, q, bl, x, d = p[rows], q[rows], bl[rows], x[rows], d[rows]
    total, signed = R._slot_counts(p, q, bl, torch.sign(x), torch.sign(d), generator)
    n_up = (total - signed).mul_(0.5)
    n_down = (total + signed).mul_(0.5)
    return _apply(w, n_up, n_down, model, generator, total)


def signed_counts_update(w: Tensor, counts: Tensor, model: PulseModel,
                         generator: Optional[torch.Generator]) -> Tensor:
    """Same contract, draws and result as :func:`reference.signed_counts_update`."""
    if not model.closed_form:
        return R.signed_counts_update(w, counts, model, generator)
    counts = counts.to(w.dtype)
    return _apply(w, counts.clamp(min=0), (-counts).clamp(min=0), model, generator)


def apply_mixed_counts(w: Tensor, n_up: Tensor, n_down: Tensor, model: PulseModel,
                       generator: Optional[torch.Generator], exact: bool = False) -> Tensor:
    """Same contract, draws and result as :func:`reference.apply_mixed_counts`."""
    if exact or not model.closed_form:
        return R.apply_mixed_counts(w, n_up, n_down, model, generator, exact)
    return _apply(w, n_up, n_down, model, generator)


def _apply(w: Tensor, n_up: Tensor, n_down: Tensor, model: PulseModel, generator,
           total: Optional[Tensor] = None) -> Tensor:
    """The spec's ``_apply_mixed`` for the closed-form kinds (gathered when under a quarter of the
    devices get pulses)."""
    shape = w.shape
    wf, n_up, n_down = w.reshape(-1), n_up.reshape(-1), n_down.reshape(-1)
    total = n_up + n_down if total is None else total.reshape(-1)  # pulses per device
    t_max = float(total.max()) if total.numel() else 0.0
    if t_max == 0:
        return wf.clone().view(shape)
    fm = R._flat(model)
    if not model.constant and t_max <= R.LOOP_PULSES:
        return _pulse_loop(wf, n_up, n_down, fm, generator).view(shape)  # gathers its devices itself
    idx = total.nonzero().squeeze(-1)
    if 4 * idx.numel() >= wf.numel():  # dense, as the spec
        return _closed_form(wf, n_up, n_down, fm, generator).view(shape)
    out = wf.clone()
    out[idx] = _closed_form(wf[idx], n_up[idx], n_down[idx], R._subset(fm, idx), generator)
    return out.view(shape)


def _closed_form(w, n_up, n_down, model, generator):
    """The spec's ``_apply_mixed_flat`` for the closed-form kinds (more than LOOP_PULSES pulses for the
    linear kind: :func:`_apply` runs the loop otherwise)."""
    if model.constant:
        return _constant_counts(w, n_up, n_down, model, generator)
    return _linear_counts(w, n_up, n_down, model, generator)


def _ratio_(num: Tensor, den: Tensor) -> Tensor:
    """num/den with the limit 1 where |den| < 1e-12 (the spec's ``_ratio``); overwrites ``num``."""
    return torch.where(den.abs() < 1e-12, 1.0, num.div_(den))


def _constant_counts(w, n_up, n_down, model, generator):
    """The spec's ``_constant_step_counts`` (the same operations), then the fast :func:`_finish`."""
    return R._constant_step_counts(w, n_up, n_down, model, generator, finish=_finish)


def _single(w, n, up, model, xi):
    """The spec's ``_single_direction`` (same formulas) with noise draws ``xi`` (None: noise-free)."""
    t = model.tensors
    delta = torch.where(up, t.dw_up, t.dw_down)
    gamma = torch.where(up, model.gamma_up, model.gamma_down)
    sd = torch.where(up, delta, -delta)  # d·Δ
    c = sd * gamma
    ok = c > -1
    c = torch.where(ok, c, 0.0)
    L = torch.log1p(c)
    nL = n * L
    e = torch.exp(nL)
    # the spec's order of operations, bit for bit (a device at its bound tests hi <= b_max with a tie)
    w_end = (sd * n).mul_(_ratio_(torch.expm1(nL), nL)).mul_(_ratio_(L.clone(), c)).add_(e * w)
    lo, hi = torch.minimum(w, w_end), torch.maximum(w, w_end)
    w_new = w_end
    sigma = model.sigma
    if sigma > 0:
        growth = torch.exp(nL.clamp(min=0).mul_(2))
        if model.mult_noise:
            u = torch.maximum((1 + gamma * w).abs_(), (1 + gamma * w_end).abs_())
            x = (c * sigma / (1 + c)) ** 2
            L2 = torch.log1p(x)
            s0 = delta * (1 + gamma * w)
            nL2 = n * L2
            var = (s0 * sigma) ** 2 * torch.exp(2 * (n - 1) * L) * n * _ratio_(torch.expm1(nL2), nL2) \
                * _ratio_(L2, x)
            bound = n * (sigma * delta * u) ** 2 * growth
        else:
            sig_d2 = (sigma * delta) ** 2
            var = sig_d2 * n * _ratio_(torch.expm1(2 * nL), 2 * nL) * _ratio_(2 * L, torch.expm1(2 * L))
            bound = (n * sig_d2).mul_(growth)
        margin = bound.sqrt_().mul_(MARGIN_SIGMAS)
        lo, hi = lo.sub_(margin), hi.add_(margin)
        w_new = w_end.addcmul_(var.clamp_(min=0).sqrt_(), xi)
    safe = ok & (lo >= t.b_min) & (hi <= t.b_max) & (1 + gamma * lo >= 0) & (1 + gamma * hi >= 0)
    safe |= n == 0
    return torch.maximum(torch.minimum(w_new, t.b_max), t.b_min), safe


def _mixed(w, n_up, n_down, model, xi):
    """The spec's continuous-interleaving form for devices with up and down pulses (same formulas)."""
    t = model.tensors
    d_up, g_up, d_dn, g_dn = t.dw_up, model.gamma_up, t.dw_down, model.gamma_down
    c_up, c_dn = d_up * g_up, -d_dn * g_dn
    ok = (c_up >= -MAX_MIXED_C) & (c_up <= 0) & (c_dn >= -MAX_MIXED_C) & (c_dn <= 0)
    c_up = torch.where(c_up > -1, c_up, 0.0)
    c_dn = torch.where(c_dn > -1, c_dn, 0.0)
    l_up, l_dn = torch.log1p(c_up), torch.log1p(c_dn)
    beta = n_up * l_up + n_down * l_dn
    alpha = n_up * d_up * _ratio_(l_up.clone(), c_up) - n_down * d_dn * _ratio_(l_dn.clone(), c_dn)

    def at(frac: float) -> Tensor:
        b = frac * beta
        return torch.exp(b) * w + frac * alpha * _ratio_(torch.expm1(b), b)

    w_end = at(1.0)
    reach = d_up + d_dn
    lo, hi = torch.minimum(w, w_end) - reach, torch.maximum(w, w_end) + reach
    w_new = w_end
    sigma = model.sigma
    if sigma > 0:
        if model.mult_noise:
            def rate(v: Tensor, frac: float) -> Tensor:
                s_up, s_dn = (d_up * (1 + g_up * v)).clamp(min=0), (d_dn * (1 + g_dn * v)).clamp(min=0)
                return (n_up * s_up ** 2 + n_down * s_dn ** 2) * torch.exp(2 * (1 - frac) * beta)

            var = (rate(w, 0.0) + 4 * rate(at(0.5), 0.5) + rate(w_end, 1.0)) / 6
            u_up = torch.maximum((1 + g_up * w).abs(), (1 + g_up * w_end).abs())
            u_dn = torch.maximum((1 + g_dn * w).abs(), (1 + g_dn * w_end).abs())
            bound = n_up * (d_up * u_up) ** 2 + n_down * (d_dn * u_dn) ** 2
        else:
            bound = n_up * d_up ** 2 + n_down * d_dn ** 2
            var = bound * _ratio_(torch.expm1(2 * beta), 2 * beta)
        margin = MARGIN_SIGMAS * sigma * bound.sqrt()
        lo, hi = lo - margin, hi + margin
        w_new = w_end + sigma * var.clamp(min=0).sqrt() * xi
    safe = ok & (lo >= t.b_min) & (hi <= t.b_max) & (1 + g_up * lo >= 0) & (1 + g_up * hi >= 0) \
        & (1 + g_dn * lo >= 0) & (1 + g_dn * hi >= 0)
    return torch.maximum(torch.minimum(w_new, t.b_max), t.b_min), safe


def _linear_counts(w, n_up, n_down, model, generator):
    """The spec's ``_linear_counts``: one normal per device (drawn first), the single-direction form
    on every device, the mixed form on the devices with both directions (gathered)."""
    mixed = (n_up > 0) & (n_down > 0)
    m_idx = mixed.nonzero().squeeze(-1)
    noisy = model.sigma > 0
    xi = torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device) if noisy else None
    n = n_up + n_down
    w_new, safe = _single(w, n, n_up > 0, model, xi)
    if m_idx.numel():
        mm = R._subset(model, m_idx)
        w_m, safe_m = _mixed(w[m_idx], n_up[m_idx], n_down[m_idx], mm, xi[m_idx] if noisy else None)
        w_new[m_idx] = w_m
        safe[m_idx] = safe_m
    return _finish(w_new, safe, w, n_up, n_down, model, generator)


def _finish(w_new, safe, w, n_up, n_down, model, generator):
    """The spec's ``_finish``: the closed form where safe and finite, the pulse loop elsewhere."""
    safe &= torch.isfinite(w_new)
    bad = (~safe).nonzero().squeeze(-1)
    if bad.numel():
        w_new[bad] = _pulse_loop(w[bad], n_up[bad], n_down[bad], R._subset(model, bad), generator)
    return w_new


def _pulse_loop(w, n_up, n_down, model, generator):
    """The spec's ``_pulse_loop`` for the closed-form kinds, with the same draws (see the module doc)."""
    w = w.clone()
    if model.constant:
        single = ((n_up == 0) | (n_down == 0)) & ((n_up + n_down) > 0)
        s_idx = single.nonzero().squeeze(-1)
        if s_idx.numel():
            w[s_idx] = R._constant_runs(w[s_idx], n_up[s_idx], n_down[s_idx], R._subset(model, s_idx), generator)
            n_up, n_down = torch.where(single, 0, n_up), torch.where(single, 0, n_down)
    if w.device.type == "cpu" and compiled.available():  # the same loop and draws, compiled
        return compiled.run_loop(w, n_up, n_down, model, generator)
    idx, U, T, live = R.loop_order(n_up, n_down)
    if idx.numel():
        w[idx] = _loop(w[idx], U, T, live, R._subset(model, idx), generator)
    return w


def _loop(w: Tensor, U: Tensor, T: Tensor, live: List[int], model: PulseModel, generator) -> Tensor:
    """Pulse k = 1..max T of the devices sorted by T (largest first): pulse k steps the prefix of the
    live[k − 1] devices with T >= k, in place on ``w``. The pulses' directions and coefficients are
    computed for a stretch of pulses at once (while the prefix stays above half its first size)."""
    t = model.tensors
    draws = R.loop_draws(live, model, w, generator)
    noisy = draws is not None
    sigma = model.sigma
    start = 0
    k, kmax = 1, len(live)
    while k <= kmax:
        n = live[k - 1]
        end = k
        while end < kmax and 2 * live[end] > n and (end - k + 2) * n <= _LOOP_BLOCK:
            end += 1
        ks = torch.arange(k, end + 1, device=w.device).unsqueeze(1)  # [P, 1]
        u, tt = U[:n], T[:n]
        up = ((ks - 1) * u % tt + u) >= tt  # [P, n] the spec's Bresenham rule
        delta = torch.where(up, t.dw_up[:n], t.dw_down[:n])
        b_max, b_min = t.b_max[:n], t.b_min[:n]
        if model.constant:
            inc = torch.where(up, delta, delta.neg())  # d·Δ^d
        else:
            slope = torch.where(up, model.gamma_up[:n], model.gamma_down[:n]).mul_(delta)  # Δ^d·γ^d
            sign = torch.where(up, 1.0, -1.0).to(w.dtype)
        for j in range(end - k + 1):
            m = live[k - 1 + j]
            v = w[:m]
            xi = draws[start:start + m] if noisy else None
            start += m
            if model.constant:
                if noisy:
                    v.addcmul_(inc[j, :m], xi.mul(sigma).add_(1))
                else:
                    v.add_(inc[j, :m])
            else:
                s = torch.addcmul(delta[j, :m], slope[j, :m], v).clamp_(min=0)
                if noisy:
                    s.addcmul_(s if model.mult_noise else delta[j, :m], xi, value=sigma)
                v.addcmul_(s, sign[j, :m])
            torch.clamp(v, min=b_min[:m], max=b_max[:m], out=v)
        k = end + 1
    return w
