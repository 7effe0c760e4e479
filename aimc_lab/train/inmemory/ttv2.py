"""TTv2 (Gokmen, Front. Artif. Intell. 2021; docs/physics.md §4).

A is updated with the absolute rate ``fast_lr`` (pulse train, desired BL 5). Per sample one column k
of A (cyclic) is read and accumulated in the digital buffer H (units of C's step):
H[:, k] += transfer_lr·η·A[:, k]/dw_min_C; where |H| >= 1 one pulse (``transfer_bl`` 1) goes to C
and that entry of H is reset (``forget_buffer``, ``momentum`` 0).
"""

from __future__ import annotations

import dataclasses

import torch

from aimc_lab.train.inmemory import transfer
from aimc_lab.train.inmemory.registry import Algorithm, register_algorithm

__all__ = ["TTv2", "BUFFERED_USES", "BUFFERED_DEFAULTS"]

#: Options and published defaults shared by the buffered transfers (ttv2, c-ttv2, agad).
BUFFERED_USES = frozenset({"fast_device", "fast_lr", "scale_fast_lr", "auto_scale", "transfer_lr",
                           "scale_transfer_lr", "transfer_per_sample", "momentum", "forget_buffer",
                           "auto_granularity"})
BUFFERED_DEFAULTS = {"fast_lr": 1.0, "scale_fast_lr": False, "auto_scale": False, "transfer_lr": 1.0,
                     "scale_transfer_lr": True, "transfer_per_sample": True, "momentum": 0.0,
                     "forget_buffer": True, "desired_bl": 5, "transfer_bl": 1}


def buffered_update(tile, x, d, lr, chopper=None) -> torch.Tensor:
    """A's update (x chopped by ``chopper`` [K] if given) and the reads due now: (cols, reads [N, n])."""
    transfer.fast_update(tile, x if chopper is None else x * chopper, d, lr)
    tile.A.after_update(tile.generator)
    cols = transfer.due_columns(tile, x.shape[0])
    if cols.numel() == 0:
        return cols, None
    return cols, transfer.read_columns(tile, cols)


def buffer_rate(params, lr: float, in_features: int) -> float:
    """What one read of A adds to H per unit of A: transfer_lr (× η) / dw_min_C, divided by
    auto_granularity/(K·transfer_every) when ``auto_granularity`` > 0 (K = ``in_features``: one read of
    each column per K·transfer_every units of the transfer clock)."""
    rate = params.transfer_lr * lr if params.scale_transfer_lr else params.transfer_lr
    if params.auto_granularity > 0:
        rate *= in_features * params.transfer_every / params.auto_granularity
    return rate / params.device.dw_min


@register_algorithm
class TTv2(Algorithm):
    name = "ttv2"
    aliases = ("tt-v2",)
    uses = BUFFERED_USES
    defaults = BUFFERED_DEFAULTS

    @classmethod
    def config_defaults(cls, device):
        return {"fast_device": dataclasses.replace(device, subtract_symmetry_point=True)}

    def build(self, tile, generator):
        transfer.build_fast_array(tile, generator, self.params.auto_scale)
        transfer.build_buffer(tile)

    def reset(self, tile):
        tile.A.set_weights(torch.zeros_like(tile.A.w))
        tile.H.zero_()

    def update(self, tile, x, d, lr):
        cols, reads = buffered_update(tile, x, d, lr)
        if reads is None:
            return
        tile.H[:, cols] += buffer_rate(self.params, lr, tile.in_features) * reads
        transfer.buffer_transfer(tile, cols)
