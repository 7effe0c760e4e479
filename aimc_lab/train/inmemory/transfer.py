"""Building blocks of the transfer algorithms (tiki-taka, ttv2, c-ttv2, agad; docs/physics.md §4).

Functions of the tile's state, shared by the algorithm classes (composition, no class hierarchy):
the fast array A, the cyclic column pointer and transfer clock, the noisy read of A's columns, A's
learning rate (scaled, absolute or auto-scaled), and the thresholded transfer of the digital buffer
H into C.

A transfer touches a few columns of A and C (one per sample by default): the reads and writes work
on those columns only, never on the whole arrays.

* **Reads** (:func:`read_columns`): the forward MVM of the one-hot inputs e_k with ``transfer_io``.
  Its zero inputs contribute nothing unless the read has input noise, stochastic DAC rounding or IR
  drop (which act on every input row), so without those the MVM of the identity with the columns
  A[:, cols] gives the same numbers, random draws included (one Gaussian per output either way); with
  them the one-hot MVM over all of A runs.
* **Writes** (:func:`column_pulsed_update`, :func:`column_counts_update`): a pulse-train update whose
  inputs are one-hot rows fires only the rows (inputs) e_k, and digitally decided counts are zero
  outside the transferred columns, so the pulses go to C[:, cols] only; the kernels run on that
  [N, n] slice (its own per-device constants) and the array stores the result in those columns
  (``DeviceArray.commit_columns``: write noise redrawn where a weight changed, as for any update).
  Equal in law to the update of the whole array; the random draws differ (bits, pulse noise and
  write noise are drawn for the slice only).
* **Writes of several tiles together** (:class:`PendingCounts`): during ``AnalogSGD.step`` the digitally
  decided counts of every tile (buffered transfers, mixed precision) are collected and applied by one
  kernel call per device model on the concatenated devices with pulses, instead of one call per tile.
  Each device's pulses depend only on its own count and state, so this is equal in law to the
  per-tile writes; the noise of the joint call comes from the first tile's generator (deterministic
  for a given model and seeds). A single tile's writes are applied as before.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from aimc_lab.devices.pulsed import DeviceArray
from aimc_lab.kernels.analog_mvm import analog_mvm
from aimc_lab.kernels.pulsed_update import DeviceTensors, signed_counts_update
from aimc_lab.kernels.pulsed_update import compiled as _compiled

__all__ = ["build_fast_array", "build_buffer", "due_columns", "read_columns", "fast_update", "buffer_transfer",
           "chopper_flip", "column_pulsed_update", "column_counts_update", "column_read_is_exact", "PendingCounts"]


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


def column_read_is_exact(io) -> bool:
    """Whether the MVM of the identity with the read columns equals the one-hot MVM over the whole
    array (module doc): no input noise, no stochastic rounding, no IR drop, or a perfect read."""
    return io.is_perfect or (io.inp_noise == 0 and not io.inp_sto_round and io.ir_drop == 0)


def read_columns(tile, cols: Tensor) -> Tensor:
    """Noisy reads of A's columns ``cols`` (forward MVM of one-hot inputs with ``transfer_io``): [N, n]."""
    io = tile.training_params.transfer_io
    A = tile.A
    n = cols.numel()
    if column_read_is_exact(io):  # the read columns only (module doc)
        weights = A.read()[:, cols]  # [N, n]
        eye = torch.eye(n, dtype=A.w.dtype, device=A.w.device)
        return analog_mvm(eye, weights, io, generator=tile.generator).t()
    onehot = torch.zeros(n, tile.in_features, dtype=A.w.dtype, device=A.w.device)
    onehot[torch.arange(n, device=cols.device), cols] = 1.0
    return analog_mvm(onehot, A.read(), io, generator=tile.generator).t()


def column_pulsed_update(array: DeviceArray, cols: Tensor, d: Tensor, lr: float, *, desired_bl: int,
                         generator) -> None:
    """The pulse-train update of ``array`` with one-hot inputs x_m = e_{cols[m]} and output gradients
    d [n, N] (update and BL management on), run on the columns ``cols`` (distinct) only: equal in law
    to ``array.pulsed_update(onehot, d, lr, ...)`` (module doc)."""
    eye = torch.eye(cols.numel(), dtype=array.w.dtype, device=array.w.device)
    array.pulsed_update_columns(cols, eye, d, lr, desired_bl=desired_bl, update_management=True, bl_management=True,
                                generator=generator)


