"""Element-wise Triton kernels (weight modifiers, PCM noise) against their torch references.

Deterministic parts equal the reference (exactly, or to a few ulp where the kernel evaluates a power
through exp/log); noise terms are checked statistically: the normalized residual has mean 0 and
standard deviation 1 within 5 % over >= 64k samples.
"""

import dataclasses

import pytest
import torch

from aimc_lab.config import NoiseModelParameters, WeightModifierParameters
from aimc_lab.devices.pcm import drift_exponent_stats, programming_noise_std, read_noise_std
from aimc_lab.kernels.pcm_noise import reference as pcm_ref
from aimc_lab.kernels.pcm_noise import triton_impl as pcm_tri
from aimc_lab.kernels.weight_modifier import reference as wm_ref
from aimc_lab.kernels.weight_modifier import triton_impl as wm_tri

PCM = NoiseModelParameters(kind="pcm")


def _weights(shape=(255, 257), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * 0.3


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _unchanged(fn, *tensors):
    keep = [t.clone() for t in tensors]
    out = fn()
    for t, k in zip(tensors, keep):
        assert torch.equal(t, k), "a kernel wrote into its input"
    return out


def _assert_standard(r, tol=0.05):
    assert abs(r.mean().item()) < tol
    assert abs(r.std().item() - 1.0) < tol


# --------------------------------------------------------------------------------------------
# weight modifiers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    WeightModifierParameters(kind="discretize", res=1 / 16),
    WeightModifierParameters(kind="discretize", res=31.0, assumed_wmax=0.5),
    WeightModifierParameters(kind="none"),
], ids=["discretize", "discretize_steps_assumed", "none"])
def test_deterministic_modifiers_equal_reference(params):
    w = _weights()
    out = _unchanged(lambda: wm_tri.weight_modifier(w, params), w)
    assert out.data_ptr() != w.data_ptr() and out.shape == w.shape
    assert torch.equal(out, wm_ref.weight_modifier(w, params))


@pytest.mark.parametrize("kind", ["add_normal", "mult_normal", "poly"])
def test_gaussian_modifiers_statistics(kind):
    std = 0.1
    params = WeightModifierParameters(kind=kind, std_dev=std)
    w = _weights((256, 257), seed=1)
    out = _unchanged(lambda: wm_tri.weight_modifier(w, params, _gen(3)), w)
    assert torch.equal(out, wm_tri.weight_modifier(w, params, _gen(3)))
    assert not torch.equal(out, wm_tri.weight_modifier(w, params, _gen(4)))
    omega = w.abs().max()
    if kind == "add_normal":
        r = (out - w) / (std * omega)
    elif kind == "mult_normal":
        r = (out / w - 1) / std
    else:
        c0, c1, c2 = params.coeffs
        a = w.abs() / omega
        r = (out - w) / (omega * std * (c0 + c1 * a + c2 * a * a))
    _assert_standard(r)


def test_drop_connect():
    params = WeightModifierParameters(kind="drop_connect", pdrop=0.3)
    w = _weights((256, 257), seed=2)
    out = _unchanged(lambda: wm_tri.weight_modifier(w, params, _gen(0)), w)
    dropped = out == 0
    assert torch.equal(out[~dropped], w[~dropped])
    assert abs(dropped.float().mean().item() - 0.3) < 0.05 * 0.3


def test_modifier_keeps_dtype_and_shape():
    w = _weights((3, 17)).to(torch.float64)
    out = wm_tri.weight_modifier(w, WeightModifierParameters(kind="add_normal", std_dev=0.1), _gen(0))
    assert out.dtype == torch.float64 and out.shape == (3, 17)


# --------------------------------------------------------------------------------------------
# PCM programming noise, drift, read noise
# --------------------------------------------------------------------------------------------


def _targets(n=65536, seed=0):
    return torch.rand(n, generator=_gen(seed)) * 25.0


def test_program_without_noise_equals_reference():
    params = dataclasses.replace(PCM, prog_noise_scale=0.0, drift_scale=0.0)
    g = _targets()
    g[:5] = 0.0
    gp, nu = _unchanged(lambda: pcm_tri.pcm_program(g, params, _gen(0)), g)
    gp_r, nu_r = pcm_ref.pcm_program(g, params, _gen(0))
    assert torch.equal(gp, gp_r) and torch.equal(nu, nu_r)


def test_programming_noise_and_drift_exponent_statistics():
    g = torch.full((65536,), 10.0)
    gp, nu = pcm_tri.pcm_program(g, PCM, _gen(1))
    same = pcm_tri.pcm_program(g, PCM, _gen(1))
    assert torch.equal(gp, same[0]) and torch.equal(nu, same[1])
    _assert_standard((gp - g) / programming_noise_std(g, PCM))
    mu, sigma = drift_exponent_stats(g, PCM)  # μ/σ ≈ 6 here: folding by |.| is negligible
    _assert_standard((nu - mu) / sigma)


def test_drift_without_read_noise_equals_reference():
    params = dataclasses.replace(PCM, read_noise_scale=0.0)
    gp, nu = pcm_ref.pcm_program(_targets(seed=2), PCM, _gen(2))
    for t in (0.0, 3600.0, 3.15e7):
        g = _unchanged(lambda: pcm_tri.pcm_at_time(gp, nu, t, params, _gen(0)), gp, nu)
        torch.testing.assert_close(g, pcm_ref.pcm_at_time(gp, nu, t, params, _gen(0)),
                                   rtol=1e-5, atol=1e-6)


def test_read_noise_statistics():
    t = 3600.0
    gp = torch.full((65536,), 12.0)
    nu = torch.full((65536,), 0.06)
    g = pcm_tri.pcm_at_time(gp, nu, t, PCM, _gen(5))
    assert torch.equal(g, pcm_tri.pcm_at_time(gp, nu, t, PCM, _gen(5)))
    t_abs = t + PCM.t_0
    g_drift = gp * (t_abs / PCM.t_0) ** (-nu)
    _assert_standard((g - g_drift) / read_noise_std(gp, g_drift, t_abs, PCM))


def test_pcm_argument_errors():
    gp = torch.ones(4)
    with pytest.raises(ValueError, match="t_inference"):
        pcm_tri.pcm_at_time(gp, torch.ones(4), -1.0, PCM)
    with pytest.raises(ValueError, match="same shape"):
        pcm_tri.pcm_at_time(gp, torch.ones(5), 1.0, PCM)
