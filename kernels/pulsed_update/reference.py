"""Stochastic pulse-train update of one tile of pulsed devices (docs/physics.md §4): the spec, pure torch.

Target ΔW = −η·Σ_m d_m·x_mᵀ (d = gradient at the tile's output, x = its input, both per batch row).
On the hardware batch rows are applied one after the other (see **Blocks** below). For row m:

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
   cycle-to-cycle noise per pulse and clipping to the bounds after each pulse
   (:func:`pulse`, docs/physics.md §4).

x_max and d_max are taken per batch row (AIHWKIT's documentation leaves this to the implementation);
a row with x_max = 0 or d_max = 0 gives no pulses.

**Blocks (deviation from the row-by-row order, documented).** By default all rows of the batch form one
block (``block_rows`` sets its size): the bits of all Σ_m BL_m slots are drawn at once and each device's
coincidence counts come from matmuls (``block_pulse_counts``: total = Dᵀ·X and signed =
(D ⊙ sign d)ᵀ·(X ⊙ sign x), [N, S]·[S, K], so n_down = (total + signed)/2, n_up = (total − signed)/2;
bf16 matmuls in chunks of <= 256 slots, exact because the counts are integers <= 256). The n_up up and
n_down down pulses are then applied once per block, uniformly interleaved (``apply_mixed_counts``). The
random bits have exactly the spec's distribution; only the order of the pulses inside a block differs
from the hardware's (evenly interleaved instead of slot order): for ConstantStep away from the bounds
the order does not matter; for state-dependent models and near bounds the interleaving is the even
one. ``exact=True`` (or ``block_rows=1`` with the closed forms) is
the row-by-row order of the hardware. Memory: O(N·K + chunk·(N + K)), never M×N×K×BL.

Applying n pulses per device at once (``apply_pulse_counts``, ``apply_mixed_counts``, transfers): the
spec is the pulse loop, each pulse :func:`pulse` (noise on every pulse, scaled by the
device's own Δ^d, clipping after each pulse), up and down pulses evenly interleaved (Bresenham).

* **Exact in distribution**: for the linear family (ConstantStep, LinearStep, SoftBounds) one
  noise-free pulse is w ↦ q·w + dΔ (q = 1 + c, c = dΔγ), so n pulses give
  w_n = qⁿ·w + dΔ·(qⁿ − 1)/c; additive noise adds exactly N(0, (σΔ)²·(q²ⁿ − 1)/(q² − 1)); for
  ConstantStep with both directions w + n⁺Δ⁺ − n⁻Δ⁻ + N(0, σ²(n⁺Δ⁺² + n⁻Δ⁻²)) for either noise type.
  Used only where the whole path, widened by ``MARGIN_SIGMAS`` = 8 standard deviations of its
  accumulated noise (and by Δ⁺ + Δ⁻ for interleaving), stays inside the bounds, where the step is
  unclamped (1 + γw >= 0) and q > 0: there clipping never acts (probability < 1e-15), so the closed
  form and the loop have the same law. Every other device (at or near a bound, a bound nearer than
  one step, beyond a fixed point, q > 1 for mixed pulses) runs the pulse loop.
* **The pulse loop, shortened exactly**: ConstantStep devices whose pulses all go one way (at a bound
  too) draw their per-pulse noise ξ_k as the loop does; when every step Δ(1 + σξ_k) has the pulse's
  sign the path is monotone and clipping once, clip(w ± Δ(T + σΣξ_k)), equals clipping after each
  pulse; a device with a reversed step replays the loop with the same draws (``_constant_runs``).
* **Approximated**: multiplicative noise of LinearStep/SoftBounds (γ ≠ 0) is drawn as a Gaussian with
  the exact mean and variance, (s₀σ)²·q^{2(n−1)}·((1 + x)ⁿ − 1)/x with x = (cσ/q)²; the true law is a
  product of n factors q + cσξ (skewness about 3·√n·|c|·σ, ~1e-3 for the presets). Up *and* down
  pulses of the LinearStep family (γ ≠ 0): the continuous-interleaving limit (``apply_mixed_counts``),
  whose mean differs from the even interleaving by well under one step; its noise variance integrates
  the per-pulse variance along that path (Simpson for multiplicative noise).
* ExpStep, PowStep, PiecewiseStep and ``exact=True``: always the pulse loop.
* **Few pulses**: a LinearStep-family call in which no device gets more than ``LOOP_PULSES`` = 32
  pulses runs the pulse loop for every device (the spec itself; on small tiles its ~10 tensor
  operations per pulse cost less than the ~150 of the closed forms, and the devices near a bound would
  run the loop anyway). Small layers at batch 5 get 1-25 pulses per device and call.

Draws, in order: the slot bits (:func:`block_pulse_counts`); for the closed forms one normal per
device with pulses (per device of the tile when at least a quarter of them get pulses: no gathers);
in the pulse loop, whose devices are ordered by their pulse count T (largest first), one normal per
still-pulsing device per pulse, all ΣT of them in one draw (pulse 1's first, then pulse 2's, ...).

The Ideal device gets the exact floating-point update ΔW = −η·Σ_m d_m x_mᵀ, clipped to the bounds.

Randomness comes only from ``generator``. Inputs are never written: the new hidden weights are returned.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

__all__ = ["DeviceTensors", "PulseModel", "pulse", "step_and_scale", "pulsed_update", "apply_pulse_counts",
           "apply_mixed_counts", "block_pulse_counts", "apply_pulse_sequence", "signed_counts_update",
           "pulse_train_factors", "check_update_args"]


class DeviceTensors(NamedTuple):
    """Per-device constants drawn at construction, all of one shape (a tile's [N, K], or flat)."""

    dw_up: Tensor
    dw_down: Tensor
    b_max: Tensor
    b_min: Tensor


class PulseModel(NamedTuple):
    """What the kernels need to know about a tile's devices: tensors and plain parameters.

    Built by the device model (``PulsedDevice.pulse_model`` in aimc_lab.devices.pulsed, which decides
    the kind); the kernels never see a device object. Kinds:

    * **constant** (``gamma_up``/``gamma_down``/``step`` None): s(w) = Δ^d;
    * **linear** (``gamma_up``, ``gamma_down`` per-device tensors): s(w) = Δ^d·(1 + γ^d·w), clamped at
      >= 0 — the closed forms of the module doc apply to these two kinds;
    * **generic** (``step``): s(w) = step(w, up, tensors), any other model, always the pulse loop;
    * **ideal**: the exact floating-point update, no pulses.

    ``dw_min``: the nominal step (update and BL management); ``sigma``: cycle-to-cycle noise
    (dw_min_std); ``mult_noise``: multiplicative (True) or additive noise (docs/physics.md §4).
    """

    tensors: DeviceTensors
    dw_min: float
    sigma: float = 0.0
    mult_noise: bool = True
    gamma_up: Optional[Tensor] = None
    gamma_down: Optional[Tensor] = None
    step: Optional[Callable[[Tensor, Tensor, DeviceTensors], Tensor]] = None
    ideal: bool = False

    @property
    def closed_form(self) -> bool:
        """True for the constant and linear kinds (n same-direction pulses have a closed form)."""
        return self.step is None and not self.ideal

    @property
    def constant(self) -> bool:
        return self.closed_form and self.gamma_up is None


def _subset(model: PulseModel, idx: Tensor) -> PulseModel:
    """The model of the devices ``idx`` (of flat per-device tensors)."""
    return model._replace(tensors=DeviceTensors(*(v[idx] for v in model.tensors)),
                          gamma_up=None if model.gamma_up is None else model.gamma_up[idx],
                          gamma_down=None if model.gamma_down is None else model.gamma_down[idx])


def _flat(model: PulseModel) -> PulseModel:
    return model._replace(tensors=DeviceTensors(*(v.reshape(-1) for v in model.tensors)),
                          gamma_up=None if model.gamma_up is None else model.gamma_up.reshape(-1),
                          gamma_down=None if model.gamma_down is None else model.gamma_down.reshape(-1))


def _coefficients(model: PulseModel, up: Tensor) -> Tuple[Tensor, Tensor]:
    """(Δ^d, γ^d) per device for the pulse directions ``up`` (closed-form kinds)."""
    t = model.tensors
    delta = torch.where(up, t.dw_up, t.dw_down)
    if model.gamma_up is None:
        return delta, torch.zeros_like(delta)
    return delta, torch.where(up, model.gamma_up, model.gamma_down)


def step_and_scale(w: Tensor, up: Tensor, model: PulseModel) -> Tuple[Tensor, Tensor]:
    """(s, scale): the noise-free step magnitude s(w) >= 0 of one pulse in direction ``up`` and the
    scale of its cycle-to-cycle noise, s for multiplicative noise, the device's own Δ^d for additive
    noise (docs/physics.md §4). The one place of the pulsed step formula Δ±·f(w)."""
    t = model.tensors
    if model.closed_form:
        delta, gamma = _coefficients(model, up)
        if model.gamma_up is None:
            s = delta.expand_as(w)
        else:
            s = (delta * (1 + gamma * w)).clamp(min=0)
        return s, (s if model.mult_noise else delta.expand_as(w))
    if model.ideal:
        s = torch.where(up, t.dw_up, t.dw_down).expand_as(w)
        return s, s
    s = model.step(w, up, t)
    return s, (s if model.mult_noise else torch.where(up, t.dw_up, t.dw_down).expand_as(w))


def pulse(w: Tensor, up: Tensor, model: PulseModel, xi: Optional[Tensor]) -> Tensor:
    """One pulse per device, the rule of docs/physics.md §4: w + d·(s(w) + σ·scale·ξ), clipped to the
    bounds (:func:`step_and_scale`; multiplicative noise s·(1 + σξ), additive s + σ·Δ^d·ξ on every
    pulse, also where s(w) = 0, e.g. at a soft bound). ``up``: bool mask of the directions; ``xi``:
    standard normal draws like ``w`` (``None``: noise-free). Every pulse path (update loop, pulse
    responses, fitting, reference calibration) calls this one function."""
    t = model.tensors
    if model.constant:  # s = scale = Δ^d for both noise types: Δ^d·(1 + σξ), fewer ops
        inc = torch.where(up, t.dw_up, -t.dw_down)
        if xi is not None and model.sigma > 0:
            inc = torch.addcmul(inc, inc, xi, value=model.sigma)
        return torch.clamp(w + inc, min=t.b_min, max=t.b_max)
    step, scale = step_and_scale(w, up, model)
    if xi is not None and model.sigma > 0:
        step = step * (1 + model.sigma * xi) if model.mult_noise else step + model.sigma * scale * xi
    return torch.clamp(w + torch.where(up, step, -step), min=t.b_min, max=t.b_max)


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


#: Distance, in standard deviations of the accumulated cycle-to-cycle noise, that a closed form keeps
#: between a device's whole pulse path and its bounds (and the zero of its step); nearer devices run
#: the pulse loop. P(|N(0, 1)| > 8) ≈ 1e-15: the closed forms differ from the loop only in that tail.
MARGIN_SIGMAS = 8.0


#: Largest |q − 1| = Δ·|γ| of a direction for the mixed (up and down) closed form of the LinearStep
#: family; steps that large run the pulse loop (the continuous limit drifts from the even interleaving).
MAX_MIXED_C = 0.05


#: A call of the LinearStep family in which no device gets more than this many pulses runs the pulse
#: loop for every device: its ~10 tensor operations per pulse cost less than the ~150 of the closed forms
#: (and the devices near a bound would run the loop anyway).
LOOP_PULSES = 32


def apply_pulse_counts(w: Tensor, n: Tensor, up: Tensor, model: PulseModel,
                       generator: Optional[torch.Generator], exact: bool = False) -> Tensor:
    """Apply n >= 0 same-direction pulses per device (1-d tensors of equal length); returns new w.

    ``up`` is a bool mask (True: up pulses). The closed form of the linear family (module doc) serves the
    devices whose whole path stays inside the valid region; the others, and every device with
    ``exact=True`` or a model without closed form, run the pulse loop (:func:`pulse`).
    """
    zero = torch.zeros_like(n)
    n_up, n_down = torch.where(up, n, zero), torch.where(up, zero, n)
    if model.closed_form and not exact:
        w_new, safe = _single_direction(w, n, up, model, generator)
        return _finish(w_new, safe, w, n_up, n_down, model, generator)
    return _pulse_loop(w, n_up, n_down, model, generator)


def _pulse_loop(w: Tensor, n_up: Tensor, n_down: Tensor, model: PulseModel,
                generator: Optional[torch.Generator]) -> Tensor:
    """The spec: each device's n⁺ up and n⁻ down pulses one at a time (:func:`pulse`),
    evenly interleaved (Bresenham: pulse k of T = n⁺ + n⁻ is up when ⌊k·n⁺/T⌋ > ⌊(k − 1)·n⁺/T⌋, i.e.
    when (k − 1)·n⁺ mod T + n⁺ >= T). The devices with pulses are ordered by T, largest first (stable),
    so the devices still pulsing at pulse k are a prefix of that order; pulse k draws one normal per
    device of the prefix (all drawn at once, :func:`loop_draws`). The work is O(Σ n). Constant-step
    devices with pulses in one direction take the exact shortcut of :func:`_constant_runs`."""
    w = w.clone()
    if model.constant:
        single = ((n_up == 0) | (n_down == 0)) & ((n_up + n_down) > 0)
        if bool(single.any()):
            sel = single.nonzero().squeeze(-1)
            w[sel] = _constant_runs(w[sel], n_up[sel], n_down[sel], _subset(model, sel), generator)
            n_up, n_down = torch.where(single, 0, n_up), torch.where(single, 0, n_down)
    idx, U, T, live = loop_order(n_up, n_down)
    if idx.numel() == 0:
        return w
    wi, ms = w[idx], _subset(model, idx)
    draws = loop_draws(live, model, w, generator)
    start = 0
    for k, n_k in enumerate(live, start=1):
        up = ((k - 1) * U[:n_k] % T[:n_k] + U[:n_k]) >= T[:n_k]
        xi = None if draws is None else draws[start:start + n_k]
        wi[:n_k] = pulse(wi[:n_k], up, _prefix(ms, n_k), xi)
        start += n_k
    w[idx] = wi
    return w


def loop_draws(live, model: PulseModel, w: Tensor, generator: Optional[torch.Generator]) -> Optional[Tensor]:
    """The pulse loop's noise: Σ_k live[k − 1] standard normals in one draw (None when noise-free);
    pulse k takes the next live[k − 1] of them, one per still-pulsing device in the loop's order."""
    if model.sigma <= 0 or not live:
        return None
    return torch.randn(sum(live), generator=generator, dtype=w.dtype, device=w.device)


def loop_order(n_up: Tensor, n_down: Tensor):
    """The pulse loop's order: (idx, U, T, live) with idx the devices with pulses sorted by
    T = n⁺ + n⁻ (largest first, stable), U = n⁺ and T in that order (int64), and live[k − 1] the
    number of devices with T >= k (a list, k = 1..max T)."""
    total = n_up + n_down
    idx = total.nonzero().squeeze(-1)
    T = total[idx].to(torch.long)
    T, order = torch.sort(T, descending=True, stable=True)
    idx = idx[order]
    U = n_up[idx].to(torch.long)
    live = torch.bincount(T).flip(0).cumsum(0).flip(0)[1:].tolist() if T.numel() else []
    return idx, U, T, live


def _prefix(model: PulseModel, n: int) -> PulseModel:
    """The model of the first ``n`` devices (of flat per-device tensors)."""
    return model._replace(tensors=DeviceTensors(*(v[:n] for v in model.tensors)),
                          gamma_up=None if model.gamma_up is None else model.gamma_up[:n],
                          gamma_down=None if model.gamma_down is None else model.gamma_down[:n])


def _constant_runs(w: Tensor, n_up: Tensor, n_down: Tensor, model: PulseModel,
                   generator: Optional[torch.Generator]) -> Tensor:
    """The pulse loop, exactly, for constant-step devices (1-d) whose T = n⁺ + n⁻ >= 1 pulses all go one
    way. Pulse k adds inc_k = ±Δ^d·(1 + σξ_k) and clips (:func:`pulse`). When every inc_k has the
    pulse's sign (1 + σξ_k >= 0, i.e. ξ_k >= −1/σ), the path is monotone, so clipping after each pulse equals clipping
    once: w_T = clip(w + ±Δ^d·(T + σ·Σξ_k)) (equal to the loop up to rounding). The per-pulse ξ_k are
    drawn (ΣT normals); the devices where one of them reverses a step replay the loop with those very
    draws, so the result has the loop's law exactly."""
    t = model.tensors
    n = n_up + n_down
    up = n_up > 0
    inc = torch.where(up, t.dw_up, -t.dw_down)
    if model.sigma <= 0:
        return torch.clamp(w + n * inc, min=t.b_min, max=t.b_max)
    counts = n.to(torch.long)
    end = torch.cumsum(counts, 0)  # device i owns the draws [end_i − T_i, end_i)
    start = end - counts
    xi = torch.randn(int(end[-1]), generator=generator, dtype=w.dtype, device=w.device)  # [ΣT]
    csum = torch.cat([xi.new_zeros(1, dtype=torch.float64), torch.cumsum(xi, 0, dtype=torch.float64)])
    xi_sum = (csum[end] - csum[start]).to(w.dtype)  # Σ_k ξ_k per device
    out = torch.clamp(w + inc * (n + model.sigma * xi_sum), min=t.b_min, max=t.b_max)
    against = (xi < -1.0 / model.sigma).nonzero().squeeze(-1)  # draws that reverse their step
    if against.numel():  # those devices: the loop with the same draws
        reversed_ = torch.unique(torch.searchsorted(end, against, right=True))
        wr, ir, nr, sr = w[reversed_], inc[reversed_], counts[reversed_], start[reversed_]
        lo, hi = t.b_min[reversed_], t.b_max[reversed_]
        for k in range(int(nr.max())):
            live = nr > k
            xk = xi[torch.where(live, sr + k, 0)]
            step = torch.addcmul(ir, ir, xk, value=model.sigma)
            wr = torch.where(live, torch.clamp(wr + step, min=lo, max=hi), wr)
        out[reversed_] = wr
    return out


def _finish(w_new: Tensor, safe: Tensor, w: Tensor, n_up: Tensor, n_down: Tensor, model: PulseModel,
            generator: Optional[torch.Generator]) -> Tensor:
    """Keep the closed-form result where ``safe`` and finite (its variance can overflow fp32 for large
    noise, e.g. 0·inf at a soft bound); the other devices run the pulse loop."""
    safe = safe & torch.isfinite(w_new)
    bad = (~safe).nonzero().squeeze(-1)
    if 2 * bad.numel() > safe.numel():  # mostly unsafe: loop on the whole arrays (no gathers)
        zero = torch.zeros_like(n_up)
        looped = _pulse_loop(w, torch.where(safe, zero, n_up), torch.where(safe, zero, n_down), model,
                             generator)
        return torch.where(safe, w_new, looped)
    if bad.numel():
        w_new[bad] = _pulse_loop(w[bad], n_up[bad], n_down[bad], _subset(model, bad), generator)
    return w_new


def _path_inside(lo: Tensor, hi: Tensor, t: DeviceTensors) -> Tensor:
    return (lo >= t.b_min) & (hi <= t.b_max)


def _single_direction(w: Tensor, n: Tensor, up: Tensor, model: PulseModel,
                      generator: Optional[torch.Generator], xi: Optional[Tensor] = None):
    """Closed form of n same-direction pulses of the linear family: (new w, safe mask); see the module doc.

    Noise-free, one pulse is the affine map w ↦ q·w + dΔ (q = 1 + c, c = dΔγ), so
    w_n = qⁿ·w + dΔ·(qⁿ − 1)/c. Additive noise is a sum of independent Gaussians σΔ·ξ_k contracted by
    the later pulses: exactly N(0, (σΔ)²·(q²ⁿ − 1)/(q² − 1)). Multiplicative noise multiplies
    u = 1 + γw by q + cσξ per pulse: exact mean and variance
    Var = (s₀σ)²·q^{2(n−1)}·((1 + x)ⁿ − 1)/x, x = (cσ/q)², drawn as a Gaussian. ``safe``: q > 0
    and the path ± MARGIN_SIGMAS·(its noise) stays inside the bounds and where 1 + γw >= 0.
    ``xi``: the standard normal draw per device (``None``: drawn here from ``generator``).
    """
    t = model.tensors
    sign = up.to(w.dtype) * 2 - 1
    delta, gamma = _coefficients(model, up)
    c = sign * delta * gamma
    ok = c > -1
    c = torch.where(ok, c, torch.zeros_like(c))
    L = torch.log1p(c)
    nL = n * L
    w_end = torch.exp(nL) * w + sign * delta * n * _ratio(torch.expm1(nL), nL) * _ratio(L, c)
    lo, hi = torch.minimum(w, w_end), torch.maximum(w, w_end)
    w_new = w_end
    sigma = model.sigma
    if sigma > 0:
        growth = torch.exp(2 * nL.clamp(min=0))  # q^{2n} where the map expands (q > 1)
        if model.mult_noise:
            u = torch.maximum((1 + gamma * w).abs(), (1 + gamma * w_end).abs())
            x = (c * sigma / (1 + c)) ** 2
            L2 = torch.log1p(x)
            s0 = delta * (1 + gamma * w)
            var = (s0 * sigma) ** 2 * torch.exp(2 * (n - 1) * L) * n * _ratio(torch.expm1(n * L2), n * L2) \
                * _ratio(L2, x)
            bound = n * (sigma * delta * u) ** 2 * growth
        else:
            var = (sigma * delta) ** 2 * n * _ratio(torch.expm1(2 * nL), 2 * nL) * _ratio(2 * L, torch.expm1(2 * L))
            bound = n * (sigma * delta) ** 2 * growth
        margin = MARGIN_SIGMAS * bound.sqrt()
        lo, hi = lo - margin, hi + margin
        if xi is None:
            xi = torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device)
        w_new = w_end + var.clamp(min=0).sqrt() * xi
    safe = ok & _path_inside(lo, hi, t) & (1 + gamma * lo >= 0) & (1 + gamma * hi >= 0)
    safe = safe | (n == 0)
    return torch.maximum(torch.minimum(w_new, t.b_max), t.b_min), safe


