"""Mixed precision (Nandakumar et al., Front. Neurosci. 2020; docs/physics.md §4).

χ += −η·δᵀx digitally (x, δ optionally quantized to ``n_x_bins``/``n_d_bins`` levels of their row's
abs-max, rounded half away from zero); every ``transfer_every`` updates n = trunc(χ/ε) pulses
(clipped to ±transfer_bl) go to C, ε = dw_min_C·transfer_lr, and χ ← χ − n·ε. χ is the buffer ``H``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from aimc_lab.kernels import threshold
from aimc_lab.kernels.analog_mvm.reference import round_half_away
from aimc_lab.train.inmemory.registry import Algorithm, register_algorithm

__all__ = ["MixedPrecision", "quantize_rows"]


def quantize_rows(v: Tensor, bins: int) -> Tensor:
    """Symmetric quantization of each row to ``bins`` levels of its abs-max (0 = off)."""
    if bins <= 0:
        return v
    scale = v.abs().amax(dim=1, keepdim=True).clamp(min=1e-30) / bins
    return round_half_away(v / scale) * scale


@register_algorithm
class MixedPrecision(Algorithm):
    name = "mixed-precision"
    aliases = ("mp", "mixed_precision")
    uses = frozenset({"transfer_lr", "n_x_bins", "n_d_bins"})

    def build(self, tile, generator):
        tile.register_buffer("H", torch.zeros(tile.out_features, tile.in_features))

    def reset(self, tile):
        tile.H.zero_()

    def check_rows(self, tile, rows, lr):
        if not rows:
            return
        # |Δχ| <= lr·Σ_m max|δ_m|·max|x_m| (quantization keeps each row's abs-max)
        total = sum(threshold.row_bound(x, d) for x, d in rows)  # in float64: the products cannot overflow
        limit = torch.finfo(tile.H.dtype).max
        low, high = torch.aminmax(tile.H)  # max|χ| in one pass
        if not (lr < limit and lr * total + max(-float(low), float(high)) < limit):
            raise ValueError(f"lr = {lr!r} is invalid for {tile._label()}: the mixed-precision accumulator "
                             f"would overflow (lr·Σ|δ||x| = {lr * total:.3g}); allowed: lr·Σ|δ||x| + max|χ| "
                             f"< {limit:.3g}")

    def update(self, tile, x, d, lr):
        p = self.params
        tile.H.addmm_(quantize_rows(d, p.n_d_bins).t(), quantize_rows(x, p.n_x_bins), alpha=-lr)
        if (int(tile.update_count) + 1) % p.transfer_every:
            return
        step = p.device.dw_min * p.transfer_lr
        if threshold.serves(tile.H):  # the same operations in one compiled pass, only the devices with pulses
            idx, n = threshold.threshold_transfer(tile.H, step, p.transfer_bl)
            if idx.numel():
                tile.write_flat_counts(idx, n)
            return
        n = torch.trunc(tile.H / step).clamp_(-p.transfer_bl, p.transfer_bl)
        if bool(n.any()):
            tile.write_counts(None, n)
            tile.H.sub_(n * step)
