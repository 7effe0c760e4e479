"""Tiki-Taka v1 (Gokmen & Haensch, Front. Neurosci. 2020; docs/physics.md §4).

The fast array A gets the SGD pulses (rate η·fast_lr); per sample (``transfer_per_sample``, every
``transfer_every`` samples) one column k of A (cyclic) is read with a noisy forward of e_k
(``transfer_io``) and written into C with a pulse-train update x = e_k, δ = −A[:, k] at rate
transfer_lr·η (BL ``transfer_bl`` with management), i.e. E[ΔC[:, k]] = transfer_lr·η·A[:, k]. A has a
reference device at its symmetry point by default (Tiki-Taka needs A's symmetry point at zero).
"""

from __future__ import annotations

import dataclasses

import torch

from aimc_lab.train.inmemory import transfer
from aimc_lab.train.inmemory.registry import Algorithm, register_algorithm

__all__ = ["TikiTaka"]


@register_algorithm
class TikiTaka(Algorithm):
    name = "tiki-taka"
    aliases = ("tt", "ttv1", "tiki-taka-v1")
    uses = frozenset({"fast_device", "fast_lr", "scale_fast_lr", "transfer_lr", "scale_transfer_lr",
                      "transfer_per_sample"})
    defaults = {"fast_lr": 1.0, "scale_fast_lr": True, "transfer_lr": 1.0, "scale_transfer_lr": True,
                "transfer_per_sample": True}

    @classmethod
    def config_defaults(cls, device):
        return {"fast_device": dataclasses.replace(device, subtract_symmetry_point=True)}

    def build(self, tile, generator):
        transfer.build_fast_array(tile, generator, auto_scale=False)

    def reset(self, tile):
        tile.A.set_weights(torch.zeros_like(tile.A.w))

    def update(self, tile, x, d, lr):
        p = self.params
        transfer.fast_update(tile, x, d, lr)
        tile.A.after_update(tile.generator)
        cols = transfer.due_columns(tile, x.shape[0])
        if cols.numel() == 0:
            return
        reads = transfer.read_columns(tile, cols)  # [N, n]
        rate = p.transfer_lr * lr if p.scale_transfer_lr else p.transfer_lr
        transfer.column_pulsed_update(tile.C, cols, -reads.t(), rate, desired_bl=p.transfer_bl,
                                      generator=tile.generator)
