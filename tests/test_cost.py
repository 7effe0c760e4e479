"""aimc_lab.cost: scaling laws, one layer by hand, the published-chip comparison, validation, the
network table and analog_summary's cost columns (docs/cost.md)."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from aimc_lab import analog_summary, analog_tiles, convert_to_analog
from aimc_lab.config import (AnalogConfig, DriftCompensationParameters, IOParameters, MappingParameters,
                             NoiseModelParameters)
from aimc_lab.cost import (CostParameters, adc_energy, bound_management_passes, converter_bits, count_mvms, estimate,
                           mvm_cost)


def config(inp_bits=8, out_bits=8, rows=256, cols=256, bm="none", **io):
    return AnalogConfig(forward=IOParameters(inp_res=1 / (2 ** inp_bits - 2), out_res=1 / (2 ** out_bits - 2),
                                             bound_management=bm, **io),
                        mapping=MappingParameters(max_input_size=rows, max_output_size=cols))


def test_converter_bits_follow_the_resolution_convention_of_docs_physics():
    p = CostParameters()
    assert converter_bits(1 / 254, p) == pytest.approx(8.0)
    assert converter_bits(1 / 510, p) == pytest.approx(9.0)
    assert converter_bits(126, p) == pytest.approx(7.0)  # a value > 1 is a number of steps
    assert converter_bits(0.0, p) == p.default_bits == 8
    c = mvm_cost(AnalogConfig(), 64, 64)  # library defaults: 7-bit DAC, 9-bit ADC
    assert (c.dac_bits, c.adc_bits) == (pytest.approx(7.0), pytest.approx(9.0))


def test_adc_energy_is_flat_at_low_resolution_then_four_times_per_two_bits():
    p = CostParameters()
    low = adc_energy(3, p) / adc_energy(1, p)
    assert low < 1.5  # flat: the floor dominates
    assert 1.5 < adc_energy(6, p) / adc_energy(4, p) < 3.0  # the corner, around 5 bits
    high = adc_energy(14, p) / adc_energy(12, p)
    assert high == pytest.approx(4.0, rel=0.02)
    # the same through mvm_cost's breakdown: only the ADC term moves with the output bits
    a, b = mvm_cost(config(out_bits=12), 256, 256), mvm_cost(config(out_bits=14), 256, 256)
    assert b.breakdown["adc"] / a.breakdown["adc"] == pytest.approx(4.0, rel=0.02)
    for k in ("dac", "array", "digital", "sram"):
        assert b.breakdown[k] == pytest.approx(a.breakdown[k])
    assert b.energy_j > a.energy_j and b.tops_per_w < a.tops_per_w


def test_array_energy_scales_with_used_cells_integration_time_and_conductance():
    base = mvm_cost(config(), 128, 64).breakdown["array"]
    assert mvm_cost(config(), 256, 64).breakdown["array"] == pytest.approx(2 * base)
    assert mvm_cost(config(), 128, 128).breakdown["array"] == pytest.approx(2 * base)
    # PWM: one more DAC bit doubles the integration window
    assert mvm_cost(config(inp_bits=9), 128, 64).breakdown["array"] == pytest.approx(2 * base)
    g50 = dataclasses.replace(config(), noise_model=NoiseModelParameters(g_max=50.0))
    assert mvm_cost(g50, 128, 64).breakdown["array"] == pytest.approx(2 * base)


def test_latency_grows_with_adc_sharing_and_falls_with_tile_parallelism():
    p1 = CostParameters()
    one = mvm_cost(config(), 256, 256, p1)
    t_int, t_conv = one.details["t_integration_s"], one.details["t_conversion_s"]
    assert one.latency_s == pytest.approx(t_int + t_conv)
    for k in (2, 8, 32):
        shared = mvm_cost(config(), 256, 256, dataclasses.replace(p1, adc_share=k))
        assert shared.latency_s == pytest.approx(t_int + k * t_conv)
        assert shared.area_mm2 < one.area_mm2  # fewer ADCs
        assert shared.energy_j == pytest.approx(one.energy_j)  # the same conversions
    # a 1024 x 512 layer on 256 x 256 tiles: 4 x 2 tiles, all in parallel, or 2 at a time
    grid = mvm_cost(config(), 1024, 512, p1)
    assert grid.grid == (4, 2) and grid.latency_s == pytest.approx(one.latency_s)
    serial = mvm_cost(config(), 1024, 512, dataclasses.replace(p1, max_parallel_tiles=2))
    assert serial.latency_s == pytest.approx(4 * one.latency_s)


def test_bound_management_passes_multiply_the_analog_terms_and_the_latency():
    cfg = config(bm="iterative")
    one = mvm_cost(cfg, 256, 256, passes=1.0)
    two = mvm_cost(cfg, 256, 256, passes=2.0)
    for k in ("dac", "array", "adc"):
        assert two.breakdown[k] == pytest.approx(2 * one.breakdown[k])
    assert two.breakdown["digital"] == pytest.approx(one.breakdown["digital"])
    assert two.latency_s == pytest.approx(2 * one.latency_s)
    assert mvm_cost(cfg, 256, 256).passes == CostParameters().bm_mean_passes
    p = CostParameters(bm_mean_passes=1.5)
    assert mvm_cost(cfg, 256, 256, p).passes == 1.5
    assert mvm_cost(config(bm="none"), 256, 256, p).passes == 1.0


def test_one_layer_by_hand():
    # 300 inputs x 100 outputs on 256 x 64 tiles: S = 2, T = 2; 8-bit DAC and ADC; drift compensation on
    cfg = dataclasses.replace(config(rows=256, cols=64),
                              drift_compensation=DriftCompensationParameters(kind="global"))
    p = CostParameters(adc_fom=100e-15, adc_energy_floor=1e-12, dac_fom=1e-15, dac_energy_floor=0.1e-12,
                       pwm_lsb_time=1e-9, read_voltage=0.2, mean_abs_weight=0.25, mean_abs_input=0.25,
                       digital_mult_energy=1.1e-12, digital_add_energy=0.4e-12, sram_energy_per_bit=0.15625e-12,
                       output_word_bits=16, adc_time_per_bit=1e-9, adc_share=4, cell_area=4e-6, adc_area=600e-6,
                       driver_area=20e-6, tile_periphery_area=0.15)
    c = mvm_cost(cfg, 300, 100, p)
    t_int = 1e-9 * 128  # 128 ns
    assert c.details["t_integration_s"] == pytest.approx(t_int)
    # DAC: 300 rows driven on each of the 2 column tiles, 0.1 pJ + 1 fJ * 256 = 0.356 pJ each
    assert c.breakdown["dac"] == pytest.approx(300 * 2 * 0.356e-12)
    # array: 30 000 cells * 6.25 µS * 0.04 V^2 * 0.25 * 128 ns = 30 000 * 8e-15 J
    assert c.breakdown["array"] == pytest.approx(30_000 * 8e-15)
    # ADC: 100 columns converted on each of the 2 input tiles, 1 pJ + 100 fJ * 256 = 26.6 pJ each
    assert c.breakdown["adc"] == pytest.approx(200 * 26.6e-12)
    # digital: 200 scales + 100 compensations (mult), 200 offsets + 100 accumulations (add)
    assert c.breakdown["digital"] == pytest.approx(300 * 1.1e-12 + 300 * 0.4e-12)
    # SRAM: 300 8-bit inputs read, 100 16-bit outputs written
    assert c.breakdown["sram"] == pytest.approx((2400 + 1600) * 0.15625e-12)
    assert c.energy_j == pytest.approx(sum(c.breakdown.values()))
    # latency: integration, then each ADC converts its 4 columns at 8 ns each; the 4 tiles in parallel
    assert c.latency_s == pytest.approx(128e-9 + 4 * 8e-9)
    # area: 4 tiles of 256*64 cells, 16 ADCs, 256 drivers and the periphery
    tile = 256 * 64 * 4e-6 + 16 * 600e-6 + 256 * 20e-6 + 0.15
    assert c.area_mm2 == pytest.approx(4 * tile)
    assert c.ops == 2 * 300 * 100
    assert c.tops_per_w == pytest.approx(60_000 / c.energy_j / 1e12)
    assert c.tops_per_mm2 == pytest.approx(60_000 / c.latency_s / 1e12 / c.area_mm2)


# IBM's 64-core PCM chip (Le Gallo et al., Nature Electronics 6, 680 (2023)): 256 x 256 crossbars, 8-bit
# input/output MVMs, one-phase read: 9.76 TOPS/W (63.1 TOPS); its core (Khaddam-Aljameh et al., IEEE JSSC
# 2022): 10.5 TOPS/W at 1.59 TOPS/mm^2.
HERMES_TOPS_PER_W = 9.76
HERMES_CORE_TOPS_PER_MM2 = 1.59


def test_the_cited_chip_configuration_lands_within_2x_of_its_published_figures():
    c = mvm_cost(config(8, 8, 256, 256), 256, 256)
    assert HERMES_TOPS_PER_W / 2 <= c.tops_per_w <= 2 * HERMES_TOPS_PER_W, c.tops_per_w
    assert HERMES_CORE_TOPS_PER_MM2 / 2 <= c.tops_per_mm2 <= 2 * HERMES_CORE_TOPS_PER_MM2, c.tops_per_mm2
    # 64 cores at that latency: the chip's peak throughput, 63.1 TOPS
    assert 63.1 / 2 <= 64 * c.ops / c.latency_s / 1e12 <= 2 * 63.1
    # the four-phase (high-precision) read mode: four passes per MVM, 2.48 TOPS/W and 16.1 TOPS
    four = mvm_cost(config(8, 8, 256, 256), 256, 256, passes=4)
    assert 2.48 / 2 <= four.tops_per_w <= 2 * 2.48, four.tops_per_w
    assert 16.1 / 2 <= 64 * four.ops / four.latency_s / 1e12 <= 2 * 16.1


@pytest.mark.parametrize("field, value, error", [
    ("adc_fom", -1e-15, ValueError), ("adc_fom", float("nan"), ValueError), ("adc_fom", "1", TypeError),
    ("adc_share", 0, ValueError), ("adc_share", 2.5, TypeError), ("pwm_lsb_time", 0.0, ValueError),
    ("mean_abs_weight", 1.5, ValueError), ("read_voltage", True, TypeError), ("max_parallel_tiles", -1, ValueError),
    ("default_bits", 0, ValueError), ("bm_mean_passes", 0.5, ValueError), ("output_word_bits", 65, ValueError)])
def test_cost_parameters_refuse_bad_values_naming_the_field(field, value, error):
    with pytest.raises(error, match=f"CostParameters.{field}"):
        CostParameters(**{field: value})


def test_mvm_cost_refuses_bad_arguments():
    with pytest.raises(TypeError, match="config"):
        mvm_cost("standard", 4, 4)
    with pytest.raises(ValueError, match="in_features = 0"):
        mvm_cost(AnalogConfig(), 0, 4)
    with pytest.raises(TypeError, match="out_features"):
        mvm_cost(AnalogConfig(), 4, 4.0)
    with pytest.raises(ValueError, match="passes = 0.5"):
        mvm_cost(AnalogConfig(), 4, 4, passes=0.5)
    with pytest.raises(TypeError, match="params"):
        mvm_cost(AnalogConfig(), 4, 4, {"adc_fom": 1e-15})


def test_bound_management_passes_count_the_halvings_a_saturating_row_needs():
    io = IOParameters(inp_res=-1, out_res=-1, out_bound=4.0, out_noise=0.0, noise_management="abs_max")
    w = torch.ones(3, 16)
    x = torch.ones(5, 16)  # W x / max|x| = 16 -> needs /8 to drop under 4 (16/8 = 2 < 4; 16/4 = 4 saturates)
    assert bound_management_passes(x, w, io) == pytest.approx(4.0)
    assert bound_management_passes(x[:, :4], w[:, :4], io) == pytest.approx(2.0)  # 4 -> 2
    assert bound_management_passes(torch.zeros(5, 16), w, io) == 1.0
    # per input tile of 4 rows: each sees 4 -> 2 passes
    assert bound_management_passes(x, w, io, in_size=4) == pytest.approx(2.0)
    assert bound_management_passes(x, w, dataclasses.replace(io, bound_management="none")) == 1.0
    # the loop's limit: at most log2(max_bm_factor) halvings
    assert bound_management_passes(x, w, dataclasses.replace(io, max_bm_factor=2)) == pytest.approx(2.0)


class CNNLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        y = self.conv(x).flatten(2).transpose(1, 2)  # [B, L, 4]
        y, _ = self.lstm(y)
        return self.head(y[:, -1])


def test_estimate_counts_mvms_like_the_simulator_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = convert_to_analog(CNNLSTM(), config(rows=256, cols=256))
    g = torch.Generator().manual_seed(0)
    for tile in analog_tiles(model):
        tile.generator = g
    state = g.get_state().clone()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    counts = count_mvms(model, (2, 1, 6, 6))  # 4 x 4 output pixels, 16 time steps, batch 2
    assert counts == {"conv.tile": 32, "lstm.cells.0.tile_ih": 32, "lstm.cells.0.tile_hh": 32, "head.tile": 2}
    assert torch.equal(g.get_state(), state) and model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert "forward" not in vars(model.conv.tile)

    df = estimate(model, (2, 1, 6, 6))
    assert list(df["layer"]) == ["conv", "lstm.cells.0", "lstm.cells.0", "head", "total"]
    assert list(df["mvms"])[:4] == [32, 32, 32, 2]
    one = mvm_cost(model.head.tile.config, 6, 3)
    head = df.iloc[3]
    assert head["energy_j"] == pytest.approx(2 * one.energy_j)
    assert head["latency_s"] == pytest.approx(2 * one.latency_s)
    total = df.iloc[-1]
    assert total["energy_j"] == pytest.approx(df["energy_j"][:4].sum())
    assert total["latency_s"] == pytest.approx(df["latency_s"][:4].sum())
    parts = [c for c in df.columns if c.startswith("energy_") and c != "energy_j"]
    assert total[parts].sum() == pytest.approx(total["energy_j"])
    t = df.attrs["totals"]
    assert t["tops_per_w"] == pytest.approx(t["ops"] / t["energy_j"] / 1e12)
    assert estimate(model)["mvms"].iloc[:4].tolist() == [1, 1, 1, 1]
    again = estimate(model, params=CostParameters(adc_fom=200e-15), mvms=counts)  # counts reused, params changed
    assert list(again["mvms"])[:4] == [32, 32, 32, 2]
    assert (again["energy_adc_j"] > df["energy_adc_j"]).all()
    with pytest.raises(ValueError, match="mvms"):
        estimate(model, mvms={"conv.tile": 1})
    with pytest.raises(ValueError, match="input_shape"):
        estimate(model, (2, 0, 6, 6))


def test_analog_summary_shows_the_cost_columns_with_and_without_input_shape():
    model = convert_to_analog(nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Linear(100, 10)), config())
    plain = analog_summary(model)
    assert [r.mvms for r in plain.rows] == [1, 1]
    batched = analog_summary(model, input_shape=(4, 64))
    assert [r.mvms for r in batched.rows] == [4, 4]
    assert batched.energy_j == pytest.approx(4 * plain.energy_j)
    df = estimate(model, (4, 64))
    assert batched.energy_j == pytest.approx(df.attrs["totals"]["energy_j"])
    assert batched.latency_s == pytest.approx(df.attrs["totals"]["latency_s"])
    text = str(batched)
    assert "energy" in text and "TOPS/W" in text and "nJ" in text and "(4, 64)" in text
    assert math.isfinite(batched.tops_per_mm2) and batched.area_mm2 > 0
