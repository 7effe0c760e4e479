"""Headless tests of DriftExplorer: the shipped pretrained models, and models trained here (fast mode)."""

import numpy as np
import pytest
import torch
from torch import nn

import aimc_lab as al
from aimc_lab.convert import convert_to_analog
from aimc_lab.inference import accuracy, tiles
from aimc_lab.widgets import DriftExplorer, drift_explorer
from aimc_lab.widgets.drift_explorer import CURVES, load_digit_models, save_digit_models

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
    # the digital curve is the shipped fp network's test accuracy, counted here by hand
    fp, _, _, (x, y) = load_digit_models()
    with torch.no_grad():
        expected = 100.0 * float((fp(x).argmax(1) == y).double().mean())
    assert explorer.results[CURVES[0]] == pytest.approx(expected, abs=1e-9)
    np.testing.assert_allclose(fig.data[0].y, [expected] * len(TIMES))


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


def test_pretrained_models_are_the_trained_pair(explorer):
    fp, hwa, _, test = load_digit_models()
    assert 88 < accuracy(fp, test) <= 100
    assert all(t.config.modifier.std_dev == pytest.approx(0.1) for t in tiles(hwa))
    assert not any(bool(t.programmed) for t in tiles(hwa))
    # hardware-aware training pays off after a year of drift (compensated), as the plot claims
    year = {name: explorer.results[name]["mean"].to_numpy()[-1] for name in CURVES[1:]}
    assert year[CURVES[2]] > year[CURVES[1]] + 3


def test_save_and_load_round_trip(tmp_path, monkeypatch):
    """save_digit_models (here with the fast protocol) -> load_digit_models gives the same networks;
    an explorer without a pretrained file trains its own (the patched, fast training)."""
    train = drift_explorer.train_digit_models
    trained = {}

    def fast_train(seed, fast, modifier_std=0.1):  # trains once (fast); later calls get the same pair
        if "models" not in trained:
            trained["models"] = train(seed, True, modifier_std)
        return trained["models"]

    monkeypatch.setattr(drift_explorer, "train_digit_models", fast_train)
    save_digit_models(tmp_path / "models.pt")
    fp, hwa, train_data, test_data = load_digit_models(tmp_path / "models.pt")
    fp0, hwa0 = trained["models"][:2]
    x = test_data[0]
    torch.testing.assert_close(fp(x), fp0(x))
    for t, t0 in zip(tiles(hwa), tiles(hwa0)):
        torch.testing.assert_close(t.weight, t0.weight)
        torch.testing.assert_close(t.input_range, t0.input_range)

    monkeypatch.setattr(drift_explorer, "PRETRAINED", tmp_path / "missing.pt")
    ex = DriftExplorer(fast=True, seed=0, repeats=1, times=(1.0, 3600.0))
    assert not ex.pretrained and set(ex.results) == set(CURVES)
    assert ex.fp_model is fp0
