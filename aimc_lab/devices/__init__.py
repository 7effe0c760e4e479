"""Device physics as pure functions and small model objects.

* :mod:`.base` – the inference noise-model interface (three hooks) and weight ↔ conductance mapping
* :mod:`.pcm` – the statistical PCM model; :mod:`.reram` – the ReRAM model
* :mod:`.compensation` – drift compensation
* :mod:`.pulsed` – device update-response models for in-memory training; :mod:`.fitting` – fits
"""

from aimc_lab.config import NoiseModelParameters
from aimc_lab.devices.base import NoiseModel
from aimc_lab.devices.pcm import PCMLikeNoise

__all__ = ["NoiseModel", "PCMLikeNoise", "make_noise_model"]


def make_noise_model(params: NoiseModelParameters) -> NoiseModel:
    """The noise model named by ``params.kind`` ("none", "pcm", "reram")."""
    if not isinstance(params, NoiseModelParameters):
        raise TypeError(f"make_noise_model: params must be a NoiseModelParameters, got {type(params).__name__} "
                        f"{params!r}")
    if params.kind == "pcm":
        return PCMLikeNoise(params)
    if params.kind == "reram":
        from aimc_lab.devices.reram import ReRAMLikeNoise

        return ReRAMLikeNoise(params)
    return NoiseModel(params.g_max)
