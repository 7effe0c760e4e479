"""``AnalogSGD``: pulsed updates for in-memory tiles, plain SGD for every digital parameter.

Importing this module also makes every other torch optimizer refuse, at its first ``step()``, to step
a model with in-memory tiles: their weights change only by pulses, so such a step would silently
train nothing.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Union

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from aimc_lab.kernels.finite import all_finite
from aimc_lab.train.inmemory import AnalogContext
from aimc_lab.train.inmemory.transfer import PendingCounts

__all__ = ["AnalogSGD"]


def _check_hyper(name: str, value: Any) -> None:
    allowed = "allowed: a finite number >= 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"AnalogSGD.{name} = {value!r} is invalid ({type(value).__name__}); {allowed}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"AnalogSGD.{name} = {value!r} is invalid; {allowed}")


class AnalogSGD(torch.optim.Optimizer):
    """SGD for models that mix in-memory tiles and digital parameters.

    ``AnalogSGD(model.parameters(), lr)`` or ``AnalogSGD(model, lr)``. For each tile's
    :class:`~aimc_lab.train.inmemory.AnalogContext` parameter ``step()`` calls ``tile.update(lr)`` (the
    algorithm's pulsed update with the stored (x, δ)); every other parameter gets
    p ← p − lr·(grad + weight_decay·p). Weight decay never touches the tiles.

    The digitally decided writes into C (buffered transfers, mixed precision) of all tiles are applied
    together after every tile's algorithm ran, one kernel call per device model (equal in law to one
    call per tile; see :class:`~aimc_lab.train.inmemory.transfer.PendingCounts`), then each tile's
    decay/diffusion.

    ``step()`` validates everything first (each group's ``lr``/``weight_decay``, every tile's stored
    rows, every digital gradient finite) and only then changes anything: on an error the model is as
    before. ``zero_grad()`` also discards the tiles' stored rows.
    """

    def __init__(self, params: Union[Iterable, nn.Module], lr: float = 0.01, weight_decay: float = 0.0) -> None:
        if isinstance(params, nn.Module):
            params = params.parameters()
        _check_hyper("lr", lr)
        _check_hyper("weight_decay", weight_decay)
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

    def add_param_group(self, param_group: dict) -> None:
        if isinstance(param_group, dict):
            for name in ("lr", "weight_decay"):
                _check_hyper(name, param_group.get(name, self.defaults[name]))
        super().add_param_group(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for p in self._params():
            if isinstance(p, AnalogContext):
                p.analog_tile.discard_rows()

    def _params(self):
        return (p for group in self.param_groups for p in group["params"])

    def _check_step(self) -> None:
        for group in self.param_groups:
            _check_hyper("lr", group["lr"])
            _check_hyper("weight_decay", group["weight_decay"])
        for group in self.param_groups:
            for p in group["params"]:
                if isinstance(p, AnalogContext):
                    p.analog_tile.check_update(group["lr"])
                    continue
                if p.grad is None:
                    continue
                if not all_finite(p.grad):
                    raise ValueError(f"AnalogSGD.step: the gradient of a digital parameter of shape "
                                     f"{tuple(p.shape)} contains NaN or inf; nothing was updated (likely an overflow: "
                                     "the inputs or the loss are too large for the dtype; scale them down)")
                for name in ("lr", "weight_decay"):
                    if p.is_floating_point() and group[name] > torch.finfo(p.dtype).max:
                        raise ValueError(f"AnalogSGD.{name} = {group[name]!r} is invalid for a {p.dtype} "
                                         f"parameter; allowed: <= {torch.finfo(p.dtype).max:.4g}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._check_step()
        writes = PendingCounts()  # the tiles' digitally decided writes into C, applied together below
        updated = []
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if isinstance(p, AnalogContext):
                    if p.analog_tile.apply_update(lr, writes):  # validated by _check_step above
                        updated.append(p.analog_tile)
                    p.grad = None
                    continue
                if p.grad is None:
                    continue
                grad = p.grad if wd == 0 else p.grad + wd * p
                p.add_(grad, alpha=-lr)
        writes.apply()
        for tile in updated:
            tile.finish_update()
        return loss


def _refuse_in_memory_tiles(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    """Step pre-hook of every torch optimizer but AnalogSGD: refuse parameters of in-memory tiles."""
    if isinstance(optimizer, AnalogSGD):
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            if isinstance(p, AnalogContext):
                name = type(optimizer).__name__
                raise TypeError(f"{name} cannot train an in-memory tile ({p.analog_tile.extra_repr()}): its weights "
                                f"change only by pulses, which aimc_lab.train.AnalogSGD applies (a {name} "
                                "step would train nothing). Use AnalogSGD(model, lr=...) for models with "
                                "in-memory tiles.")


register_optimizer_step_pre_hook(_refuse_in_memory_tiles)
