"""PCM statistics against the formulas of docs/physics.md §2, and drift compensation."""

import math

import pytest
import torch

from aimc_lab.config import NoiseModelParameters
from aimc_lab.devices.base import conductances_to_weights, weights_to_conductances
from aimc_lab.devices.compensation import GlobalDriftCompensation, PerColumnDriftCompensation
from aimc_lab.devices.pcm import PCMLikeNoise, drift_exponent_stats, programming_noise_std, read_noise_std

P = NoiseModelParameters(kind="pcm")
N = 200_000


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("g_t", [2.0, 10.0, 25.0])
def test_programming_noise_std_matches_polynomial(g_t):
    model = PCMLikeNoise(P)
    g = model.programming_noise(torch.full((N,), g_t), gen(1))
    gh = g_t / 25.0
    sigma = 0.26348 + 1.9650 * gh - 1.1731 * gh * gh
    assert programming_noise_std(torch.tensor(g_t), P).item() == pytest.approx(sigma, rel=1e-6)
    assert g.mean().item() == pytest.approx(g_t, abs=4 * sigma / math.sqrt(N) + 0.002)
    assert g.std().item() == pytest.approx(sigma, rel=0.02)


def test_programmed_conductance_is_non_negative():
    g = PCMLikeNoise(P).programming_noise(torch.zeros(N), gen(2))
    assert (g >= 0).all() and (g > 0).any()


@pytest.mark.parametrize("g_t", [0.5, 5.0, 25.0])
def test_drift_exponent_statistics(g_t):
    nu = PCMLikeNoise(P).drift_exponents(torch.full((N,), g_t), gen(3))
    mu, sigma = drift_exponent_stats(torch.tensor(g_t), P)
    gh = max(g_t / 25.0, 1e-7)
    assert mu.item() == pytest.approx(min(max(-0.0155 * math.log(gh) + 0.0244, 0.049), 0.1), rel=1e-5)
    assert sigma.item() == pytest.approx(min(max(-0.0125 * math.log(gh) - 0.0059, 0.008), 0.045), rel=1e-5)
    assert (nu >= 0).all()
    # ν = |μ + σξ|: with μ >> σ the folding is negligible
    assert nu.mean().item() == pytest.approx(mu.item(), rel=0.02)
    assert nu.std().item() == pytest.approx(sigma.item(), rel=0.05)


def test_device_at_gmax_keeps_78_percent_after_1h_and_half_after_1y():
    p = NoiseModelParameters(kind="pcm", read_noise_scale=0.0)
    model = PCMLikeNoise(p)
    g_t = torch.full((N,), 25.0)
    nu = model.drift_exponents(g_t, gen(4))
    hour = model.at_time(g_t, nu, g_t, 3600.0, gen(5)).mean().item() / 25.0
    year = model.at_time(g_t, nu, g_t, 3.1536e7, gen(5)).mean().item() / 25.0
    assert hour == pytest.approx(0.78, abs=0.02)
    assert year == pytest.approx(0.50, abs=0.03)


def test_drift_formula_exact_and_read_noise_std():
    model = PCMLikeNoise(NoiseModelParameters(kind="pcm", read_noise_scale=0.0))
    g = torch.tensor([10.0])
    nu = torch.tensor([0.06])
    out = model.at_time(g, nu, g, 1000.0, gen(0))
    assert out.item() == pytest.approx(10.0 * (1020.0 / 20.0) ** -0.06, rel=1e-6)
    noisy = PCMLikeNoise(P).at_time(torch.full((N,), 10.0), torch.full((N,), 0.06), torch.full((N,), 10.0),
                                    1000.0, gen(6))
    g_d = 10.0 * (1020.0 / 20.0) ** -0.06
    q_s = min(0.0088 / (10.0 / 25.0) ** 0.65, 0.2)
    sigma = g_d * q_s * math.sqrt(math.log((1020.0 + 250e-9) / (2 * 250e-9)))
    assert read_noise_std(torch.tensor(10.0), torch.tensor(g_d), 1020.0, P).item() == pytest.approx(sigma, rel=1e-5)
    assert noisy.std().item() == pytest.approx(sigma, rel=0.02)
    assert noisy.mean().item() == pytest.approx(g_d, rel=0.002)


def test_negative_time_rejected():
    model = PCMLikeNoise(P)
    g = torch.ones(3)
    with pytest.raises(ValueError, match="t_inference"):
        model.at_time(g, g, g, -1.0, None)
    with pytest.raises(ValueError, match="t_inference"):
        model.at_time(g, g, g, float("inf"), None)
    with pytest.raises(ValueError, match=r"t_inference = 1e\+19 .*\[0, 1e\+18\] seconds"):
        model.at_time(g, g, g, 1e19, None)
    assert torch.isfinite(model.at_time(g, g, g, 1e18, gen())).all()  # the latest time allowed


def test_mapping_round_trip_and_nan():
    w = torch.tensor([[0.5, -1.0], [0.0, 0.25]])
    gp, gm, s = weights_to_conductances(w, 25.0)
    assert gp.max().item() == 12.5 and gm.max().item() == 25.0 and (gp * gm == 0).all()
    torch.testing.assert_close(conductances_to_weights(gp, gm, s), w)
    gp, gm, s = weights_to_conductances(torch.zeros(2, 3), 25.0)  # maps as if max|W| = 1
    assert s.item() == 25.0 and gp.abs().sum() == 0 and gm.abs().sum() == 0
    with pytest.raises(ValueError, match="NaN"):
        weights_to_conductances(torch.tensor([float("nan")]), 25.0)


def test_compensation_rules():
    readout = [torch.tensor([[1.0, -3.0], [2.0, 0.0]])]
    glob = GlobalDriftCompensation()
    ref = glob.reference(readout)
    assert ref.shape == (1, 2) and torch.allclose(ref, torch.full((1, 2), 1.5))
    later = [r * 0.5 for r in readout]
    torch.testing.assert_close(glob.alpha(ref, later), torch.full((1, 2), 2.0))
    col = PerColumnDriftCompensation()
    torch.testing.assert_close(col.reference(readout), torch.tensor([[1.5, 1.5]]))
    torch.testing.assert_close(col.alpha(col.reference(readout), [torch.tensor([[1.0, 0.0], [2.0, 0.0]])]),
                               torch.tensor([[1.0, 1.5 / 1e-4]]))
