"""AnalogSequential, and finding the analog tiles and layers of any model.

A *tile* is an :class:`~aimc_lab.tile.AnalogTile` (programmable: program / drift / unprogram) or an
in-memory-training :class:`~aimc_lab.train.inmemory.InMemoryTile` (what ``make_tile`` returns); an
*analog layer* is a module that owns tiles as direct children (AnalogLinear, AnalogConv1d/2d, the
recurrent cells; a recurrent layer owns its tiles through its cells).
"""

from __future__ import annotations

from typing import Iterator, Optional, Tuple

import torch
from torch import nn

from aimc_lab import _registry
from aimc_lab.tile import AnalogTile, check_finite_state

__all__ = ["AnalogSequential", "tile_types", "named_analog_tiles", "named_analog_layers", "analog_tiles",
           "programmable_tiles"]


def tile_types() -> Tuple[type, ...]:
    """The module types that are analog tiles (the types ``make_tile`` returns): AnalogTile and every
    training tile registered in :mod:`aimc_lab._registry`."""
    return (AnalogTile, *_registry.training_tile_classes())


def named_analog_tiles(module: nn.Module) -> Iterator[Tuple[str, nn.Module]]:
    """Every tile inside ``module`` as (qualified name, tile), in ``named_modules`` order."""
    types = tile_types()
    for name, sub in module.named_modules():
        if isinstance(sub, types):
            yield name, sub


def named_analog_layers(module: nn.Module) -> Iterator[Tuple[str, nn.Module]]:
    """Every module that owns tiles as direct children, as (qualified name, layer)."""
    types = tile_types()
    for name, sub in module.named_modules():
        if not isinstance(sub, types) and any(isinstance(c, types) for c in sub.children()):
            yield name, sub


def analog_tiles(module: nn.Module) -> Iterator[nn.Module]:
    """Every tile inside ``module`` (programmable AnalogTiles and in-memory-training tiles)."""
    return (tile for _, tile in named_analog_tiles(module))


def programmable_tiles(module: nn.Module) -> Iterator[AnalogTile]:
    """Every AnalogTile inside ``module``: the tiles that are programmed, drift and get HWA training."""
    return (tile for tile in analog_tiles(module) if isinstance(tile, AnalogTile))


class AnalogSequential(nn.Sequential):
    """``nn.Sequential`` with helpers that act on every analog tile inside it."""

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        check_finite_state(state_dict, prefix)  # the whole model, before any of its layers is loaded
        super()._load_from_state_dict(state_dict, prefix, *args)

    def analog_layers(self) -> Iterator[nn.Module]:
        """The modules that own analog tiles (for recurrent layers: their cells)."""
        return (layer for _, layer in named_analog_layers(self))

    def analog_tiles(self) -> Iterator[nn.Module]:
        """Every analog tile inside (also in-memory-training tiles)."""
        return analog_tiles(self)

    def _programmable(self) -> Iterator[AnalogTile]:
        return programmable_tiles(self)

    def program(self, generator: Optional[torch.Generator] = None) -> None:
        """Program every AnalogTile (programming noise, drift exponents; docs/physics.md §2)."""
        for tile in self._programmable():
            tile.program(generator)

    def drift(self, t_inference: float, generator: Optional[torch.Generator] = None) -> None:
        """Drift every AnalogTile to ``t_inference`` seconds after programming (all must be programmed)."""
        for tile in self._programmable():
            tile.drift(t_inference, generator)

    def unprogram(self) -> None:
        """Return every AnalogTile to its trained weights."""
        for tile in self._programmable():
            tile.unprogram()
