"""Chopped TTv2 (Rasch et al., 2023; docs/physics.md §4).

As TTv2, but input j carries a chopper c_j ∈ {±1}: A is updated with (c ⊙ x), the read of column k is
multiplied by c_k before entering H, and c_k flips with probability ``in_chop_prob`` (0.1) after each
read of column k. A has no reference device (the choppers cancel its offset in H). A's update is
auto-scaled (``auto_scale``): its rate is fast_lr (0.1) × desired_bl·dw_min_A/(x̄·d̄), with running
means x̄, d̄ of the rows' max |x| and max |δ|.
"""

from __future__ import annotations

import torch

from aimc_lab.train.inmemory import transfer
from aimc_lab.train.inmemory.registry import Algorithm, register_algorithm
from aimc_lab.train.inmemory.ttv2 import BUFFERED_DEFAULTS, BUFFERED_USES, buffer_rate, buffered_update

__all__ = ["ChoppedTTv2"]


@register_algorithm
class ChoppedTTv2(Algorithm):
    name = "c-ttv2"
    aliases = ("chopped-ttv2", "cttv2")
    uses = BUFFERED_USES | {"in_chop_prob"}
    defaults = {**BUFFERED_DEFAULTS, "fast_lr": 0.1, "auto_scale": True, "in_chop_prob": 0.1}

    def build(self, tile, generator):
        transfer.build_fast_array(tile, generator, self.params.auto_scale)
        transfer.build_buffer(tile)
        tile.register_buffer("chopper", torch.ones(tile.in_features))

    def reset(self, tile):
        tile.A.set_weights(torch.zeros_like(tile.A.w))
        tile.H.zero_()

    def update(self, tile, x, d, lr):
        cols, reads = buffered_update(tile, x, d, lr, tile.chopper)
        if reads is None:
            return
        tile.H[:, cols] += buffer_rate(self.params, lr, tile.in_features) * reads * tile.chopper[cols]
        transfer.chopper_flip(tile, cols)
        transfer.buffer_transfer(tile, cols)
