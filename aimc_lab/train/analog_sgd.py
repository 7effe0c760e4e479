"""``AnalogSGD``: pulsed updates for in-memory tiles, plain SGD for every digital parameter."""

from __future__ import annotations

from typing import Iterable, Union

import torch
from torch import nn

from aimc_lab.train.inmemory import AnalogContext

__all__ = ["AnalogSGD"]


class AnalogSGD(torch.optim.Optimizer):
    """SGD for models that mix in-memory tiles and digital parameters.

    ``AnalogSGD(model.parameters(), lr)`` or ``AnalogSGD(model, lr)``. For each tile's
    :class:`~aimc_lab.train.inmemory.AnalogContext` parameter ``step()`` calls ``tile.update(lr)`` (the
    algorithm's pulsed update with the stored (x, δ)); every other parameter gets
    p ← p − lr·(grad + weight_decay·p). Weight decay never touches the tiles.
    """

    def __init__(self, params: Union[Iterable, nn.Module], lr: float = 0.01, weight_decay: float = 0.0) -> None:
        if isinstance(params, nn.Module):
            params = params.parameters()
        if not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr < 0:
            raise ValueError(f"AnalogSGD.lr = {lr!r} is invalid; allowed: a number >= 0")
        if weight_decay < 0:
            raise ValueError(f"AnalogSGD.weight_decay = {weight_decay!r} is invalid; allowed: >= 0")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if isinstance(p, AnalogContext):
                    p.analog_tile.update(lr)
                    p.grad = None
                    continue
                if p.grad is None:
                    continue
                grad = p.grad if wd == 0 else p.grad + wd * p
                p.add_(grad, alpha=-lr)
        return loss