def apply_pulse_sequence(w: Tensor, directions: Tensor, model: PulseModel,
                         generator: Optional[torch.Generator]) -> Tensor:
    """Apply one pulse per entry of ``directions`` (±1) to every device of ``w`` [D], in order
    (:func:`pulse`, noise from ``generator``).

    Returns the trace [D, P + 1] (column 0 = the start). Used by pulse responses, fitting and the
    reference calibration.
    """
    trace = [w.clone()]
    noisy = model.sigma > 0
    for direction in directions.tolist():
        up = torch.full(w.shape, direction > 0, dtype=torch.bool, device=w.device)
        xi = torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device) if noisy else None
        w = pulse(w, up, model, xi)
        trace.append(w)
    return torch.stack(trace, dim=1)


def signed_counts_update(w: Tensor, counts: Tensor, model: PulseModel,
                         generator: Optional[torch.Generator]) -> Tensor:
    """Apply |counts| pulses of direction sign(counts) per device (w, counts [N, K]); returns new w.

    Used by transfers (TTv2, mixed precision) that decide pulse counts digitally.
    """
    t = model.tensors
    if model.ideal:
        return _clip(w + counts * torch.where(counts > 0, t.dw_up, t.dw_down), t.b_max, t.b_min)
    counts = counts.to(w.dtype)
    return _apply_mixed(w, counts.clamp(min=0), (-counts).clamp(min=0), model, generator, False)


