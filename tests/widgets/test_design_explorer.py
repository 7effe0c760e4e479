"""Headless tests of DesignExplorer (the Design lab): the sweep, the Pareto front, the controls, and that
the shipped accuracies agree with a live simulation."""

import numpy as np
import pytest
import torch

from aimc_lab.convert import convert_to_analog
from aimc_lab.cost import estimate
from aimc_lab.widgets import DesignExplorer
from aimc_lab.widgets.design_explorer import (FAST_GRID, _design_config, _key, _load_trained, load_design_sweep,
                                              pareto_front)


@pytest.fixture(scope="module")
def explorer():
    return DesignExplorer(fast=True)


def test_pareto_front_keeps_only_undominated_points():
    energy = [1.0, 2.0, 3.0, 1.5, 4.0, float("nan")]
    acc = [50.0, 80.0, 70.0, 40.0, 90.0, 99.0]
    assert pareto_front(energy, acc) == [0, 1, 4]
    assert pareto_front([1.0, 1.0], [60.0, 70.0]) == [1]
    assert pareto_front([], []) == []


def test_fast_sweep_fills_the_plot_from_the_shipped_accuracies(explorer):
    n = len(FAST_GRID["adc_bits"]) * len(FAST_GRID["dac_bits"]) * len(FAST_GRID["tile_sizes"])
    assert len(explorer.points) == n and explorer.progress.value == n
    cache = load_design_sweep()
    for p in explorer.points:
        assert (p.accuracy, p.accuracy_std) == cache[_key(p.adc_bits, p.dac_bits, p.tile_size, 3, 0, 86400.0)]
        assert p.energy_j > 0
    fig = explorer.figure
    shown = sum(len(fig.data[k].x) for k in range(len(explorer.tile_sizes)))
    assert shown == n
    front = explorer.front()
    assert list(fig.data[-2].x) == pytest.approx([explorer.points[i].energy_j for i in front])
    # more ADC bits cost more energy, everything else equal; very few bits lose accuracy
    by = {(p.adc_bits, p.dac_bits, p.tile_size): p for p in explorer.points}
    assert by[(8, 8, 64)].energy_j > by[(4, 8, 64)].energy_j
    assert by[(8, 8, 64)].accuracy > by[(4, 8, 64)].accuracy + 10
    assert 80 < explorer.fp_accuracy <= 100
    assert "done" in explorer.status.value


def test_adc_energy_control_moves_every_point_without_resimulating(explorer):
    before = [p.energy_j for p in explorer.points]
    accs = [p.accuracy for p in explorer.points]
    x_before = list(explorer.figure.data[0].x)
    explorer.controls["adc_scale"].value = 4.0
    after = [p.energy_j for p in explorer.points]
    assert all(a > b for a, b in zip(after, before))
    assert [p.accuracy for p in explorer.points] == accs
    assert list(explorer.figure.data[0].x) != x_before
    adc_share = [p.table.attrs["totals"]["breakdown"]["adc"] / p.energy_j for p in explorer.points]
    assert min(adc_share) > 0.5  # ADCs dominate these small layers
    explorer.controls["adc_scale"].value = 1.0
    assert [p.energy_j for p in explorer.points] == pytest.approx(before)


def test_inspect_shows_the_per_layer_breakdown_of_the_picked_point(explorer):
    assert explorer.controls["inspect"].value == explorer.suggested() in explorer.front()
    for index in (0, len(explorer.points) - 1):
        explorer.controls["inspect"].value = index
        point = explorer.points[index]
        bars = np.array([list(trace.x) for trace in explorer.breakdown.data])  # [components, layers] nJ
        assert bars.shape == (5, 4)
        assert bars.sum() == pytest.approx(point.energy_j * 1e9, rel=1e-6)
        assert point.label in explorer.breakdown.layout.title.text
        assert list(explorer.figure.data[-1].x) == pytest.approx([point.energy_j])


def test_smaller_tiles_cut_layers_into_more_tiles_and_keep_the_trained_ranges(explorer):
    fp, hwa, _ = explorer.models
    config = _design_config(hwa[0].tile.config, 8, 6, 16)
    model = _load_trained(convert_to_analog(fp, config), hwa.state_dict())
    assert model[0].tile.n_slices == 4  # 64 inputs on 16-row tiles
    torch.testing.assert_close(model[0].tile.input_range, hwa[0].tile.input_range.expand(4))
    table = estimate(model, (1, 64))
    assert table["tiles"].iloc[0] == 4 and table["adc_bits"].iloc[0] == pytest.approx(8.0)


def test_a_live_point_agrees_with_the_shipped_one(explorer):
    live = DesignExplorer(adc_bits=(8,), dac_bits=(6,), tile_sizes=(64,), models=explorer.models)
    (point,) = live.points
    mean, std = load_design_sweep()[_key(8, 6, 64, 3, 0, 86400.0)]
    assert abs(point.accuracy - mean) <= max(3.0, 3 * std), (point.accuracy, mean)


@pytest.mark.parametrize("kwargs", [{"adc_bits": (1,)}, {"dac_bits": (4.5,)}, {"tile_sizes": (0,)}])
def test_bad_grids_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        DesignExplorer(run=False, **kwargs)
