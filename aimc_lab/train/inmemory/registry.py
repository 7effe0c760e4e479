"""The in-memory training algorithms: their shared interface and the registry keyed on their names.

An algorithm is a small strategy class (one module per algorithm in this package). The tile
(:class:`~aimc_lab.train.inmemory.tile.InMemoryTile`) owns every tensor: the algorithm declares what
it needs in :meth:`Algorithm.build` (extra device arrays such as the fast array ``A``, digital
buffers such as ``H``), so checkpoints keep one flat layout (``C.w``, ``A.w``, ``H``, ...), and acts
on it in :meth:`Algorithm.update`. Adding an algorithm is one new module with a class decorated by
:func:`register_algorithm` plus its import in ``aimc_lab/train/inmemory/__init__.py``.

Options of :class:`~aimc_lab.train.inmemory.parameters.InMemoryTrainingParameters` that only some
algorithms read are listed in :data:`OPTIONAL_FIELDS` with their "off" value; an algorithm names the
ones it reads in ``uses`` and their defaults in ``defaults`` (the published settings,
docs/physics.md §4). A field left ``None`` takes the algorithm's default; a field the algorithm does
not use must keep its off value, so that nothing configured is silently ignored.
"""

from __future__ import annotations

from typing import ClassVar, Dict, FrozenSet, Tuple

from torch import Tensor

__all__ = ["Algorithm", "register_algorithm", "unregister_algorithm", "algorithm_class", "algorithm_names",
           "canonical_name", "OPTIONAL_FIELDS"]

#: Options used by some algorithms only, with the value they must keep elsewhere.
OPTIONAL_FIELDS: Dict[str, object] = {
    "fast_device": None, "fast_lr": 1.0, "scale_fast_lr": False, "auto_scale": False,
    "transfer_lr": 1.0, "scale_transfer_lr": False, "transfer_per_sample": False,
    "momentum": 0.0, "forget_buffer": False, "auto_granularity": 0.0, "in_chop_prob": 0.1, "tail_weighting": 1.0,
    "n_x_bins": 0, "n_d_bins": 0,
}


class Algorithm:
    """One in-memory training algorithm (a strategy): what it stores on the tile and how it updates.

    Class attributes: ``name`` (the ``algorithm`` string), ``aliases``, ``uses`` (the optional fields
    it reads, see :data:`OPTIONAL_FIELDS`), ``defaults`` (field -> default for fields left None).
    An instance holds the tile's :class:`InMemoryTrainingParameters` (``self.params``).
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[Tuple[str, ...]] = ()
    uses: ClassVar[FrozenSet[str]] = frozenset()
    defaults: ClassVar[Dict[str, object]] = {}

    def __init__(self, params) -> None:
        self.params = params

    @classmethod
    def check_params(cls, params) -> None:
        """Cross-field checks of this algorithm (raise ValueError naming the field)."""

    @classmethod
    def config_defaults(cls, device) -> dict:
        """Defaults that depend on the device, filled in by ``training_config`` (e.g. a fast array with
        a reference device)."""
        return {}

    def build(self, tile, generator) -> None:
        """Create the algorithm's state on ``tile`` (``tile.C`` exists; arrays and buffers go on the tile)."""

    def reset(self, tile) -> None:
        """Clear the algorithm's state after ``tile.set_weights`` programmed C directly."""

    def check_rows(self, tile, rows, lr: float) -> None:
        """Extra validation of the stored rows [(x, δ), ...] before ``update`` (raise ValueError)."""

    def update(self, tile, x: Tensor, d: Tensor, lr: float) -> None:
        """One update with the rows x [M, K], δ [M, N] (all rows since the last update, in order)."""
        raise NotImplementedError


_REGISTRY: Dict[str, type] = {}
_ALIASES: Dict[str, str] = {}


def register_algorithm(cls: type) -> type:
    """Class decorator: make ``cls`` (an :class:`Algorithm`) available as ``algorithm=cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, Algorithm)) or not cls.name:
        raise TypeError(f"register_algorithm: cls must be an Algorithm subclass with a name, got {cls!r}")
    unknown = set(cls.uses) - set(OPTIONAL_FIELDS)
    if unknown or set(cls.defaults) - set(cls.uses) - {"desired_bl", "transfer_bl"}:
        raise ValueError(f"register_algorithm: {cls.__name__} uses unknown fields {sorted(unknown)} or has "
                         f"defaults for fields it does not use; allowed: {sorted(OPTIONAL_FIELDS)}")
    _REGISTRY[cls.name] = cls
    for alias in cls.aliases:
        _ALIASES[alias] = cls.name
    return cls


def unregister_algorithm(name: str) -> None:
    """Remove an algorithm (and its aliases) from the registry (tests of user algorithms)."""
    cls = _REGISTRY.pop(name)
    for alias in cls.aliases:
        _ALIASES.pop(alias, None)


def algorithm_names() -> Tuple[str, ...]:
    """The registered algorithm names, in registration order."""
    return tuple(_REGISTRY)


def canonical_name(name: str) -> str:
    """``name`` or its alias resolved (case-insensitive); unknown names are returned lower-cased."""
    key = name.lower()
    return _ALIASES.get(key, key)


def algorithm_class(name: str) -> type:
    """The registered class of ``name`` (KeyError if none)."""
    return _REGISTRY[name]
