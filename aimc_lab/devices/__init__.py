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

import re
from typing import Callable, Dict, Tuple

from aimc_lab import config as _config
from aimc_lab.config import NoiseModelParameters
from aimc_lab.devices.base import NoiseModel
from aimc_lab.devices.pcm import PCMLikeNoise

__all__ = ["NoiseModel", "PCMLikeNoise", "make_noise_model", "register_noise_model", "unregister_noise_model",
           "noise_model_kinds"]

#: The kinds the library implements itself (never replaced by a registration).
BUILTIN_NOISE_MODELS = ("none", "pcm", "reram")
_USER_NOISE_MODELS: Dict[str, Callable[[NoiseModelParameters], NoiseModel]] = {}
_KIND_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")


def check_kind_name(kind, builtin: Tuple[str, ...], where: str) -> str:
    """A registrable kind name: a str of letters, digits, '_' or '-' (starting with a letter, at most 64
    characters) that is not one of ``builtin``."""
    if not isinstance(kind, str):
        raise TypeError(f"{where}: kind must be a str such as 'my_model', got {type(kind).__name__} {kind!r}")
    if not _KIND_PATTERN.fullmatch(kind):
        raise ValueError(f"{where}: kind = {kind!r} is invalid; allowed: a name of letters, digits, '_' or '-' "
                         "starting with a letter (at most 64 characters)")
    if kind in builtin:
        raise ValueError(f"{where}: kind = {kind!r} is a built-in kind; allowed: any other name (built-in: "
                         + ", ".join(map(repr, builtin)) + ")")
    return kind


def register_noise_model(kind: str, factory: Callable[[NoiseModelParameters], NoiseModel]) -> None:
    """Make ``kind`` a valid ``NoiseModelParameters.kind``, built by ``factory(params) -> NoiseModel``.

    ``factory`` is usually the :class:`NoiseModel` subclass itself (its ``__init__`` takes the
    :class:`~aimc_lab.config.NoiseModelParameters`, so ``g_max`` and the noise scales of the config
    reach it). Registering a kind again replaces its factory (re-running a notebook cell). A config
    naming a kind that is not registered in this process is refused when it is built or loaded
    (``from_dict``, ``load_checkpoint``): register the kind before loading.
    """
    check_kind_name(kind, BUILTIN_NOISE_MODELS, "register_noise_model")
    if not callable(factory):
        raise TypeError(f"register_noise_model: factory must be callable (a NoiseModel subclass or a function "
                        f"params -> NoiseModel), got {type(factory).__name__} {factory!r:.60}")
    _USER_NOISE_MODELS[kind] = factory
    if kind not in _config.NOISE_MODELS:
        _config.NOISE_MODELS.append(kind)


def unregister_noise_model(kind: str) -> None:
    """Forget a registered kind (configs naming it are refused from then on)."""
    if kind not in _USER_NOISE_MODELS:
        raise ValueError(f"unregister_noise_model: kind = {kind!r} is not registered; registered: "
                         + (", ".join(map(repr, _USER_NOISE_MODELS)) or "none"))
    del _USER_NOISE_MODELS[kind]
    _config.NOISE_MODELS.remove(kind)


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
    factory = _USER_NOISE_MODELS.get(params.kind)
    if factory is None:
        raise ValueError(f"make_noise_model: noise model kind = {params.kind!r} is not registered; allowed: "
                         + ", ".join(map(repr, noise_model_kinds())) + " (register_noise_model adds one)")
    model = factory(params)
    if not isinstance(model, NoiseModel):
        raise TypeError(f"make_noise_model: the factory registered for kind {params.kind!r} returned "
                        f"{type(model).__name__}; allowed: a NoiseModel (subclass) instance")
    return model