_COUNT_DTYPE: dict = {}


def _count_dtype(dev: torch.device) -> torch.dtype:
    """bfloat16 when a 0/±1 bf16 matmul with 256-term sums is exact here (fp32 accumulation), else fp32.

    Integers up to 256 are exact in bf16, so a chunk of at most 256 slots gives exact counts; checked
    once per device type (and 2x faster than fp32 on CPUs with avx512_bf16)."""
    key = dev.type
    if key not in _COUNT_DTYPE:
        g = torch.Generator(device=dev).manual_seed(0)
        a = torch.where(torch.rand(64, _BF16_SLOTS, generator=g, device=dev) < 0.9, 1.0, 0.0)
        b = torch.where(torch.rand(_BF16_SLOTS, 48, generator=g, device=dev) < 0.9, 1.0, 0.0)
        b[:, 0] = 1.0
        a[0] = 1.0
        try:
            ok = torch.equal((a.bfloat16() @ b.bfloat16()).float(), a @ b)
        except RuntimeError:  # pragma: no cover - no bf16 matmul on this device
            ok = False
        _COUNT_DTYPE[key] = torch.bfloat16 if ok else torch.float32
    return _COUNT_DTYPE[key]


_BF16_SLOTS = 256  # max slots per count matmul in bf16 (exact integer range of bf16)
_FP32_SLOTS = 2048  # max slots per count matmul in fp32 (bounds the [slots, N + K] bit matrices)


