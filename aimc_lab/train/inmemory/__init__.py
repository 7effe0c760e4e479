"""In-memory training: tiles whose weights live on pulsed devices and change only by pulses (docs/physics.md §4).

:func:`training_config` builds an :class:`~aimc_lab.config.AnalogConfig` whose ``training`` field is an
:class:`InMemoryTrainingParameters`; :class:`InMemoryTile` is the tile the layers create for it
(``make_tile(out, in, config)``, through the tile registry of :mod:`aimc_lab._registry`);
:class:`~aimc_lab.train.analog_sgd.AnalogSGD` steps it.

One module per algorithm, each a small :class:`~aimc_lab.train.inmemory.registry.Algorithm` class
registered by name: :mod:`.sgd`, :mod:`.mixed_precision`, :mod:`.tiki_taka`, :mod:`.ttv2`,
:mod:`.c_ttv2`, :mod:`.agad` (shared transfer steps in :mod:`.transfer`). A new algorithm is one new
module plus one import line below.
"""

from aimc_lab import _registry
from aimc_lab.train.inmemory.parameters import InMemoryTrainingParameters, training_config
from aimc_lab.train.inmemory.registry import Algorithm, algorithm_names, register_algorithm, unregister_algorithm
from aimc_lab.train.inmemory.tile import AnalogContext, InMemoryFunction, InMemoryTile

# the registry: one line per algorithm module (each registers its class on import)
from aimc_lab.train.inmemory import sgd  # noqa: E402,F401
from aimc_lab.train.inmemory import tiki_taka  # noqa: E402,F401
from aimc_lab.train.inmemory import ttv2  # noqa: E402,F401
from aimc_lab.train.inmemory import c_ttv2  # noqa: E402,F401
from aimc_lab.train.inmemory import agad  # noqa: E402,F401
from aimc_lab.train.inmemory import mixed_precision  # noqa: E402,F401

#: The built-in algorithms (``algorithm_names()`` also lists algorithms registered later).
ALGORITHMS = algorithm_names()

_registry.register_tile(InMemoryTrainingParameters, InMemoryTile)

__all__ = ["ALGORITHMS", "InMemoryTrainingParameters", "training_config", "InMemoryTile", "InMemoryFunction",
           "AnalogContext", "Algorithm", "register_algorithm", "unregister_algorithm", "algorithm_names"]
