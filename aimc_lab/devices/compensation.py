"""Drift compensation (docs/physics.md §2): rescale a tile's outputs by ref / current read-out.

After programming, each physical tile reads its weights out through the full noisy forward with
one-hot inputs (the identity); ``reduce`` condenses that read-out into a reference. At each later
time the same read-out gives the current value, and outputs are multiplied by
α(t) = ref / max(current, 1e-4). Subclass :class:`DriftCompensation` and override ``reduce`` for
another rule; pass the instance to one tile (``AnalogTile(..., compensation=...)``), or register it
(:func:`register_compensation`) and name it in ``DriftCompensationParameters.kind`` for every tile of a
network (docs/extending.md).
"""

from __future__ import annotations

from typing import Callable, List

import torch
from torch import Tensor

from aimc_lab import config
from aimc_lab.devices._kinds import KindRegistry

__all__ = ["DriftCompensation", "GlobalDriftCompensation", "PerColumnDriftCompensation",
           "make_compensation", "register_compensation", "unregister_compensation"]


class DriftCompensation:
    """No compensation: α = 1."""

    floor = 1e-4

    def reduce(self, readout: Tensor) -> Tensor:
        """Condense one physical tile's read-out [K_s, N] into [N] (or a broadcastable scalar)."""
        return torch.ones(readout.shape[-1], dtype=readout.dtype, device=readout.device)

    def reference(self, readouts: List[Tensor]) -> Tensor:
        """[S, N] references from the per-slice read-outs right after programming."""
        return torch.stack([self.reduce(r).expand(r.shape[-1]) for r in readouts])

    def alpha(self, ref: Tensor, readouts: List[Tensor]) -> Tensor:
        """[S, N] compensation factors ref / max(current, floor)."""
        return ref / self.reference(readouts).clamp(min=self.floor)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GlobalDriftCompensation(DriftCompensation):
    """One factor per physical tile: the mean absolute read-out over all its weights."""

    def reduce(self, readout: Tensor) -> Tensor:
        return readout.abs().mean()


class PerColumnDriftCompensation(DriftCompensation):
    """One factor per output column of each physical tile."""

    def reduce(self, readout: Tensor) -> Tensor:
        return readout.abs().mean(dim=0)


_BUILTIN = {"none": DriftCompensation, "global": GlobalDriftCompensation, "per_column": PerColumnDriftCompensation}
_USER = KindRegistry(config.DRIFT_COMPENSATION, tuple(_BUILTIN), DriftCompensation, "compensation")


def register_compensation(kind: str, factory: Callable[[], DriftCompensation]) -> None:
    """Make ``kind`` a valid ``DriftCompensationParameters.kind``, built by ``factory()`` (usually the
    :class:`DriftCompensation` subclass). Registering a kind again replaces it; a config naming a kind
    not registered in this process is refused when it is built or loaded."""
    _USER.register(kind, factory)


def unregister_compensation(kind: str) -> None:
    """Forget a registered kind (configs naming it are refused from then on)."""
    _USER.unregister(kind)


def make_compensation(kind: str) -> DriftCompensation:
    """The compensation named in ``DriftCompensationParameters.kind`` (built-in or registered)."""
    if kind in _BUILTIN:
        return _BUILTIN[kind]()
    return _USER.build(kind)
