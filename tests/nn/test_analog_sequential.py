"""AnalogSequential: finding layers and tiles, and program/drift/unprogram on all of them."""

import pytest
import torch
from torch import nn

from aimc_lab.config import AnalogConfig, NoiseModelParameters
from aimc_lab.nn import AnalogConv1d, AnalogLinear, AnalogLSTM, AnalogSequential

PCM = AnalogConfig(noise_model=NoiseModelParameters(kind="pcm"))


def _model():
    return AnalogSequential(AnalogConv1d(2, 3, 3, config=PCM), nn.ReLU(), nn.Flatten(),
                            AnalogLinear(3 * 6, 4, config=PCM))


def test_analog_layers_and_tiles():
    model = _model()
    assert [type(m).__name__ for m in model.analog_layers()] == ["AnalogConv1d", "AnalogLinear"]
    assert len(list(model.analog_tiles())) == 2
    rnn = AnalogSequential(AnalogLSTM(3, 4, num_layers=2))
    assert len(list(rnn.analog_layers())) == 2  # the two cells
    assert len(list(rnn.analog_tiles())) == 4


def test_program_drift_unprogram_reach_every_tile():
    torch.manual_seed(0)
    model = _model()
    tiles = list(model.analog_tiles())
    with pytest.raises(RuntimeError, match="program"):
        model.drift(10.0)
    model.program(torch.Generator().manual_seed(1))
    assert all(bool(t.programmed) for t in tiles)
    w0 = [t.w_read.clone() for t in tiles]
    model.drift(3600.0, torch.Generator().manual_seed(2))
    assert all(float(t.t_inference) == 3600.0 for t in tiles)
    # PCM drift lowers the conductances: the read weights shrink
    assert all(t.w_read.abs().sum() < w.abs().sum() for t, w in zip(tiles, w0))
    y = model(torch.randn(5, 2, 8))
    assert y.shape == (5, 4)
    model.unprogram()
    assert not any(bool(t.programmed) for t in tiles)
