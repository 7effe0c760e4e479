"""Stochastic pulse-train update of one tile of pulsed devices (PHYSICS §4): the spec, pure torch.

Target ΔW = −η·Σ_m d_m·x_mᵀ (d = gradient at the tile's output, x = its input, both per batch row).
Batch rows are applied one after the other, as on the hardware. For row m:

1. **Update management** (``update_management``): with x_max = max_j|x_mj|, d_max = max_i|d_mi|,
   A = sqrt(η/(dw_min·BL))·sqrt(x_max/d_max) (column factor, multiplies |d|) and
   B = sqrt(η/(dw_min·BL))·sqrt(d_max/x_max) (row factor, multiplies |x|); without it A = B =
   sqrt(η/(dw_min·BL)).
2. **BL management** (``bl_management``): BL = clip(ceil(η·x_max·d_max/dw_min), 1, desired_bl);
   without it BL = desired_bl.
3. In each of the BL slots, row j fires with probability p_j = min(B·|x_mj|, 1) and column i with
   q_i = min(A·|d_mi|, 1), independently. A coincidence gives device (i, j) one pulse in direction
   −sign(x_mj·d_mi). Over the slots device (i, j) gets n_ij = Σ_t [row j fired]·[column i fired]
   pulses, E[n_ij] = BL·p_j·q_i = η·|x_mj·d_mi|/dw_min while no probability is clipped at 1, so the
   expected update is −η·x_mj·d_mi for a device whose step is dw_min.
4. The n_ij pulses (all in one direction within a row) are applied with the device's actual step,
   cycle-to-cycle noise per pulse and clipping to the bounds after each pulse.

x_max and d_max are taken per batch row (AIHWKIT's documentation leaves this to the implementation);
a row with x_max = 0 or d_max = 0 gives no pulses. The count matrix n = Dᵀ·X of one row ([N, BL] ·
[BL, K] bit matrices) is the only [N, K] temporary besides the weights: memory is O(N·K + BL·(N + K)).

Applying n same-direction pulses:

* models with a closed form (ConstantStep, LinearStep, SoftBounds: s(w) = Δ·(1 + γ·w)) use the exact
  noise-free n-pulse map w_n = q^n·w + dΔ·(q^n − 1)/(q − 1), q = 1 + dΔγ, plus the sum of the n
  cycle-to-cycle noise terms as one Gaussian (multiplicative: variance σ²·Σ_k s_k², s_k = s_0·q^k;
  additive: n·(σ·dw_min)²), then one clip. This equals pulse-by-pulse application for ConstantStep
  (same-direction pulses cannot leave and re-enter the bounds) and, for the others, neglects only the
  second-order effect of one pulse's noise on the later steps of the same row;
* all other models (ExpStep, PowStep, PiecewiseStep) loop pulse by pulse over the devices that still
  have pulses left (``exact=True`` forces this loop for every model).

The Ideal device gets the exact floating-point update ΔW = −η·Σ_m d_m x_mᵀ, clipped to the bounds.

Randomness comes only from ``generator``. Inputs are never written: the new hidden weights are returned.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from aimc_lab.devices.pulsed import DeviceTensors, Ideal, PulsedDevice

__all__ = ["pulsed_update", "apply_pulse_counts", "apply_pulse_sequence", "pulse_train_factors",
           "check_update_args"]


def check_update_args(w: Tensor, x: Tensor, d: Tensor, lr: float, desired_bl: int) -> None:
    if x.dim() != 2 or d.dim() != 2 or w.dim() != 2:
        raise ValueError(f"x [M, K], d [M, N], w [N, K] must be 2-d, got {tuple(x.shape)}, {tuple(d.shape)}, "
                         f"{tuple(w.shape)}")
    if x.shape[0] != d.shape[0] or x.shape[1] != w.shape[1] or d.shape[1] != w.shape[0]:
        raise ValueError(f"shapes do not match: x {tuple(x.shape)}, d {tuple(d.shape)}, w {tuple(w.shape)}")
    if isinstance(desired_bl, bool) or not isinstance(desired_bl, int) or desired_bl < 1:
        raise ValueError(f"desired_bl = {desired_bl!r} is invalid; allowed: an integer >= 1")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr) or lr < 0:
        raise ValueError(f"lr = {lr!r} is invalid; allowed: a finite number >= 0")


def pulse_train_factors(x: Tensor, d: Tensor, lr: float, dw_min: float, desired_bl: int,
                        update_management: bool, bl_management: bool):
    """Per-row (BL [M] long, p = row firing probabilities [M, K], q = column probabilities [M, N])."""
    x_max = x.abs().amax(dim=1)  # [M]
    d_max = d.abs().amax(dim=1)  # [M]
    active = (x_max > 0) & (d_max > 0)
    if bl_management:
        bl = torch.ceil(lr * x_max * d_max / dw_min).clamp(1, desired_bl)
    else:
        bl = torch.full_like(x_max, float(desired_bl))
    base = torch.sqrt(lr / (dw_min * bl))  # [M]
    if update_management:
        ratio = torch.sqrt(torch.where(active, x_max / d_max.clamp(min=1e-30), torch.ones_like(x_max)))
        a, b = base * ratio, base / ratio
    else:
        a, b = base, base
    p = (b.unsqueeze(1) * x.abs()).clamp(max=1.0) * active.unsqueeze(1)
    q = (a.unsqueeze(1) * d.abs()).clamp(max=1.0) * active.unsqueeze(1)
    return bl.long(), p, q


def _clip(w: Tensor, b_max: Tensor, b_min: Tensor) -> Tensor:
    return torch.maximum(torch.minimum(w, b_max), b_min)


def apply_pulse_counts(w: Tensor, n: Tensor, up: Tensor, device: PulsedDevice, t: DeviceTensors,
                       generator: Optional[torch.Generator], exact: bool = False) -> Tensor:
    """Apply n >= 1 same-direction pulses per device (1-d tensors of equal length); returns new w.

    ``up`` is a bool mask (True: up pulses). See the module doc for the closed form vs. the loop.
    """
    sign = up.to(w.dtype) * 2 - 1
    sigma = device.dw_min_std
    if device.closed_form and not exact:
        delta, gamma = device.linear_coefficients(up, t.dw_up, t.dw_down, t.b_max, t.b_min)
        c = sign * delta * gamma  # q - 1
        q = 1 + c
        qn = torch.exp(n * torch.log1p(c))
        small = c.abs() < 1e-9
        geom = torch.where(small, n, (qn - 1) / torch.where(small, torch.ones_like(c), c))
        step0 = (delta * (1 + gamma * w)).clamp(min=0)
        w_new = torch.where(step0 > 0, qn * w + sign * delta * geom, w)
        if sigma > 0:
            xi = torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device)
            if device.mult_noise:
                q2 = q * q
                small2 = (q2 - 1).abs() < 1e-9
                geom2 = torch.where(small2, n, (qn * qn - 1) / torch.where(small2, torch.ones_like(q2), q2 - 1))
                w_new = w_new + sign * sigma * step0 * geom2.clamp(min=0).sqrt() * xi
            else:
                w_new = w_new + sign * sigma * device.dw_min * n.sqrt() * xi * (step0 > 0)
        return _clip(w_new, t.b_max, t.b_min)
    w = w.clone()
    n_max = int(n.max().item()) if n.numel() else 0
    idx = torch.arange(w.numel(), device=w.device)
    for p in range(1, n_max + 1):
        if p > 1:
            keep = n[idx] >= p
            idx = idx[keep]
        wi = w[idx]
        ui = up[idx]
        ti = DeviceTensors(t.dw_up[idx], t.dw_down[idx], t.b_max[idx], t.b_min[idx])
        step = device.step(wi, ui, *ti)
        if sigma > 0:
            xi = torch.randn(wi.shape, generator=generator, dtype=w.dtype, device=w.device)
            step = step * (1 + sigma * xi) if device.mult_noise else \
                torch.where(step > 0, step + sigma * device.dw_min * xi, step)
        w[idx] = _clip(wi + sign[idx] * step, ti.b_max, ti.b_min)
    return w


def apply_pulse_sequence(w: Tensor, directions: Tensor, device: PulsedDevice, t: DeviceTensors,
                         generator: Optional[torch.Generator]) -> Tensor:
    """Apply one pulse per entry of ``directions`` (±1) to every device of ``w`` [D], in order.

    Returns the trace [D, P + 1] (column 0 = the start). Used by pulse responses and fitting.
    """
    trace = [w.clone()]
    ones = torch.ones_like(w)
    for direction in directions.tolist():
        up = torch.full(w.shape, direction > 0, dtype=torch.bool, device=w.device)
        w = apply_pulse_counts(w, ones, up, device, t, generator, exact=True)
        trace.append(w)
    return torch.stack(trace, dim=1)


def signed_counts_update(w: Tensor, counts: Tensor, device: PulsedDevice, t: DeviceTensors,
                         generator: Optional[torch.Generator]) -> Tensor:
    """Apply |counts| pulses of direction sign(counts) per device (w, counts [N, K]); returns new w.

    Used by transfers (TTv2, mixed precision) that decide pulse counts digitally.
    """
    if isinstance(device, Ideal):
        return _clip(w + counts * torch.where(counts > 0, t.dw_up, t.dw_down), t.b_max, t.b_min)
    flat = counts.reshape(-1)
    idx = flat.nonzero().squeeze(-1)
    out = w.clone()
    if idx.numel() == 0:
        return out
    out_flat = out.view(-1)
    n = flat[idx].abs().to(w.dtype)
    up = flat[idx] > 0
    ti = DeviceTensors(*(v.reshape(-1)[idx] for v in t))
    out_flat[idx] = apply_pulse_counts(out_flat[idx], n, up, device, ti, generator)
    return out


def pulsed_update(w: Tensor, x: Tensor, d: Tensor, lr: float, device: PulsedDevice, t: DeviceTensors, *,
                  desired_bl: int = 31, update_management: bool = True, bl_management: bool = True,
                  generator: Optional[torch.Generator] = None, exact: bool = False) -> Tensor:
    """Stochastic pulse-train update (module doc); returns the new hidden weights [N, K].

    Args:
        w: hidden weights [N, K] (not modified).
        x: inputs [M, K]; d: output gradients [M, N]; lr: η >= 0.
        device, t: the device model and its per-device tensors (``DeviceArray.tensors``).
        desired_bl: maximal (and, without BL management, fixed) number of slots BL >= 1.
        generator: the only source of randomness.
        exact: apply pulse by pulse for every model (slow; for tests of the closed form).
    """
    check_update_args(w, x, d, lr, desired_bl)
    x = x.to(w.dtype)
    d = d.to(w.dtype)
    if isinstance(device, Ideal):
        return _clip(w - lr * d.t() @ x, t.b_max, t.b_min)
    bl, p, q = pulse_train_factors(x, d, float(lr), device.dw_min, desired_bl, update_management, bl_management)
    out = w.clone()
    out_flat = out.view(-1)
    flat_t = DeviceTensors(*(v.reshape(-1) for v in t))
    sx, sd = torch.sign(x), torch.sign(d)
    rows = ((p.amax(dim=1) > 0) & (q.amax(dim=1) > 0)).nonzero().squeeze(-1).tolist()
    for m in rows:
        slots = int(bl[m])
        xbits = (torch.rand((slots, p.shape[1]), generator=generator, dtype=w.dtype, device=w.device)
                 < p[m]).to(w.dtype)  # [BL, K]
        dbits = (torch.rand((slots, q.shape[1]), generator=generator, dtype=w.dtype, device=w.device)
                 < q[m]).to(w.dtype)  # [BL, N]
        counts = dbits.t() @ xbits  # [N, K]
        idx = counts.view(-1).nonzero().squeeze(-1)
        if idx.numel() == 0:
            continue
        n_cols = counts.shape[1]
        i, j = idx // n_cols, idx % n_cols
        up = sd[m, i] * sx[m, j] < 0  # direction −sign(x·d)
        ti = DeviceTensors(*(v[idx] for v in flat_t))
        out_flat[idx] = apply_pulse_counts(out_flat[idx], counts.view(-1)[idx], up, device, ti, generator, exact)
    return out
