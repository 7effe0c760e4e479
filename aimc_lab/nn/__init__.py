"""Analog layers: drop-in replacements of torch.nn layers whose weights live on analog tiles."""

from aimc_lab.nn.container import AnalogSequential, named_analog_layers, named_analog_tiles
from aimc_lab.nn.conv import AnalogConv1d, AnalogConv2d
from aimc_lab.nn.linear import AnalogLinear
from aimc_lab.nn.recurrent import (AnalogGRU, AnalogGRUCell, AnalogLSTM, AnalogLSTMCell, AnalogRNN,
                                   AnalogRNNCell)

__all__ = [
    "AnalogLinear",
    "AnalogConv1d",
    "AnalogConv2d",
    "AnalogRNNCell",
    "AnalogLSTMCell",
    "AnalogGRUCell",
    "AnalogRNN",
    "AnalogLSTM",
    "AnalogGRU",
    "AnalogSequential",
    "named_analog_tiles",
    "named_analog_layers",
]