def block_pulse_counts(p: Tensor, q: Tensor, bl: Tensor, sx: Tensor, sd: Tensor,
                       generator: Optional[torch.Generator], count_dtype: Optional[torch.dtype] = None):
    """Coincidence counts of a block of rows: (n_up, n_down), both [N, K] float (exact integers).

    p [R, K], q [R, N]: firing probabilities; bl [R]: slots per row; sx [R, K], sd [R, N]: signs of
    x and d. All Σ_m bl[m] slots are drawn as bit matrices X [S, K] (row j fired in slot s) and
    D [S, N], in chunks of at most 256 (bf16) / 2048 (fp32) slots, and
    total = Dᵀ·X, signed = (D ⊙ sd)ᵀ·(X ⊙ sx) (two matmuls per chunk). A coincidence with
    sign(x·d) > 0 is a down pulse, so n_down = (total + signed)/2, n_up = (total − signed)/2.
    Memory: O(N·K + chunk·(N + K)).
    """
    total, signed = _slot_counts(p, q, bl, sx, sd, generator, count_dtype)
    n_up = (total - signed).mul_(0.5)
    return n_up, total.add_(signed).mul_(0.5)


def _slot_counts(p, q, bl, sx, sd, generator, count_dtype=None):
    """(total, signed) counts [N, K] in p's dtype (see :func:`block_pulse_counts`)."""
    dev, dtype = p.device, p.dtype
    count_dtype = count_dtype or _count_dtype(dev)
    chunk = _BF16_SLOTS if count_dtype == torch.bfloat16 else _FP32_SLOTS
    R, K = p.shape
    N = q.shape[1]
    slot_row = torch.repeat_interleave(torch.arange(R, device=dev), bl.to(dev))  # [S]
    total = signed = None
    zero = torch.zeros((), dtype=count_dtype, device=dev)
    sx_c, sd_c = sx.to(count_dtype), sd.to(count_dtype)
    one = torch.ones((), dtype=count_dtype, device=dev)
    for s0 in range(0, slot_row.numel(), chunk):
        r = slot_row[s0:s0 + chunk]
        s = r.numel()
        fire_x = torch.rand((s, K), generator=generator, dtype=dtype, device=dev) < p[r]
        fire_d = torch.rand((s, N), generator=generator, dtype=dtype, device=dev) < q[r]
        xb = torch.where(fire_x, one, zero)
        db = torch.where(fire_d, one, zero)
        c_tot = (db.t() @ xb).to(dtype)
        c_sgn = (db.mul_(sd_c[r]).t() @ xb.mul_(sx_c[r])).to(dtype)
        if total is None:
            total, signed = c_tot, c_sgn
        else:
            total.add_(c_tot)
            signed.add_(c_sgn)
    if total is None:
        total = torch.zeros(N, K, dtype=dtype, device=dev)
        signed = torch.zeros_like(total)
    return total, signed


