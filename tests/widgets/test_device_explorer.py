"""Headless tests of DeviceExplorer (pulse responses of the pulsed-device presets)."""

import numpy as np
import pytest

from aimc_lab.devices import pulsed
from aimc_lab.widgets import DeviceExplorer


@pytest.fixture
def explorer():
    return DeviceExplorer(preset="idealized", traces=4, seed=0)


def mean_curve(ex):
    return np.asarray(ex.figure.data[-1].y)


def test_every_preset_renders(explorer):
    for name in pulsed.PRESETS:
        explorer.controls["preset"].value = name
        assert type(explorer.device) is type(pulsed.PRESETS[name]())
        assert explorer.controls["dw_min"].value == pytest.approx(explorer.device.dw_min)
        y = mean_curve(explorer)
        assert len(y) == 2 * explorer.controls["pulses"].value + 1
        assert np.isfinite(y).all()
    assert "backend" in explorer.children[1].value


def test_bigger_steps_move_further(explorer):
    explorer.controls["pulses"].value = 100
    explorer.controls["dw_min"].value = 1e-3
    peak_small = mean_curve(explorer).max()
    explorer.controls["dw_min"].value = 4e-3
    assert explorer.device.dw_min == pytest.approx(4e-3)
    assert mean_curve(explorer).max() > 2 * peak_small


def test_bounds_clip_the_response(explorer):
    explorer.controls["bounds"].value = (-0.2, 0.2)
    assert (explorer.device.w_min, explorer.device.w_max) == (-0.2, 0.2)
    explorer.controls["dw_min_dtod"].value = 0.0
    explorer.controls["pulses"].value = 2000
    assert np.abs(explorer.weights.numpy()).max() <= 0.2 * (1 + 3 * explorer.device.w_max_dtod)


def test_asymmetry_biases_down_steps(explorer):
    explorer.controls["pulses"].value = 200
    explorer.controls["dw_min_std"].value = 0.0
    explorer.controls["up_down"].value = 0.0
    end_sym = mean_curve(explorer)[-1]
    explorer.controls["up_down"].value = 0.5  # up_down > 0 shrinks the down step (docs/physics.md §4)
    assert explorer.device.up_down == 0.5
    assert mean_curve(explorer)[-1] > end_sym + 0.01


def test_noise_slider_changes_traces(explorer):
    before = np.asarray(explorer.figure.data[0].y).copy()
    explorer.controls["dw_min_std"].value = 2.0
    assert not np.allclose(np.asarray(explorer.figure.data[0].y), before)
