"""Device physics as pure functions and small model objects.

* :mod:`.base` – the inference noise-model interface (three hooks) and weight ↔ conductance mapping
* :mod:`.pcm` – the statistical PCM model; :mod:`.reram` – the ReRAM model
* :mod:`.compensation` – drift compensation
* :mod:`.pulsed` – device update-response models for in-memory training; :mod:`.fitting` – fits

A user's own noise model reaches a whole network through the config: register it under a name, then
name it in ``NoiseModelParameters.kind``; every tile that ``convert_to_analog`` (or any analog layer)
builds from that config gets one, and checkpoints record the name (docs/extending.md)::

    al.devices.register_noise_model("my_reram", MyReRAM)        # MyReRAM(params) -> NoiseModel
    config = al.config.replace_path(al.AnalogConfig(), "noise_model.kind", "my_reram")
    model = al.convert_to_analog(torch_model, config)
"""

from __future__ import annotations

from typing import Callable, Tuple

from aimc_lab import config as _config
from aimc_lab.config import NoiseModelParameters
from aimc_lab.devices._kinds import KindRegistry
from aimc_lab.devices.base import NoiseModel
from aimc_lab.devices.pcm import PCMLikeNoise

__all__ = ["NoiseModel", "PCMLikeNoise", "make_noise_model", "register_noise_model", "unregister_noise_model",
           "noise_model_kinds"]

#: The kinds the library implements itself (never replaced by a registration).
BUILTIN_NOISE_MODELS = ("none", "pcm", "reram")
_USER_NOISE_MODELS = KindRegistry(_config.NOISE_MODELS, BUILTIN_NOISE_MODELS, NoiseModel, "noise_model")


def register_noise_model(kind: str, factory: Callable[[NoiseModelParameters], NoiseModel]) -> None:
    """Make ``kind`` a valid ``NoiseModelParameters.kind``, built by ``factory(params) -> NoiseModel``.

    ``factory`` is usually the :class:`NoiseModel` subclass itself (its ``__init__`` takes the
    :class:`~aimc_lab.config.NoiseModelParameters`, so ``g_max`` and the noise scales of the config
    reach it). Registering a kind again replaces its factory (re-running a notebook cell). A config
    naming a kind that is not registered in this process is refused when it is built or loaded
    (``from_dict``, ``load_checkpoint``): register the kind before loading.
    """
    _USER_NOISE_MODELS.register(kind, factory)


def unregister_noise_model(kind: str) -> None:
    """Forget a registered kind (configs naming it are refused from then on)."""
    _USER_NOISE_MODELS.unregister(kind)


_SUBMODULES = ("base", "pcm", "reram", "compensation", "pulsed", "fitting")


def __getattr__(name: str):
    """``aimc_lab.devices.pulsed`` (and the other submodules) on first use, as after an explicit import."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def noise_model_kinds() -> Tuple[str, ...]:
    """Every valid ``NoiseModelParameters.kind``: the built-in ones, then the registered ones."""
    return tuple(_config.NOISE_MODELS)


def make_noise_model(params: NoiseModelParameters) -> NoiseModel:
    """The noise model named by ``params.kind`` ("none", "pcm", "reram", or a registered kind)."""
    if not isinstance(params, NoiseModelParameters):
        raise TypeError(f"make_noise_model: params must be a NoiseModelParameters, got {type(params).__name__} "
                        f"{params!r}")
    if params.kind == "pcm":
        return PCMLikeNoise(params)
    if params.kind == "reram":
        from aimc_lab.devices.reram import ReRAMLikeNoise

        return ReRAMLikeNoise(params)
    if params.kind == "none":
        return NoiseModel(params.g_max)
    return _USER_NOISE_MODELS.build(params.kind, params)
