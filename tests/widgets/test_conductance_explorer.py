"""Headless tests of ConductanceExplorer."""

import numpy as np
import pytest

from aimc_lab.widgets import ConductanceExplorer


@pytest.fixture
def explorer():
    return ConductanceExplorer(size=16, n_devices=200, n_times=11, seed=0)


def test_heatmaps_show_programmed_pairs(explorer):
    gp = np.asarray(explorer.heatmaps.data[0].z)
    gn = np.asarray(explorer.heatmaps.data[1].z)
    assert gp.shape == gn.shape == (16, 16)
    assert gp.min() >= 0 and gn.min() >= 0
    assert np.abs(np.asarray(explorer.heatmaps.data[2].z)).max() > 0
    assert "backend" in explorer.children[1].value


def test_no_programming_noise_no_error(explorer):
    explorer.controls["prog_noise_scale"].value = 0.0
    assert explorer.config.prog_noise_scale == 0.0
    np.testing.assert_allclose(np.asarray(explorer.heatmaps.data[2].z), 0.0, atol=1e-5)


def test_more_drift_lower_conductance_after_a_year(explorer):
    mean_line = np.asarray(explorer.curves.data[-1].y)  # target 25 µS
    assert mean_line[-1] < mean_line[0]
    explorer.controls["drift_scale"].value = 2.0
    assert explorer.config.drift_scale == 2.0
    assert np.asarray(explorer.curves.data[-1].y)[-1] < mean_line[-1]


def test_read_noise_widens_band(explorer):
    std0 = explorer.curve_std.copy()
    explorer.controls["read_noise_scale"].value = 3.0
    assert (explorer.curve_std[:, -1] > std0[:, -1]).all()


def test_pcm_sanity_at_gmax(explorer):
    # docs/physics.md §2: a device at g_max keeps ~78 % after 1 h and ~half after 1 year
    explorer.controls["read_noise_scale"].value = 0.0
    explorer.controls["prog_noise_scale"].value = 0.0
    times = explorer.times
    mean = explorer.curve_mean[-1]
    at_hour = np.interp(np.log(3600.0), np.log(times), mean) / 25.0
    at_year = np.interp(np.log(3.1536e7), np.log(times), mean) / 25.0
    assert at_hour == pytest.approx(0.78, abs=0.05)
    assert at_year == pytest.approx(0.5, abs=0.07)


def test_figures_fit_a_900_px_column(explorer):
    """Issue 11: the heatmaps (1100 px wide) overflowed a 900 px notebook column."""
    for figure in (explorer.heatmaps, explorer.curves):
        assert figure.layout.width <= 900
