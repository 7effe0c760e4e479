"""In-memory SGD: the stochastic pulse-train update ΔW = −η·δᵀx on the single array C
(Gokmen & Vlasov 2016; docs/physics.md §4)."""

from __future__ import annotations

from aimc_lab.train.inmemory.registry import Algorithm, register_algorithm

__all__ = ["SGD"]


@register_algorithm
class SGD(Algorithm):
    """Pulse-train update of C with η, ``desired_bl`` (31), update and BL management."""

    name = "sgd"

    def update(self, tile, x, d, lr):
        p = self.params
        tile.C.pulsed_update(x, d, lr, desired_bl=p.desired_bl, update_management=p.update_management,
                             bl_management=p.bl_management, generator=tile.generator)
