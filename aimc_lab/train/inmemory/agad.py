"""AGAD (Rasch et al., 2023; AIHWKIT's DynamicTransferCompound; docs/physics.md §4).

Regular choppers: c_k flips after every P = max(round(1/in_chop_prob), 2) reads of column k. For each
column a running mean μ_k of A's reads in the current chopper period, weighted toward the period's
tail: μ ← μ + α_s·(r − μ), α_s = max(1/(s + 1), tail_weighting/P) for read s = 0..P−1 (a plain mean
that turns into an exponential average over the last P/tail_weighting reads). At each switch μ_k is
frozen as the reference ref_k of the next period. Every read after the first period adds
H[:, k] += transfer_lr·η·c_k·(μ_k − ref_k)/dw_min_C, then the TTv2 threshold transfer (one pulse,
buffer reset). A's offset cancels in μ − ref, so A needs no reference device; no significance gate.
A's update is auto-scaled as in c-TTv2.
"""

from __future__ import annotations

import torch

from aimc_lab.train.inmemory import transfer
from aimc_lab.train.inmemory.registry import Algorithm, register_algorithm
from aimc_lab.train.inmemory.ttv2 import BUFFERED_DEFAULTS, BUFFERED_USES, buffer_rate, buffered_update

__all__ = ["AGAD"]


@register_algorithm
class AGAD(Algorithm):
    name = "agad"
    uses = BUFFERED_USES | {"in_chop_prob", "tail_weighting"}
    defaults = {**BUFFERED_DEFAULTS, "fast_lr": 0.1, "auto_scale": True, "in_chop_prob": 0.1,
                "tail_weighting": 5.0}

    @classmethod
    def check_params(cls, params):
        if params.in_chop_prob == 0:
            raise ValueError(f"InMemoryTrainingParameters.in_chop_prob = {params.in_chop_prob!r} is invalid; "
                             "allowed: (0, 1] with algorithm 'agad' (its chopper period is 1/in_chop_prob reads)")

    def build(self, tile, generator):
        transfer.build_fast_array(tile, generator, self.params.auto_scale)
        transfer.build_buffer(tile)
        shape = (tile.out_features, tile.in_features)
        tile.register_buffer("chopper", torch.ones(tile.in_features))
        tile.register_buffer("period_reads", torch.zeros(tile.in_features, dtype=torch.long))
        tile.register_buffer("run_mean", torch.zeros(shape))
        tile.register_buffer("ref_mean", torch.zeros(shape))
        tile.register_buffer("has_ref", torch.zeros(tile.in_features, dtype=torch.bool))

    def reset(self, tile):
        tile.A.set_weights(torch.zeros_like(tile.A.w))
        for buf in (tile.H, tile.period_reads, tile.run_mean, tile.ref_mean, tile.has_ref):
            buf.zero_()

    def update(self, tile, x, d, lr):
        p = self.params
        cols, reads = buffered_update(tile, x, d, lr, tile.chopper)
        if reads is None:
            return
        period = p.chop_period
        s = tile.period_reads[cols].to(reads.dtype)  # read index inside the period [n]
        alpha = torch.maximum(1.0 / (s + 1), torch.full_like(s, min(p.tail_weighting / period, 1.0)))
        mean = tile.run_mean[:, cols]
        mean += alpha * (reads - mean)
        tile.run_mean[:, cols] = mean
        live = tile.has_ref[cols].to(reads.dtype)
        tile.H[:, cols] += buffer_rate(p, lr, tile.in_features) * tile.chopper[cols] * live * (mean - tile.ref_mean[:, cols])
        tile.period_reads[cols] += 1
        done = cols[tile.period_reads[cols] >= period]
        if done.numel():
            tile.ref_mean[:, done] = tile.run_mean[:, done]
            tile.has_ref[done] = True
            tile.chopper[done] = -tile.chopper[done]
            tile.period_reads[done] = 0
        transfer.buffer_transfer(tile, cols)
