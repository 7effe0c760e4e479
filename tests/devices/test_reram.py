"""The ReRAM model (after Wan et al. 2022 / AIHWKIT's ReRamWan2022NoiseModel)."""

import math

import pytest
import torch

from aimc_lab.config import AnalogConfig, IOParameters, MappingParameters, NoiseModelParameters
from aimc_lab.devices import make_noise_model
from aimc_lab.devices.reram import WAN2022_COEFFS, ReRAMLikeNoise, reram_deviation_std
from aimc_lab.tile import AnalogTile

DAY = 86400.0


def poly(gh, coeffs):
    return sum(c * gh ** i for i, c in enumerate(coeffs))


@pytest.mark.parametrize("g_max", [40.0, 25.0])
@pytest.mark.parametrize("t", [1.0, DAY, 2 * DAY])
def test_sigma_at_table_times_is_the_polynomial(t, g_max):
    g = torch.linspace(0, g_max, 11, dtype=torch.float64)
    gh = g / g_max
    expect = poly(gh, WAN2022_COEFFS[t]) * g_max / 40.0
    assert torch.allclose(reram_deviation_std(g, t, g_max), expect, rtol=1e-12)
    assert ReRAMLikeNoise(NoiseModelParameters(kind="reram", g_max=g_max)).sigma(g, t).allclose(expect)


def test_documented_coefficients():
    assert WAN2022_COEFFS[1.0] == (0.348, 16.030, -43.853, 45.393, -16.815)
    assert WAN2022_COEFFS[DAY] == (0.701, 22.086, -50.773, 47.095, -16.458)
    assert WAN2022_COEFFS[2 * DAY] == (0.782, 20.274, -43.507, 37.062, -11.934)


def test_log_time_interpolation_and_hold():
    g = torch.linspace(0, 40, 9, dtype=torch.float64)
    s1, sd, s2 = (reram_deviation_std(g, t, 40.0) for t in (1.0, DAY, 2 * DAY))
    assert torch.allclose(reram_deviation_std(g, math.sqrt(DAY), 40.0), 0.5 * (s1 + sd))  # log-midpoint
    assert torch.allclose(reram_deviation_std(g, DAY * math.sqrt(2), 40.0), 0.5 * (sd + s2))
    assert torch.equal(reram_deviation_std(g, 0.0, 40.0), s1)
    assert torch.equal(reram_deviation_std(g, 3.15e7, 40.0), s2)


def test_programming_and_time_statistics():
    nm = make_noise_model(NoiseModelParameters(kind="reram", g_max=25.0))
    assert isinstance(nm, ReRAMLikeNoise)
    g_t = torch.full((400_000,), 12.5)
    gen = torch.Generator().manual_seed(0)
    g_p = nm.programming_noise(g_t, gen)
    s1 = float(nm.sigma(g_t[:1], 1.0))
    assert float((g_p - g_t).mean()) == pytest.approx(0.0, abs=0.01)
    assert float((g_p - g_t).std()) == pytest.approx(s1, rel=0.01)
    nu = nm.drift_exponents(g_t, gen)
    assert torch.equal(nu, torch.zeros_like(g_t))  # no power-law drift
    assert torch.equal(nm.at_time(g_p, nu, g_t, 0.0, gen), g_p)  # at t <= 1 s: the programmed state
    for t in (DAY, 2 * DAY, 3.15e7):
        g = nm.at_time(g_p, nu, g_t, t, gen)
        st = float(nm.sigma(g_t[:1], t))
        assert st > s1  # the deviation grows with time
        assert float((g - g_t).std()) == pytest.approx(st, rel=0.01)
        assert float(g.mean()) == pytest.approx(12.5, abs=0.02)  # no drift of the mean
    assert g_p.min() >= 0


def test_noise_scales_and_inputs_untouched():
    g_t = torch.linspace(0, 25, 1000)
    nm = ReRAMLikeNoise(NoiseModelParameters(kind="reram", prog_noise_scale=0.0, drift_scale=0.0))
    g_t_copy = g_t.clone()
    g_p = nm.programming_noise(g_t, torch.Generator().manual_seed(0))
    assert torch.equal(g_p, g_t)
    assert torch.equal(nm.at_time(g_p, torch.zeros_like(g_t), g_t, DAY, torch.Generator()), g_p)
    assert torch.equal(g_t, g_t_copy)


def test_tile_with_reram_model_has_no_systematic_decay():
    cfg = AnalogConfig(forward=IOParameters(is_perfect=True), noise_model=NoiseModelParameters(kind="reram"),
                       mapping=MappingParameters(weight_scaling_omega=1.0))
    tile = AnalogTile(64, 128, cfg)
    w = torch.randn(64, 128, generator=torch.Generator().manual_seed(1)).clamp(-2.5, 2.5)
    tile.set_weights(w)
    gen = torch.Generator().manual_seed(2)
    tile.program(gen)
    ref = tile.weight.detach()
    err = {}
    for t in (1.0, DAY, 3.15e7):
        tile.drift(t, gen)
        diff = tile.w_read - ref
        # least-squares gain of the read weights against the targets stays ~1 (no drift)
        gain = float((tile.w_read * ref).sum() / (ref * ref).sum())
        assert gain == pytest.approx(1.0, abs=0.02)
        err[t] = float(diff.std())
    assert err[1.0] < err[DAY] <= err[3.15e7] * 1.05