def apply_mixed_counts(w: Tensor, n_up: Tensor, n_down: Tensor, model: PulseModel,
                       generator: Optional[torch.Generator], exact: bool = False) -> Tensor:
    """Apply n_up up pulses and n_down down pulses per device (tensors of equal shape); returns new w.

    The hardware interleaves the two directions in an order set by the random slots; here they are
    applied **evenly interleaved** (the pulse loop, Bresenham). Closed forms (module doc) serve the
    devices whose path stays safely inside the valid region:

    * ConstantStep: w + n⁺Δ⁺ − n⁻Δ⁻ plus one Gaussian of variance σ²(n⁺Δ⁺² + n⁻Δ⁻²), exact;
    * LinearStep family, one direction only: the exact n-pulse form (``apply_pulse_counts``);
    * LinearStep family, both directions: the continuous-interleaving limit of the affine maps
      w ↦ w*^d + (w − w*^d)·q^d, w_new = e^β·w + α·(e^β − 1)/β with β = n⁺·ln q⁺ + n⁻·ln q⁻,
      α = n⁺·ln q⁺/γ⁺ + n⁻·ln q⁻/γ⁻ (q⁺ = 1 + Δ⁺γ⁺, q⁻ = 1 − Δ⁻γ⁻; ln q/γ → ±Δ for γ → 0), plus one
      Gaussian: additive σ²·Σ_d n^d·Δ^d²·(2 ln q^d/(q^d² − 1))·(e^{2β} − 1)/(2β), multiplicative
      σ²·∫₀¹ Σ_d n^d·s^d(w(τ))²·e^{2β(1−τ)} dτ (Simpson) — an approximation (module doc);
    * devices near a bound or the zero of their step, with q ≤ 0, or (both directions) with
      |q − 1| > MAX_MIXED_C or q > 1 for a firing direction, other models, and ``exact=True``: the
      pulse loop.
    """
    return _apply_mixed(w, n_up.clone(), n_down.clone(), model, generator, exact)


