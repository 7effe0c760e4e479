"""Which tile class serves a training config: a registry keyed on the type of ``AnalogConfig.training``.

``make_tile`` and the tile finders (``aimc_lab.nn.container``) look tile classes up here instead of
importing the training package (which imports them: an upward import would hide a cycle). A
training package registers its tile when it is imported, which happens before any config of its
type can exist.
"""

from __future__ import annotations

from typing import Dict, Tuple

__all__ = ["register_tile", "tile_class", "training_tile_classes"]

_TILES: Dict[type, type] = {}


def register_tile(training_cls: type, tile_cls: type) -> None:
    """Tiles of ``tile_cls`` serve configs whose ``training`` is a ``training_cls`` (or a subclass)."""
    _TILES[training_cls] = tile_cls


def tile_class(training) -> type:
    """The tile class registered for the type of ``training`` (TypeError if none)."""
    for cls in type(training).__mro__:
        if cls in _TILES:
            return _TILES[cls]
    raise TypeError(f"no tile class is registered for training config type {type(training).__name__} "
                    "(aimc_lab._registry.register_tile)")


def training_tile_classes() -> Tuple[type, ...]:
    """Every registered training tile class."""
    return tuple(dict.fromkeys(_TILES.values()))
