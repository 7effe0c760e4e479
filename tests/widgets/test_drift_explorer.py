"""Headless tests of DriftExplorer (small models trained on digits in fast mode)."""

import numpy as np
import pytest
import torch
from torch import nn

import aimc_lab as al
from aimc_lab.convert import convert_to_analog
from aimc_lab.widgets import DriftExplorer
from aimc_lab.widgets.drift_explorer import CURVES

TIMES = (1.0, 86400.0, 3.1536e7)


@pytest.fixture(scope="module")
def explorer():
    return DriftExplorer(fast=True, seed=0, repeats=1, times=TIMES)


def test_curves_and_error_bars(explorer):
    fig = explorer.figure
    assert [t.name for t in fig.data] == list(CURVES)
    for trace in fig.data:
        assert len(trace.x) == len(TIMES) and len(trace.y) == len(TIMES)
    assert fig.layout.xaxis.type == "log"
    assert fig.data[2].error_y.array is not None
    assert explorer.progress.value == explorer.progress.max == 3 * len(TIMES)
    assert "backend" in explorer.children[1].value
    assert 30 < explorer.results[CURVES[0]] <= 100


def test_drift_scale_writes_config_and_more_drift_hurts(explorer):
    before = np.asarray(explorer.figure.data[3].y).copy()
    explorer.controls["drift_scale"].value = 3.0
    assert explorer.config.noise_model.drift_scale == 3.0
    after = np.asarray(explorer.figure.data[3].y)
    assert not np.allclose(before, after)
    assert after[-1] < before[-1]  # uncompensated after a year, with three times the drift
    explorer.controls["drift_scale"].value = 1.0
    np.testing.assert_allclose(explorer.figure.data[3].y, before)


def test_accepts_models_from_caller():
    torch.manual_seed(0)
    x = torch.rand(64, 8)
    y = (x[:, 0] > 0.5).long()
    fp = nn.Sequential(nn.Linear(8, 2))
    hwa = convert_to_analog(fp, al.presets.standard_hwa())
    ex = DriftExplorer(fp_model=fp, hwa_model=hwa, test_data=(x, y), repeats=1, times=(1.0, 3600.0))
    assert set(ex.results) == set(CURVES)
    assert len(ex.figure.data[1].y) == 2


def test_run_false_builds_view_only():
    torch.manual_seed(0)
    x = torch.rand(16, 8)
    y = (x[:, 0] > 0.5).long()
    fp = nn.Sequential(nn.Linear(8, 2))
    ex = DriftExplorer(fp_model=fp, hwa_model=convert_to_analog(fp, al.presets.standard_hwa()),
                       test_data=(x, y), run=False)
    assert ex.results == {} and len(ex.figure.data[0].x) == 0