def _apply_mixed(w, n_up, n_down, model, generator, exact, idx=None):
    """:func:`apply_mixed_counts` that may overwrite n_up/n_down. When fewer than a quarter of the
    devices get pulses only those are worked on (gathered); ``idx``: their flat indices, if known."""
    shape = w.shape
    w, n_up, n_down = w.reshape(-1), n_up.reshape(-1), n_down.reshape(-1)
    if idx is None:
        idx = (n_up + n_down).nonzero().squeeze(-1)
    if idx.numel() == 0:
        return w.clone().view(shape)
    fm = _flat(model)
    if 4 * idx.numel() >= w.numel():  # dense: no gathers
        return _apply_mixed_flat(w, n_up, n_down, fm, generator, exact).view(shape)
    out = w.clone()
    out[idx] = _apply_mixed_flat(w[idx], n_up[idx], n_down[idx], _subset(fm, idx), generator, exact)
    return out.view(shape)


def _apply_mixed_flat(w, n_up, n_down, model, generator, exact):
    if exact or not model.closed_form:
        return _pulse_loop(w, n_up, n_down, model, generator)
    if model.constant:
        return _constant_step_counts(w, n_up, n_down, model, generator)
    if float((n_up + n_down).max()) <= LOOP_PULSES:  # few pulses: the loop itself (the closed forms cost more)
        return _pulse_loop(w, n_up, n_down, model, generator)
    return _linear_counts(w, n_up, n_down, model, generator)


