"""Headless tests of TileExplorer: set a control, check the config field and the recomputed figure."""

import math

import numpy as np
import pytest
import torch

from aimc_lab.cost import mvm_cost
from aimc_lab.tile import AnalogTile
from aimc_lab.widgets import TileExplorer
from aimc_lab.widgets.tile_explorer import nice_ceil


@pytest.fixture
def explorer():
    return TileExplorer(preset="library defaults", size=128, n_inputs=64, seed=0)


def scatter_y(ex):
    return np.asarray(ex.figure.data[0].y).copy()


def data(size, n_inputs, weight_std, sparsity, seed):
    """The reference experiment's data, written out here independently of the widget's reference_data
    (docs/physics.md §1): W ~ N(0, std²) clipped to [-1, 1], x ~ U[-1, 1] with a fraction set to 0."""
    g = torch.Generator().manual_seed(seed)
    w = (torch.randn(size, size, generator=g) * weight_std).clamp(-1.0, 1.0)
    x = torch.rand(n_inputs, size, generator=g) * 2 - 1
    return w, torch.where(torch.rand(n_inputs, size, generator=g) < sparsity, torch.zeros_like(x), x)


def predicted_relative_error(w, x, io):
    """‖y − Wx‖/‖Wx‖ expected from docs/physics.md §1 for the library defaults (abs_max noise management,
    weights scaled to max|W| = 1, bound management rarely active): per output, in the tile's normalized
    units, output noise σ², the ADC's uniform quantization Δ_out²/12 (Δ_out = 2·out_bound·out_res) and
    the DAC's Δ_in²/12 (Δ_in = 2·inp_bound·inp_res) on every non-zero input times w²; then scaled back
    by max|x_m|·max|W|."""
    w_max = w.abs().max()
    scale = x.abs().amax(1, keepdim=True) * w_max  # [M, 1]
    d_out, d_in = 2 * io.out_bound * io.out_res, 2 * io.inp_bound * io.inp_res
    dac = (d_in ** 2 / 12) * ((x != 0).float() @ (w / w_max).T ** 2)  # [M, N]
    var = (io.out_noise ** 2 + d_out ** 2 / 12 + dac) * scale ** 2
    return float(var.sum().sqrt() / (x @ w.T).norm())


def test_builds_with_backend_badge_and_data(explorer):
    assert len(explorer.figure.data[0].x) == len(explorer.figure.data[0].y) > 0
    assert "backend" in explorer.children[1].value
    w, x = data(128, 64, 0.246, 0.5, seed=0)
    torch.testing.assert_close(explorer.ideal, x @ w.T)
    measured = float((explorer.outputs - explorer.ideal).norm() / explorer.ideal.norm())
    assert explorer.relative_error == pytest.approx(measured, rel=1e-6)
    # 8192 noisy outputs: the norm's statistical spread is ~1 %; 4 % leaves room for the rare clipping
    assert explorer.relative_error == pytest.approx(predicted_relative_error(w, x, explorer.config.forward),
                                                    rel=0.04)
    assert f"{100 * explorer.relative_error:.2f} %" in explorer.error_label.value


def test_energy_and_tops_per_w_follow_the_config(explorer):
    """The label shows aimc_lab.cost.mvm_cost of one MVM of the tile; more ADC bits cost more energy."""
    energies = []
    for bits in (6, 9, 12):
        explorer.controls["adc_bits"].value = bits
        expected = mvm_cost(explorer.config, 128, 128)
        assert explorer.cost.energy_j == expected.energy_j and explorer.cost.adc_bits == pytest.approx(bits)
        assert f"{expected.tops_per_w:.3g} TOPS/W" in explorer.error_label.value
        energies.append(explorer.cost.energy_j)
    assert energies[0] < energies[1] < energies[2]


def test_nice_ceil():
    assert [nice_ceil(v) for v in (0.9, 1.0, 1.01, 2.2, 7.0, 9.0, 0.031, 1234.0)] == pytest.approx(
        [1.0, 1.0, 1.25, 2.5, 8.0, 10.0, 0.04, 1250.0])
    assert nice_ceil(0.0) > 0


