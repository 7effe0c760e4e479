"""aimc-lab: analog in-memory computing for neural networks, in PyTorch, for teaching and research.

The public surface::

    import aimc_lab as al
    model = al.convert_to_analog(torch_model, al.presets.standard_hwa())
    al.program(model); al.drift(model, 3600.0)
    al.evaluate_over_time(model, (x, y), times=[1, 3600, 86400])
"""

from aimc_lab import _malloc  # noqa: F401  (allocator tuning first; see its docstring)
from aimc_lab import config, data, presets
from aimc_lab.config import (AnalogConfig, ClipParameters, DriftCompensationParameters, InputRangeParameters,
                             IOParameters, MappingParameters, NoiseModelParameters, RemapParameters,
                             WeightModifierParameters)
from aimc_lab.devices.base import NoiseModel
from aimc_lab.devices.compensation import (DriftCompensation, GlobalDriftCompensation,
                                           PerColumnDriftCompensation)
from aimc_lab.devices.pcm import PCMLikeNoise
from aimc_lab.inference import accuracy, drift, evaluate_over_time, program, tiles, unprogram
from aimc_lab.kernels import analog_mvm, backend
from aimc_lab.convert import (analog_summary, analog_tiles, convert_to_analog, convert_to_digital, load_checkpoint,
                              register_conversion, save_checkpoint)
from aimc_lab.nn import (AnalogConv1d, AnalogConv2d, AnalogGRU, AnalogGRUCell, AnalogLinear, AnalogLSTM,
                         AnalogLSTMCell, AnalogRNN, AnalogRNNCell, AnalogSequential)
from aimc_lab.tile import AnalogTile
from aimc_lab import devices, train  # noqa: E402  (subpackages, imported after the core they use)

__version__ = "0.1.0"

__all__ = [
    "config", "data", "presets", "devices", "train", "backend", "analog_mvm",
    "AnalogConfig", "IOParameters", "MappingParameters", "NoiseModelParameters", "DriftCompensationParameters",
    "WeightModifierParameters", "ClipParameters", "RemapParameters", "InputRangeParameters",
    "NoiseModel", "PCMLikeNoise", "DriftCompensation", "GlobalDriftCompensation", "PerColumnDriftCompensation",
    "AnalogTile", "AnalogLinear", "AnalogConv1d", "AnalogConv2d", "AnalogRNN", "AnalogLSTM", "AnalogGRU",
    "AnalogRNNCell", "AnalogLSTMCell", "AnalogGRUCell", "AnalogSequential",
    "convert_to_analog", "convert_to_digital", "analog_summary", "analog_tiles", "register_conversion",
    "save_checkpoint", "load_checkpoint",
    "program", "drift", "unprogram", "accuracy", "evaluate_over_time", "tiles",
]