def _constant_step_counts(w, n_up, n_down, model, generator, finish=None):
    """ConstantStep: w + n⁺Δ⁺ − n⁻Δ⁻ + N(0, σ²(n⁺Δ⁺² + n⁻Δ⁻²)), exact in distribution for every device
    whose interleaved path (within Δ⁺ + Δ⁻ of the straight line) stays MARGIN_SIGMAS noise standard
    deviations inside its bounds; the others run the pulse loop (``finish``: :func:`_finish`, or a faster
    implementation of it)."""
    t = model.tensors
    w_new = torch.addcmul(w, n_up, t.dw_up)
    w_new.addcmul_(n_down, t.dw_down, value=-1.0)
    room_lo = torch.minimum(w, w_new).sub_(t.b_min).sub_(t.dw_up).sub_(t.dw_down)  # path to b_min
    room_hi = torch.maximum(w, w_new).sub_(t.b_max).neg_()  # path to b_max
    sigma = model.sigma
    if sigma > 0:
        sd = (n_up * t.dw_up).mul_(t.dw_up).addcmul_(n_down * t.dw_down, t.dw_down).sqrt_()
        margin = sd * (sigma * MARGIN_SIGMAS)
        safe = (room_lo >= margin).logical_and_(room_hi >= margin)
        noise = torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device)
        w_new.addcmul_(sd, noise, value=sigma)
    else:
        safe = (room_lo >= 0).logical_and_(room_hi >= 0)
    w_new = torch.clamp(w_new, min=t.b_min, max=t.b_max, out=w_new)
    return (finish or _finish)(w_new, safe, w, n_up, n_down, model, generator)