def column_counts_update(array: DeviceArray, cols: Tensor, counts: Tensor, generator) -> None:
    """|counts| pulses of direction sign(counts) to the devices ``array``[:, cols] (counts [N, n], cols
    distinct): ``array.signed_counts_update`` of the counts placed in those columns, zero elsewhere,
    run on the columns only (module doc)."""
    array.signed_counts_update_columns(cols, counts, generator=generator)


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
    tile.write_counts(cols, n)
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


class PendingCounts:
    """Signed pulse counts for the arrays of several tiles, applied together by :meth:`apply` (module doc).

    :meth:`add` queues |counts| pulses of direction sign(counts) for ``array``[:, cols] (``cols``
    None: the whole array; counts [N, n] or [N, K]), :meth:`add_flat` the same for a whole array
    given as its devices with pulses (mixed precision's compiled transfer); :meth:`apply` runs one
    kernel call per group of arrays with equal device models (dtype and device) and stores each
    array's result (``commit``, with that array's generator for its write noise).
    """

    def __init__(self) -> None:
        self._items: List[Tuple[DeviceArray, Optional[Tensor], Tensor, Optional[torch.Generator]]] = []

    def __len__(self) -> int:
        return len(self._items)

    def add(self, array: DeviceArray, cols: Optional[Tensor], counts: Tensor,
            generator: Optional[torch.Generator]) -> None:
        self._items.append((array, cols, counts, generator, None))

    def add_flat(self, array: DeviceArray, idx: Tensor, counts: Tensor, generator: Optional[torch.Generator]) -> None:
        """Queue |counts| pulses of direction sign(counts) for the devices ``idx`` of ``array`` (flat
        indices, ascending, int64; counts [P] nonzero): :meth:`add` of the dense counts, without them."""
        self._items.append((array, None, counts, generator, idx))

    def apply(self) -> None:
        items, self._items = self._items, []
        groups: List[list] = []
        for item in items:
            a = item[0]
            for group in groups:
                b = group[0][0]
                if b.device_params == a.device_params and b.w.dtype == a.w.dtype and b.w.device == a.w.device:
                    group.append(item)
                    break
            else:
                groups.append([item])
        for group in groups:
            if len(group) == 1 and group[0][4] is None:
                array, cols, counts, generator, _ = group[0]
                if cols is None:
                    array.signed_counts_update(counts, generator=generator)
                else:
                    column_counts_update(array, cols, counts, generator)
            else:
                _apply_together(group)


def _apply_together(group) -> None:
    """One signed-counts kernel call on the devices with pulses of every array of ``group`` (1-d);
    compiled in one pass with the same draws when the arrays take the compiled lane."""
    cs, picks = [], []
    for array, cols, counts, _, flat in group:
        if flat is not None:  # add_flat: the devices with pulses and their counts
            picks.append(flat)
            cs.append(counts)
            continue
        idx = counts.reshape(-1).nonzero().squeeze(-1)  # devices with pulses, in counts' [N, n] layout
        if cols is not None:  # the same devices in the array's [N, K] layout
            n = cols.numel()
            idx_full = torch.div(idx, n, rounding_mode="floor") * array.w.shape[1] + cols[idx % n]
        else:
            idx_full = idx
        picks.append(idx_full)
        cs.append(counts.reshape(-1)[idx])
    first = group[0][0]
    if first.fused_lane() and all(a.w.is_contiguous() and a.write_noise.is_contiguous() for a, *_ in group):
        scale = first.device_params.write_noise_std * first.device_params.dw_min  # one device model per group
        parts = [(a.w, a.write_noise, scale, idx.numpy(), c.to(a.w.dtype).numpy(), generator, a.loop_arrays())
                 for (a, _, _, generator, _), idx, c in zip(group, picks, cs)]
        if _compiled.counts_together(parts, first.pulse_model(), group[0][3]):
            return
    ws = [array.w.reshape(-1)[idx] for (array, *_), idx in zip(group, picks)]
    ts = [[t.reshape(-1)[idx] for t in array.tensors] for (array, *_), idx in zip(group, picks)]
    model = first.device_params.pulse_model(DeviceTensors(*(torch.cat(parts) for parts in zip(*ts))))
    new = signed_counts_update(torch.cat(ws), torch.cat(cs).to(ws[0].dtype), model, group[0][3])
    for (array, _, _, generator, _), idx, part in zip(group, picks, new.split([len(v) for v in ws])):
        if idx.numel() == 0:
            continue
        w_new = array.w.clone()
        w_new.view(-1)[idx] = part
        array.commit(w_new, generator)