def test_axis_ranges_change_only_when_the_data_outgrow_them(explorer):
    sent = []
    explorer.figure.state._send = lambda msg, buffers=None: sent.append(set(msg["state"]))
    lim = explorer.figure.layout.xaxis.range[1]
    flat = np.abs(np.concatenate([explorer.figure.data[0].x, explorer.figure.data[0].y]))
    assert flat.max() <= lim and lim == nice_ceil(lim)
    explorer.controls["out_noise"].value = 0.065   # a small change: the same ranges, data only
    assert sent == [{"data"}]
    explorer.controls["weight_std"].value = 0.6    # outputs 2.5x larger: new ranges in the same message
    assert sent[-1] == {"data", "layout"} and explorer.figure.layout.xaxis.range[1] > lim


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
    # the outputs are the tile's under that config, with the widget's seeded forward noise stream
    w, x = data(128, 64, 0.246, 0.5, seed=0)
    tile = AnalogTile(128, 128, explorer.config)
    tile.set_weights(w)
    tile.eval()
    tile.generator = torch.Generator().manual_seed(0 + 4)
    with torch.no_grad():
        torch.testing.assert_close(explorer.outputs, tile(x), rtol=0, atol=0)
    assert explorer.relative_error > e0


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
    # mean |Wx| of K = 128 terms (a Gaussian to a few %): sqrt(2/π)·sqrt(K·E[x²]·E[w²]), with E[x²] =
    # (1 − sparsity)/3 and E[w²] of N(0, 0.5²) clipped to [-1, 1]
    s, a = 0.5, 2.0
    phi, cdf = math.exp(-a * a / 2) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(a / math.sqrt(2)))
    w2 = s * s * (2 * cdf - 1 - 2 * a * phi) + 2 * (1 - cdf)
    expected = math.sqrt(2 / math.pi) * math.sqrt(128 * (0.1 / 3) * w2)
    assert float(explorer.ideal.abs().mean()) == pytest.approx(expected, rel=0.1)


def programmed_outputs(config, size, n_inputs, weight_std, sparsity, drift_time, seed=0):
    """The widget's documented result, the long way: a fresh tile programmed under ``config`` with the
    widget's seeded streams (programming seed + 1, drift seed + 2, read-outs seed + 3, forward seed + 4)."""
    w, x = data(size, n_inputs, weight_std, sparsity, seed)
    tile = AnalogTile(size, size, config)
    tile.set_weights(w)
    tile.eval()
    tile.generator = torch.Generator().manual_seed(seed + 3)
    tile.program(torch.Generator().manual_seed(seed + 1))
    tile.generator = torch.Generator().manual_seed(seed + 3)
    tile.drift(drift_time, torch.Generator().manual_seed(seed + 2))
    tile.generator = torch.Generator().manual_seed(seed + 4)
    with torch.no_grad():
        return tile(x)


@pytest.mark.parametrize("compensation", [True, False])
def test_periphery_changes_keep_the_devices_and_match_a_fresh_programming(compensation):
    """Periphery controls re-measure only the compensation (no re-programming), the drift time only
    re-reads, the sparsity only runs the forward: after each, the outputs are exactly those of a tile
    programmed from scratch under the same settings."""
    ex = TileExplorer(preset="standard HWA", size=96, n_inputs=32, seed=0)
    ex.controls["compensation"].value = compensation
    ex.controls["drift_time"].value = 86400.0
    programmed = []
    original_program = AnalogTile.program

    def counting_program(tile, generator=None):
        programmed.append(tile)
        return original_program(tile, generator)

    AnalogTile.program = counting_program
    try:
        for name, value in (("adc_bits", 6), ("out_noise", 0.1), ("ir_drop", 2.0), ("drift_time", 3.15e7),
                            ("sparsity", 0.2), ("dac_bits", 5), ("adc_bits", 8)):
            ex.controls[name].value = value
            expected = programmed_outputs(ex.config, 96, 32, ex.controls["weight_std"].value,
                                          ex.controls["sparsity"].value, ex.controls["drift_time"].value)
            torch.testing.assert_close(ex.outputs, expected, rtol=0, atol=0, msg=f"after {name} = {value}")
        assert len(programmed) == 7  # the reference tiles above only: the widget never programmed again
        ex.controls["weight_std"].value = 0.3  # new weights: programmed again
        assert len(programmed) == 8
    finally:
        AnalogTile.program = original_program
    expected = programmed_outputs(ex.config, 96, 32, 0.3, 0.2, 3.15e7)
    torch.testing.assert_close(ex.outputs, expected, rtol=0, atol=0)
