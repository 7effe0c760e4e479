"""The fused Triton analog MVM against the torch reference (the spec), under the interpreter.

Noise off: forward and both gradients equal the reference within fp32 tolerance, for every switch
and odd shapes. The one allowed difference: the kernel's dot products sum in another order than
torch's bmm, so an output on an ADC rounding tie may come out one quantization step away; at most
``MAX_FLIP_FRACTION`` of the outputs may differ, and by at most one step (times α·2^k and the scales).
Noise on: same seed, same output; standard deviations within 5 % of the configured values.
"""

import dataclasses
import math

import pytest
import torch

from aimc_lab.config import IOParameters
from aimc_lab.kernels.analog_mvm import reference as ref
from aimc_lab.kernels.analog_mvm import triton_impl

MAX_FLIP_FRACTION = 1e-3
QUIET = IOParameters(out_noise=0.0)  # library defaults with the noise off



def _data(M, N, K, seed=0, zero_frac=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(M, K, generator=g)
    if zero_frac:
        x = x * (torch.rand(M, K, generator=g) >= zero_frac)
    w = (torch.randn(N, K, generator=g) * 0.3).clamp(-1, 1)
    return x, w


def _scales(S, N, seed=1):
    return torch.rand(S, N, generator=torch.Generator().manual_seed(seed)) + 0.5


def _run(fn, x, w, io, in_size, out_scales, grad_y, generator=None):
    """Forward + backward of ``fn``; asserts the inputs are unchanged."""
    keep = (x.clone(), w.clone(), None if out_scales is None else out_scales.clone())
    xr = x.clone().requires_grad_()
    wr = w.clone().requires_grad_()
    y = fn(xr, wr, io, in_size=in_size, out_scales=out_scales, generator=generator)
    y.backward(grad_y)
    assert torch.equal(xr.detach(), keep[0]) and torch.equal(wr.detach(), keep[1])
    if out_scales is not None:
        assert torch.equal(out_scales, keep[2])
    return y.detach(), xr.grad, wr.grad


def _step_bound(x, w, io, in_size, out_scales):
    """Per row: one ADC step times the largest α·2^k·scale over the slices."""
    _, saved, _ = triton_impl.analog_mvm_fwd(x, w, io, in_size=in_size, out_scales=out_scales,
                                             save=True)
    factor = saved[3]  # [S, M]
    scale = out_scales.abs().amax(dim=1, keepdim=True) if out_scales is not None else 1.0
    return (factor * scale).amax(dim=0) * io.out_step * io.out_scale  # [M]


def _assert_matches(x, w, io, in_size=None, out_scales=None, grads=True):
    M, N = x.shape[0], w.shape[0]
    grad_y = torch.randn(M, N, generator=torch.Generator().manual_seed(3))
    y_r, gx_r, gw_r = _run(ref.analog_mvm, x, w, io, in_size, out_scales, grad_y)
    y_t, gx_t, gw_t = _run(triton_impl.analog_mvm, x, w, io, in_size, out_scales, grad_y)
    assert y_t.shape == (M, N) and y_t.dtype == x.dtype
    tol = 1e-5 * (1 + y_r.abs())
    off = (y_t - y_r).abs() > tol
    if off.any():
        assert io.out_step > 0, "without ADC quantization the outputs must agree everywhere"
        assert off.float().mean().item() <= MAX_FLIP_FRACTION
        step = _step_bound(x, w, io, in_size, out_scales).unsqueeze(1).expand(M, N)
        assert ((y_t - y_r).abs()[off] <= 1.001 * step[off] + tol[off]).all()
    if grads:
        torch.testing.assert_close(gx_t, gx_r, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gw_t, gw_r, rtol=1e-5, atol=1e-5)
    return y_t, y_r


SWITCHES = {
    "defaults": QUIET,
    "nm_abs_max_thres": dataclasses.replace(QUIET, nm_thres=0.8),
    "nm_max": dataclasses.replace(QUIET, noise_management="max"),
    "nm_constant": dataclasses.replace(QUIET, noise_management="constant", nm_thres=2.0),
    "nm_none": dataclasses.replace(QUIET, noise_management="none"),
    "bm_none": dataclasses.replace(QUIET, bound_management="none"),
    "bm_iterative_saturating": dataclasses.replace(QUIET, out_bound=1.5),
    "no_quantization": dataclasses.replace(QUIET, inp_res=0.0, out_res=0.0),
    "inp_quant_only": dataclasses.replace(QUIET, out_res=0.0),
    "out_quant_only": dataclasses.replace(QUIET, inp_res=0.0),
    "inp_res_as_steps": dataclasses.replace(QUIET, inp_res=31.0, inp_bound=0.5),
    "ir_drop": dataclasses.replace(QUIET, ir_drop=1.0),
    "ir_drop_strong": dataclasses.replace(QUIET, ir_drop=5.0, ir_drop_g_ratio=2e3, out_res=0.0),
    "out_scale": dataclasses.replace(QUIET, out_scale=0.5),
    "standard_preset": IOParameters(inp_res=1 / 254, out_res=1 / 254, out_bound=10.0, out_noise=0.0,
                                    ir_drop=1.0, noise_management="constant", nm_thres=1.0,
                                    bound_management="none"),
    "perfect": IOParameters(is_perfect=True),
}


@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_switches_match_reference(name):
    io = SWITCHES[name]
    x, w = _data(24, 40, 150, seed=sorted(SWITCHES).index(name), zero_frac=0.3)
    x[3] = 0.0  # an all-zero row
    x[5, :64] = 0.0  # an all-zero slice
    x[7] *= 6.0  # a row that clips at the DAC
    _assert_matches(x, w, io, in_size=64, out_scales=_scales(3, 40))


def test_noise_management_max_rows_without_a_positive_input_match_reference():
    """'max' with rows that have no positive input (α = max|x|, docs/physics.md §1), slice by slice."""
    x, w = _data(12, 24, 70, seed=7)
    x[0] = -x[0].abs()  # all negative
    x[1, :32] = -x[1, :32].abs()  # first slice negative, second mixed
    x[2, 32:64] = 0.0  # an all-zero slice
    x[3] = 0.0
    io = dataclasses.replace(QUIET, noise_management="max")
    _assert_matches(x, w, io, in_size=32, out_scales=_scales(3, 24))
    y = triton_impl.analog_mvm(x, w, dataclasses.replace(io, inp_res=0.0, out_res=0.0, bound_management="none"),
                               in_size=32)
    torch.testing.assert_close(y[0], x[0] @ w.T, rtol=1e-4, atol=1e-4)  # nothing clipped


def test_bound_management_triggers_and_matches():
    io = dataclasses.replace(QUIET, out_bound=1.0)
    x, w = _data(16, 32, 100, seed=5)
    y_it, _ = _assert_matches(x, w, io)
    y_none = triton_impl.analog_mvm(x, w, dataclasses.replace(io, bound_management="none"))
    assert y_none.abs().max() <= io.out_bound * x.abs().amax() + 1e-5
    assert (y_it.abs() > y_none.abs() + 1e-4).any(), "bound management never kicked in"


@pytest.mark.parametrize("M,N,K,in_size", [
    (1, 1, 1, None),
    (1, 16, 40, None),
    (3, 255, 64, None),
    (3, 256, 64, None),
    (3, 257, 64, None),
    (2, 24, 255, None),
    (2, 24, 256, None),
    (2, 24, 257, None),
    (2, 24, 257, 256),
    (5, 33, 600, 256),  # 3 slices, the last one partial
    (17, 20, 96, 32),  # 3 full slices, rows not a multiple of a block
])
def test_odd_shapes_match_reference(M, N, K, in_size):
    x, w = _data(M, N, K, seed=M * 1000 + N + K)
    S = 1 if in_size is None else math.ceil(K / in_size)
    _assert_matches(x, w, QUIET, in_size=in_size, out_scales=_scales(S, N))


def test_non_contiguous_inputs():
    x, w = _data(20, 16, 48, seed=9)
    x_t = x.t().contiguous().t()  # column-major x
    w_t = w.t().contiguous().t()
    y = triton_impl.analog_mvm(x_t, w_t, QUIET, in_size=32)
    torch.testing.assert_close(y, ref.analog_mvm(x, w, QUIET, in_size=32), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("w_noise_type", ["additive_constant", "pcm_read"])
def test_weight_noise_gradients_match_and_std(w_noise_type):
    """Gradients do not depend on the noise when nothing clips; the noise has the configured std."""
    sigma_w = 0.1
    io = IOParameters(inp_res=0.0, out_res=0.0, out_bound=1e6, out_noise=0.0, w_noise=sigma_w,
                      w_noise_type=w_noise_type, noise_management="none", bound_management="none")
    x, w = _data(64, 128, 40, seed=11)
    x = x.clamp(-1, 1)
    grad_y = torch.randn(64, 128)
    gen = torch.Generator().manual_seed(0)
    y_t, gx_t, gw_t = _run(triton_impl.analog_mvm, x, w, io, None, None, grad_y, gen)
    _, gx_r, gw_r = _run(ref.analog_mvm, x, w, io, None, None, grad_y, gen)
    torch.testing.assert_close(gx_t, gx_r, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw_t, gw_r, rtol=1e-5, atol=1e-5)
    if w_noise_type == "pcm_read":
        expected = sigma_w * ((x * x) @ w.abs().t()).sqrt()  # [M, N]
    else:
        expected = sigma_w * x.norm(dim=1, keepdim=True).expand(64, 128)
    residuals = [(y_t - x @ w.t()) / expected]
    for seed in range(1, 4):
        y = triton_impl.analog_mvm(x, w, io, generator=torch.Generator().manual_seed(seed))
        residuals.append((y - x @ w.t()) / expected)
    r = torch.stack(residuals)
    assert abs(r.std().item() - 1.0) < 0.05
    assert abs(r.mean().item()) < 0.05


def test_output_noise_std():
    sigma = 0.06
    io = IOParameters(inp_res=0.0, out_res=0.0, out_bound=1e6, out_noise=sigma,
                      noise_management="none", bound_management="none")
    x, w = _data(64, 128, 32, seed=12)
    clean = triton_impl.analog_mvm(x, w, dataclasses.replace(io, out_noise=0.0))
    diffs = torch.stack([triton_impl.analog_mvm(x, w, io, generator=torch.Generator().manual_seed(s))
                         - clean for s in range(4)])
    assert abs(diffs.std().item() / sigma - 1.0) < 0.05
    assert abs(diffs.mean().item()) < 0.05 * sigma


def test_input_noise_std():
    sigma_in = 0.05
    io = IOParameters(inp_res=0.0, out_res=0.0, out_bound=1e6, out_noise=0.0, inp_noise=sigma_in,
                      noise_management="none", bound_management="none")
    x, w = _data(64, 128, 32, seed=13)
    x = x.clamp(-1, 1)
    expected = sigma_in * w.norm(dim=1)  # [N]
    diffs = torch.stack([(triton_impl.analog_mvm(x, w, io, generator=torch.Generator().manual_seed(s))
                          - x @ w.t()) / expected for s in range(4)])
    assert abs(diffs.std().item() - 1.0) < 0.05


def test_stochastic_rounding_is_unbiased():
    """Each DAC output is the floor or the ceiling on the grid, with the right probabilities."""
    io = IOParameters(inp_res=1 / 8, inp_sto_round=True, out_res=0.0, out_bound=1e6, out_noise=0.0,
                      noise_management="none", bound_management="none")
    step = io.inp_step
    x0 = torch.linspace(-0.95, 0.95, 48)
    x = x0.expand(2048, 48).contiguous()  # the same row many times: independent roundings
    w = torch.ones(16, 48)
    _, saved, _ = triton_impl.analog_mvm_fwd(x, w, io, generator=torch.Generator().manual_seed(0),
                                             save=True)
    xt = saved[0][0]  # [M, K]
    levels = xt / step
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert ((xt - x).abs() < step + 1e-6).all()
    p = x0 / step - torch.floor(x0 / step)
    sem = step * torch.sqrt(p * (1 - p) / x.shape[0]) + 1e-7
    assert ((xt.mean(dim=0) - x0).abs() <= 5 * sem).all()
    # the reference's stochastic rounding has the same mean (through the MVM)
    y_t = triton_impl.analog_mvm(x, w, io, generator=torch.Generator().manual_seed(1)).mean(dim=0)
    y_r = ref.analog_mvm(x, w, io, generator=torch.Generator().manual_seed(1)).mean(dim=0)
    exact = x0.sum()
    assert (y_t - exact).abs().max() < 0.02 and (y_r - exact).abs().max() < 0.02


NOISY = IOParameters(inp_noise=0.01, inp_sto_round=True, w_noise=0.02, w_noise_type="pcm_read",
                     ir_drop=1.0, out_bound=2.0)


def test_same_seed_same_output_and_inputs_unchanged():
    x, w = _data(16, 48, 150, seed=21)
    osc = _scales(3, 48)
    grad_y = torch.ones(16, 48)
    runs = [_run(triton_impl.analog_mvm, x, w, NOISY, 64, osc, grad_y, torch.Generator().manual_seed(s))
            for s in (5, 5, 6)]
    for a, b in zip(runs[0], runs[1]):
        assert torch.equal(a, b)
    assert not torch.equal(runs[0][0], runs[2][0])


def test_zero_slice_gives_zero_even_with_noise():
    x, w = _data(4, 32, 128, seed=22)
    x[1] = 0.0
    x[2, 64:] = 0.0
    y = triton_impl.analog_mvm(x, w, NOISY, in_size=64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y[1], torch.zeros(32))
    y_first = triton_impl.analog_mvm(x[2:3, :64], w[:, :64], NOISY,
                                     generator=torch.Generator().manual_seed(0))
    assert y[2].abs().max() > 0 and y_first.abs().max() > 0


@pytest.mark.parametrize("io", [QUIET, SWITCHES["nm_constant"], SWITCHES["perfect"]],
                         ids=["abs_max", "constant", "perfect"])
def test_nan_input_raises_like_the_reference(io):
    x, w = _data(2, 8, 16)
    x[0, 3] = float("nan")
    for fn in (ref.analog_mvm, triton_impl.analog_mvm):
        with pytest.raises(ValueError, match="NaN"):
            fn(x, w, io)


def test_out_scales_gradient_refused():
    x, w = _data(2, 8, 16)
    osc = torch.ones(1, 8, requires_grad=True)
    y = triton_impl.analog_mvm(x, w.requires_grad_(), QUIET, out_scales=osc)
    with pytest.raises(RuntimeError, match="out_scales"):
        y.sum().backward()
