"""Headless tests of TileExplorer: set a control, check the config field and the recomputed figure."""

import numpy as np
import pytest

from aimc_lab.widgets import TileExplorer


@pytest.fixture
def explorer():
    return TileExplorer(preset="library defaults", size=128, n_inputs=64, seed=0)


def scatter_y(ex):
    return np.asarray(ex.figure.data[0].y).copy()


def test_builds_with_backend_badge_and_data(explorer):
    assert len(explorer.figure.data[0].x) == len(explorer.figure.data[0].y) > 0
    assert "backend" in explorer.children[1].value
    assert 0 < explorer.relative_error < 0.2
    assert "%" in explorer.error_label.value


def test_more_adc_bits_lower_error(explorer):
    explorer.controls["out_noise"].value = 0.0
    errors = []
    for bits in (3, 5, 8, 12):
        explorer.controls["adc_bits"].value = bits
        assert explorer.config.forward.out_res == pytest.approx(1 / (2 ** bits - 2))
        errors.append(explorer.relative_error)
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < errors[0] / 5


def test_output_noise_changes_figure_in_place(explorer):
    fig = explorer.figure
    before = scatter_y(explorer)
    e0 = explorer.relative_error
    explorer.controls["out_noise"].value = 0.25
    assert explorer.figure is fig
    assert explorer.config.forward.out_noise == 0.25
    assert not np.allclose(scatter_y(explorer), before)
    assert explorer.relative_error > e0


def test_same_settings_same_picture(explorer):
    before = scatter_y(explorer)
    explorer.controls["dac_bits"].value = 3
    explorer.controls["dac_bits"].value = 7
    np.testing.assert_allclose(scatter_y(explorer), before)


def test_weight_noise_and_ir_drop_write_config(explorer):
    explorer.controls["w_noise"].value = 0.05
    assert explorer.config.forward.w_noise_type == "pcm_read"
    explorer.controls["w_noise"].value = 0.0
    assert explorer.config.forward.w_noise_type == "none"
    e0 = explorer.relative_error
    explorer.controls["ir_drop"].value = 5.0
    assert explorer.config.forward.ir_drop == 5.0
    assert explorer.relative_error != e0


def test_noise_management_constant_gets_threshold(explorer):
    explorer.controls["noise_management"].value = "constant"
    assert explorer.config.forward.nm_thres > 0
    explorer.controls["bound_management"].value = "none"
    assert explorer.config.forward.bound_management == "none"


def test_drift_without_compensation_shrinks_outputs(explorer):
    explorer.controls["pcm"].value = True
    assert explorer.config.noise_model.kind == "pcm"
    assert not explorer.controls["drift_time"].disabled
    explorer.controls["compensation"].value = False
    explorer.controls["drift_time"].value = 1.0
    early = np.abs(scatter_y(explorer)).mean()
    explorer.controls["drift_time"].value = 3.15e7
    late = np.abs(scatter_y(explorer)).mean()
    assert late < 0.8 * early


def test_compensation_restores_output_magnitude(explorer):
    explorer.controls["pcm"].value = True
    explorer.controls["drift_time"].value = 3.15e7
    explorer.controls["compensation"].value = False
    uncompensated = explorer.relative_error
    explorer.controls["compensation"].value = True
    assert explorer.config.drift_compensation.kind == "global"
    assert explorer.relative_error < uncompensated


def test_preset_syncs_controls(explorer):
    explorer.controls["preset"].value = "standard HWA"
    assert explorer.controls["adc_bits"].value == 8
    assert explorer.controls["out_bound"].value == 10.0
    assert explorer.controls["pcm"].value is True
    explorer.controls["preset"].value = "perfect"
    assert explorer.relative_error == pytest.approx(0.0, abs=1e-6)
    assert explorer.controls["adc_bits"].disabled


def test_paper_reference_error_at_one_second():
    ex = TileExplorer(preset="standard HWA", size=512, n_inputs=256, seed=0)
    assert 0.09 < ex.relative_error < 0.17


def test_sparsity_and_weight_std_change_data(explorer):
    before = scatter_y(explorer)
    explorer.controls["sparsity"].value = 0.9
    assert not np.allclose(scatter_y(explorer), before)
    explorer.controls["weight_std"].value = 0.5
    assert explorer.ideal.abs().mean() > 0
