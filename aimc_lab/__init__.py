"""aimc-lab: analog in-memory computing for neural networks, in PyTorch, for teaching and research.

The public surface::

    import aimc_lab as al
    model = al.convert_to_analog(torch_model, al.presets.standard_hwa())
    al.program(model); al.drift(model, 3600.0)
    al.evaluate_over_time(model, (x, y), times=[1, 3600, 86400])

``import aimc_lab`` loads only the plain-data configs (:mod:`aimc_lab.config`, :mod:`aimc_lab.presets`);
everything that needs torch is imported on first use of its name (PEP 562 module ``__getattr__``), so
the ``aimc-lab`` command answers ``--help`` at once. Config classes that other modules register
(pulsed devices, in-memory training) are found by :func:`aimc_lab.config.from_dict` all the same: a
lookup miss imports the registering modules.
"""

import importlib

from aimc_lab import _malloc  # noqa: F401  (allocator tuning first; see its docstring)
from aimc_lab import config, presets
from aimc_lab.config import (AnalogConfig, ClipParameters, DriftCompensationParameters, InputRangeParameters,
                             IOParameters, MappingParameters, NoiseModelParameters, RemapParameters,
                             WeightModifierParameters)

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first access; the module itself when the
# name is the submodule's)
_LAZY = {
    "data": "aimc_lab.data", "devices": "aimc_lab.devices", "train": "aimc_lab.train",
    "distributed": "aimc_lab.distributed", "cost": "aimc_lab.cost", "exercises": "aimc_lab.exercises",
    "backend": "aimc_lab.kernels.backend", "analog_mvm": "aimc_lab.kernels",
    "NoiseModel": "aimc_lab.devices.base", "PCMLikeNoise": "aimc_lab.devices.pcm",
    "DriftCompensation": "aimc_lab.devices.compensation",
    "GlobalDriftCompensation": "aimc_lab.devices.compensation",
    "PerColumnDriftCompensation": "aimc_lab.devices.compensation",
    **{name: "aimc_lab.inference" for name in ("accuracy", "drift", "evaluate_over_time", "program", "tiles",
                                               "unprogram")},
    **{name: "aimc_lab.convert" for name in ("analog_summary", "analog_tiles", "convert_to_analog",
                                             "convert_to_digital", "load_checkpoint", "register_conversion",
                                             "save_checkpoint")},
    **{name: "aimc_lab.nn" for name in ("AnalogConv1d", "AnalogConv2d", "AnalogGRU", "AnalogGRUCell",
                                        "AnalogLinear", "AnalogLSTM", "AnalogLSTMCell", "AnalogRNN",
                                        "AnalogRNNCell", "AnalogSequential")},
    "AnalogTile": "aimc_lab.tile",
}

__all__ = [
    "config", "data", "presets", "devices", "train", "distributed", "cost", "exercises", "backend", "analog_mvm",
    "AnalogConfig", "IOParameters", "MappingParameters", "NoiseModelParameters", "DriftCompensationParameters",
    "WeightModifierParameters", "ClipParameters", "RemapParameters", "InputRangeParameters",
    "NoiseModel", "PCMLikeNoise", "DriftCompensation", "GlobalDriftCompensation", "PerColumnDriftCompensation",
    "AnalogTile", "AnalogLinear", "AnalogConv1d", "AnalogConv2d", "AnalogRNN", "AnalogLSTM", "AnalogGRU",
    "AnalogRNNCell", "AnalogLSTMCell", "AnalogGRUCell", "AnalogSequential",
    "convert_to_analog", "convert_to_digital", "analog_summary", "analog_tiles", "register_conversion",
    "save_checkpoint", "load_checkpoint",
    "program", "drift", "unprogram", "accuracy", "evaluate_over_time", "tiles",
]


def __getattr__(name: str):
    """Import the module behind a public name on first use and keep the value (PEP 562)."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'aimc_lab' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.rsplit(".", 1)[-1] == name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
