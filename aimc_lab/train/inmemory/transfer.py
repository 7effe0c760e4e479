"""Building blocks of the transfer algorithms (tiki-taka, ttv2, c-ttv2, agad; docs/physics.md §4).

Functions of the tile's state, shared by the algorithm classes (composition, no class hierarchy):
the fast array A, the cyclic column pointer and transfer clock, the noisy read of A's columns, A's
learning rate (scaled, absolute or auto-scaled), and the thresholded transfer of the digital buffer
H into C.
"""

from __future__ import annotations

import torch
from torch import Tensor

from aimc_lab.devices.pulsed import DeviceArray
from aimc_lab.kernels.analog_mvm import analog_mvm

__all__ = ["build_fast_array", "build_buffer", "due_columns", "read_columns", "fast_update", "buffer_transfer",
           "chopper_flip"]


def build_fast_array(tile, generator, auto_scale: bool) -> None:
    """A (``fast_device`` or the device), programmed to effective weight 0; the column pointer and the
    transfer clock; with ``auto_scale`` the running gradient-size estimate [x̄, d̄, updates seen]."""
    p = tile.training_params
    tile.A = DeviceArray(p.fast_device or p.device, tile.out_features, tile.in_features, seed=generator)
    tile.A.set_weights(torch.zeros(tile.out_features, tile.in_features))
    tile.register_buffer("transfer_column", torch.zeros((), dtype=torch.long))
    tile.register_buffer("transfer_clock", torch.zeros((), dtype=torch.long))
    if auto_scale:
        tile.register_buffer("grad_scale", torch.zeros(3))


def build_buffer(tile) -> None:
    """The digital transfer buffer H [N, K] in units of C's step."""
    tile.register_buffer("H", torch.zeros(tile.out_features, tile.in_features))


def due_columns(tile, rows: int) -> Tensor:
    """Columns of A to read in this update (cyclic order), [n] long; advances pointer and clock.

    The clock counts update calls, or samples (``transfer_per_sample``: a batch of M rows counts M);
    each multiple of ``transfer_every`` it passes reads ``transfer_columns`` columns. A column is read
    at most once per update (at most K columns)."""
    p = tile.training_params
    units = rows if p.transfer_per_sample else 1
    clock = int(tile.transfer_clock)
    transfers = (clock + units) // p.transfer_every - clock // p.transfer_every
    tile.transfer_clock.fill_(clock + units)
    K = tile.in_features
    n = min(transfers * p.transfer_columns, K)
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    start = int(tile.transfer_column)
    tile.transfer_column.fill_((start + n) % K)
    return (torch.arange(n) + start) % K


def read_columns(tile, cols: Tensor) -> Tensor:
    """Noisy reads of A's columns ``cols`` (forward MVM of one-hot inputs with ``transfer_io``): [N, n]."""
    onehot = torch.zeros(cols.numel(), tile.in_features, dtype=tile.C.w.dtype)
    onehot[torch.arange(cols.numel()), cols] = 1.0
    return analog_mvm(onehot, tile.A.read(), tile.training_params.transfer_io, generator=tile.generator).t()


def fast_update(tile, x: Tensor, d: Tensor, lr: float) -> None:
    """A's pulse-train update with the rows (x already chopped where the algorithm chops).

    A's rate: ``fast_lr``·η with ``scale_fast_lr``, else ``fast_lr`` (absolute); with ``auto_scale``
    that rate is relative, × desired_bl·dw_min_A/(x̄·d̄), where x̄, d̄ are running means (momentum
    ``auto_momentum``, the first update sets them) of the rows' max |x| and max |δ| (docs/physics.md §4)."""
    p = tile.training_params
    rate = p.fast_lr * lr if p.scale_fast_lr else p.fast_lr
    if p.auto_scale:
        state = tile.grad_scale  # [x̄, d̄, updates seen]
        sizes = torch.stack([x.abs().amax(dim=1).mean(), d.abs().amax(dim=1).mean()]).to(state)
        beta = p.auto_momentum if float(state[2]) > 0 else 0.0
        state[:2].mul_(beta).add_(sizes, alpha=1 - beta)
        state[2] += 1
        scale = float(state[0] * state[1])
        if scale <= 0:
            return
        rate = rate * p.desired_bl * tile.A.device_params.dw_min / scale
    tile.A.pulsed_update(x, d, rate, desired_bl=p.desired_bl, update_management=p.update_management,
                         bl_management=p.bl_management, generator=tile.generator)


def buffer_transfer(tile, cols: Tensor) -> None:
    """Threshold transfer of H's columns ``cols`` into C: n = trunc(H) clipped to ±transfer_bl pulses
    (C's actual steps); afterwards H ← momentum·H where pulses went (``forget_buffer``), else
    H ← H − (1 − momentum)·n."""
    p = tile.training_params
    h = tile.H[:, cols]
    n = torch.trunc(h).clamp_(-p.transfer_bl, p.transfer_bl)
    fired = n != 0
    if not bool(fired.any()):
        return
    counts = torch.zeros_like(tile.C.w)
    counts[:, cols] = n
    tile.C.signed_counts_update(counts, generator=tile.generator)
    if p.forget_buffer:
        tile.H[:, cols] = torch.where(fired, p.momentum * h, h)
    else:
        tile.H[:, cols] = h - (1 - p.momentum) * n


def chopper_flip(tile, cols: Tensor) -> None:
    """Each chopper of ``cols`` flips with probability ``in_chop_prob`` (c-ttv2, after each read)."""
    prob = tile.training_params.in_chop_prob
    if prob > 0:  # no draw without choppers: c-ttv2 then reproduces ttv2 exactly
        flip = torch.rand(cols.numel(), generator=tile.generator) < prob
        tile.chopper[cols] = torch.where(flip, -tile.chopper[cols], tile.chopper[cols])