def _linear_counts(w, n_up, n_down, model, generator):
    """LinearStep family with up and down pulses: the continuous-interleaving closed form (module doc)
    for devices with both directions, the exact single-direction form for the others, the pulse loop for
    devices whose path is not safely inside the valid region."""
    single = (n_up == 0) | (n_down == 0)
    n_single = int(single.sum())
    if n_single == w.numel():  # one direction per device (e.g. every transfer): the exact n-pulse form only
        w_1, safe_1 = _single_direction(w, n_up + n_down, n_up > 0, model, generator)
        return _finish(w_1, safe_1, w, n_up, n_down, model, generator)
    t = model.tensors
    d_up, g_up, d_dn, g_dn = t.dw_up, model.gamma_up, t.dw_down, model.gamma_down
    c_up, c_dn = d_up * g_up, -d_dn * g_dn  # q − 1 per direction
    # a firing direction needs an attracting map close to the identity, 1 − MAX_MIXED_C <= q <= 1: the
    # continuous limit of the interleaving is accurate for small steps (q > 1: degenerate bounds)
    ok = (((c_up >= -MAX_MIXED_C) & (c_up <= 0)) | (n_up == 0)) & \
        (((c_dn >= -MAX_MIXED_C) & (c_dn <= 0)) | (n_down == 0))
    zero = torch.zeros_like(w)
    c_up = torch.where(c_up > -1, c_up, zero)
    c_dn = torch.where(c_dn > -1, c_dn, zero)
    l_up, l_dn = torch.log1p(c_up), torch.log1p(c_dn)
    beta = n_up * l_up + n_down * l_dn
    alpha = n_up * d_up * _ratio(l_up, c_up) - n_down * d_dn * _ratio(l_dn, c_dn)

    def at(frac: float) -> Tensor:  # noise-free continuous path at τ = frac
        b = frac * beta
        return torch.exp(b) * w + frac * alpha * _ratio(torch.expm1(b), b)

    w_end = at(1.0)
    reach = d_up + d_dn  # an interleaved path stays within one step of each direction of the curve
    lo, hi = torch.minimum(w, w_end) - reach, torch.maximum(w, w_end) + reach
    w_new = w_end
    sigma = model.sigma
    # one standard normal per device: the mixed form or the single-direction form uses it
    xi = torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device) if sigma > 0 else None
    if sigma > 0:
        if model.mult_noise:
            def rate(v: Tensor, frac: float) -> Tensor:  # Σ_d n^d·s^d(w)², contracted from τ to 1
                s_up, s_dn = (d_up * (1 + g_up * v)).clamp(min=0), (d_dn * (1 + g_dn * v)).clamp(min=0)
                return (n_up * s_up ** 2 + n_down * s_dn ** 2) * torch.exp(2 * (1 - frac) * beta)

            var = (rate(w, 0.0) + 4 * rate(at(0.5), 0.5) + rate(w_end, 1.0)) / 6  # Simpson over τ
            u_up = torch.maximum((1 + g_up * w).abs(), (1 + g_up * w_end).abs())
            u_dn = torch.maximum((1 + g_dn * w).abs(), (1 + g_dn * w_end).abs())
            bound = n_up * (d_up * u_up) ** 2 + n_down * (d_dn * u_dn) ** 2
        else:
            bound = n_up * d_up ** 2 + n_down * d_dn ** 2
            var = bound * _ratio(torch.expm1(2 * beta), 2 * beta)
        margin = MARGIN_SIGMAS * sigma * bound.sqrt()
        lo, hi = lo - margin, hi + margin
        w_new = w_end + sigma * var.clamp(min=0).sqrt() * xi
    safe = ok & _path_inside(lo, hi, t)
    for g, n in ((g_up, n_up), (g_dn, n_down)):
        safe &= ((1 + g * lo >= 0) & (1 + g * hi >= 0)) | (n == 0)
    w_new = torch.maximum(torch.minimum(w_new, t.b_max), t.b_min)
    if n_single:
        w_1, safe_1 = _single_direction(w, n_up + n_down, n_up > 0, model, generator, xi)
        w_new, safe = torch.where(single, w_1, w_new), torch.where(single, safe_1, safe)
    return _finish(w_new, safe, w, n_up, n_down, model, generator)


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """num/den with the limit 1 where den → 0 (for log1p(c)/c and expm1(b)/b)."""
    small = den.abs() < 1e-12
    return torch.where(small, torch.ones_like(num), num / torch.where(small, torch.ones_like(den), den))


def pulsed_update(w: Tensor, x: Tensor, d: Tensor, lr: float, model: PulseModel, *,
                  desired_bl: int = 31, update_management: bool = True, bl_management: bool = True,
                  generator: Optional[torch.Generator] = None, exact: bool = False,
                  block_rows: Optional[int] = None) -> Tensor:
    """Stochastic pulse-train update (module doc); returns the new hidden weights [N, K].

    Args:
        w: hidden weights [N, K] (not modified).
        x: inputs [M, K]; d: output gradients [M, N]; lr: η >= 0.
        model: the devices' tensors and parameters (:class:`PulseModel`, from
            ``DeviceArray.pulse_model()``).
        desired_bl: maximal (and, without BL management, fixed) number of slots BL >= 1.
        generator: the only source of randomness.
        exact: row by row and pulse by pulse for every model (the hardware order; slow, for tests).
        block_rows: rows whose counts are drawn together and applied at once (None: all rows, the
            fast default; 1: row by row with the closed forms).
    """
    check_update_args(w, x, d, lr, desired_bl)
    if block_rows is not None and (isinstance(block_rows, bool) or not isinstance(block_rows, int)
                                   or block_rows < 1):
        raise ValueError(f"block_rows = {block_rows!r} is invalid; allowed: None or an integer >= 1")
    x = x.to(w.dtype)
    d = d.to(w.dtype)
    t = model.tensors
    if model.ideal:
        return _clip(w - lr * d.t() @ x, t.b_max, t.b_min)
    bl, p, q = pulse_train_factors(x, d, float(lr), model.dw_min, desired_bl, update_management, bl_management)
    rows = ((p.amax(dim=1) > 0) & (q.amax(dim=1) > 0)).nonzero().squeeze(-1)
    if rows.numel() == 0:
        return w.clone()
    size = 1 if exact else (rows.numel() if block_rows is None else block_rows)
    sx, sd = torch.sign(x), torch.sign(d)
    out = w
    for b0 in range(0, rows.numel(), size):
        r = rows[b0:b0 + size]
        total, signed = _slot_counts(p[r], q[r], bl[r], sx[r], sd[r], generator)
        idx = total.reshape(-1).nonzero().squeeze(-1)  # the devices with pulses
        if idx.numel() == 0:
            continue
        n_up = (total - signed).mul_(0.5)
        n_down = total.add_(signed).mul_(0.5)
        out = _apply_mixed(out, n_up, n_down, model, generator, exact, idx)
    return out if out is not w else w.clone()
