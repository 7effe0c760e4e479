"""The fast CPU analog MVM (kernels/analog_mvm/cpu_fast.py) against the plain reference (the spec).

fp32 second-order products: forward (noise on, same seed: both draw the same numbers in the same
order) and both gradients agree for every switch and odd shapes around tile boundaries; the one
allowed difference is an output on an ADC rounding tie landing one step away (at most
``MAX_FLIP_FRACTION`` of the outputs, by at most one step).

bf16 second-order products (the default on CPUs with native bf16 matmuls): bf16 keeps 8 significant
bits (unit roundoff u = 2^-8). Each product term of the three sums is formed from at most four
roundings (x̃ to bf16, x̃·position or x̃² in bf16, w to bf16), so it is off by at most ~4u = 2^-6
relative, and a fp32-accumulated sum by at most 2^-6 of the same sum over |terms|. Hence, with
T = ρ·c·Σ_j |w_ij||x̃_j|(1 − (1 − j/K)²) and c from a (its own error ~2^-7 relative), the IR-drop
correction is off by at most ~1.5·2^-6·T, and the read-noise std (the square root of a variance
off by 2^-6) by 2^-7 of the noise term. The test asserts, before the ADC,
|fast − spec| ≤ 2^-5·T + 2^-6·|noise term| elementwise (T and x̃ computed independently from the
spec's DAC output), and after the default ADC at most 2 % of the outputs one step away.
"""

import dataclasses

import pytest
import torch

from aimc_lab.config import IOParameters
from aimc_lab.kernels.analog_mvm import cpu_fast
from aimc_lab.kernels.analog_mvm import reference as ref

MAX_FLIP_FRACTION = 2e-3
QUIET = IOParameters(out_noise=0.0)  # library defaults with the noise off
STANDARD = IOParameters(inp_res=1 / 254, out_res=1 / 254, out_bound=10.0, out_noise=0.04, w_noise=0.0175,
                        w_noise_type="pcm_read", ir_drop=1.0, noise_management="constant", nm_thres=1.0,
                        bound_management="none")


def _data(M, N, K, seed=0, zero_frac=0.3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(M, K, generator=g)
    x = x * (torch.rand(M, K, generator=g) >= zero_frac)
    w = (torch.randn(N, K, generator=g) * 0.3).clamp(-1, 1)
    return x, w


def _run(fn, x, w, io, in_size, out_scales, grad_y, seed):
    keep = (x.clone(), w.clone())
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    y = fn(xr, wr, io, in_size=in_size, out_scales=out_scales, generator=torch.Generator().manual_seed(seed))
    y.backward(grad_y)
    assert torch.equal(xr.detach(), keep[0]) and torch.equal(wr.detach(), keep[1]), "inputs were modified"
    return y.detach(), xr.grad, wr.grad


def _fp32(x, w, io, **kw):
    return cpu_fast.analog_mvm(x, w, io, aux_dtype=torch.float32, **kw)


def _assert_matches(x, w, io, in_size=None, out_scales=None, seed=0):
    M, N = x.shape[0], w.shape[0]
    grad_y = torch.randn(M, N, generator=torch.Generator().manual_seed(3))
    y_r, gx_r, gw_r = _run(ref.analog_mvm, x, w, io, in_size, out_scales, grad_y, seed)
    y_f, gx_f, gw_f = _run(_fp32, x, w, io, in_size, out_scales, grad_y, seed)
    assert y_f.shape == (M, N) and y_f.dtype == x.dtype
    tol = 1e-5 * (1 + y_r.abs())
    off = (y_f - y_r).abs() > tol
    if off.any():
        assert io.out_step > 0, "without ADC quantization the outputs must agree everywhere"
        assert off.float().mean().item() <= MAX_FLIP_FRACTION
        _, saved, _ = ref.mvm_forward(x, w, io, in_size, out_scales, torch.Generator().manual_seed(seed))
        scale = out_scales.abs().amax(dim=1, keepdim=True) if out_scales is not None else 1.0
        step = ((saved[3] * scale).amax(dim=0) * io.out_step * io.out_scale).unsqueeze(1).expand(M, N)
        assert ((y_f - y_r).abs()[off] <= 1.001 * step[off] + tol[off]).all()
    else:  # the gradients depend on the output masks: compare them where no output flipped
        torch.testing.assert_close(gx_f, gx_r, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gw_f, gw_r, rtol=1e-5, atol=1e-5)
    # the no-gradient path computes the same output
    with torch.no_grad():
        y_ng = _fp32(x, w, io, in_size=in_size, out_scales=out_scales,
                     generator=torch.Generator().manual_seed(seed))
    assert torch.equal(y_ng, y_f)
    return y_f, y_r


SWITCHES = {
    "defaults_noisy": IOParameters(),
    "nm_abs_max_thres": dataclasses.replace(QUIET, nm_thres=0.8),
    "nm_max": dataclasses.replace(QUIET, noise_management="max"),
    "nm_constant": dataclasses.replace(QUIET, noise_management="constant", nm_thres=2.0),
    "nm_none": dataclasses.replace(QUIET, noise_management="none", out_noise=0.1),
    "bm_none": dataclasses.replace(QUIET, bound_management="none"),
    "bm_iterative_saturating_noisy": IOParameters(out_bound=1.5, out_noise=0.1),
    "no_quantization": dataclasses.replace(QUIET, inp_res=0.0, out_res=0.0, out_noise=0.05),
    "inp_sto_round": dataclasses.replace(QUIET, inp_sto_round=True, inp_res=1 / 30),
    "inp_noise": dataclasses.replace(QUIET, inp_noise=0.05, out_res=0.0),
    "inp_res_as_steps": dataclasses.replace(QUIET, inp_res=31.0, inp_bound=0.5),
    "ir_drop_strong": dataclasses.replace(QUIET, ir_drop=5.0, ir_drop_g_ratio=2e3, out_res=0.0),
    "w_noise_additive": dataclasses.replace(QUIET, w_noise=0.05, w_noise_type="additive_constant", out_noise=0.02),
    "w_noise_pcm": dataclasses.replace(QUIET, w_noise=0.05, w_noise_type="pcm_read"),
    "out_scale": dataclasses.replace(QUIET, out_scale=0.5),
    "standard_preset": STANDARD,
    "perfect": IOParameters(is_perfect=True),
}


@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_switches_match_reference(name):
    x, w = _data(24, 40, 150, seed=sorted(SWITCHES).index(name))
    x[3] = 0.0  # an all-zero row
    x[5, :64] = 0.0  # an all-zero slice
    x[7] *= 6.0  # a row that clips at the DAC
    scales = torch.rand(3, 40, generator=torch.Generator().manual_seed(1)) + 0.5
    _assert_matches(x, w, SWITCHES[name], in_size=64, out_scales=scales, seed=11)


@pytest.mark.parametrize("M,N,K,in_size", [(1, 1, 1, None), (5, 255, 257, 256), (9, 257, 255, 128),
                                           (3, 17, 513, 256), (0, 4, 10, None)])
def test_odd_shapes_match_reference(M, N, K, in_size):
    x, w = _data(M, N, K, seed=M + N + K)
    _assert_matches(x, w, dataclasses.replace(STANDARD, bound_management="iterative", out_bound=4.0),
                    in_size=in_size)


def test_iterative_bound_management_reruns_the_same_rows_as_the_spec():
    """Most rows saturate (inputs U[0, 1), a 256-input slice): 2-3 passes, every extra pass draws
    noise for the re-run rows only, in the spec's order, so the outputs stay equal."""
    g = torch.Generator().manual_seed(5)
    x, w = torch.rand(64, 256, generator=g), torch.rand(32, 256, generator=g) * 0.5
    io = IOParameters(out_noise=0.06)
    y_f, y_r = _assert_matches(x, w, io, seed=2)
    _, saved, _ = ref.mvm_forward(x, w, io, None, None, torch.Generator().manual_seed(2))
    alpha = x.abs().amax(dim=1)
    assert (saved[3][0] / alpha > 1.5).float().mean() > 0.5  # most rows ran with k >= 1


def test_bf16_second_order_products_within_their_derived_tolerance():
    x, w = _data(256, 96, 512, seed=9, zero_frac=0.5)
    x = x.clamp(-1, 1)
    io = dataclasses.replace(STANDARD, out_res=0.0, out_bound=1e6)  # before the ADC
    no_ir = dataclasses.replace(io, ir_drop=0.0)
    clean = dataclasses.replace(no_ir, w_noise=0.0, w_noise_type="none", out_noise=0.0)

    def spec(cfg):
        return ref.analog_mvm(x, w, cfg, generator=torch.Generator().manual_seed(7))
    full = spec(io)
    noise_term = (spec(no_ir) - spec(clean)).abs()  # (std incl. read noise)·ξ, the same ξ
    # T = ρ·c·Σ|w||x̃|·position from the spec's DAC output x̃ (α = 1: constant noise management)
    x_dac = ref.mvm_forward(x, w, io, None, None, torch.Generator().manual_seed(7))[1][0][0]  # [M, K]
    K = x.shape[1]
    a = (x_dac.abs() @ w.abs().T) * (K / io.ir_drop_g_ratio)
    c = a * (0.5 - 0.2 * a + 0.05 * a * a)
    position = 1 - (1 - torch.arange(K) / K) ** 2
    T = io.ir_drop * c * ((x_dac * position).abs() @ w.abs().T)
    assert T.mean() > 0.01 and noise_term.mean() > 0.01  # both terms are there to be checked
    fast = cpu_fast.analog_mvm(x, w, io, generator=torch.Generator().manual_seed(7), aux_dtype=torch.bfloat16)
    bound = 2.0 ** -5 * T + 2.0 ** -6 * noise_term + 1e-5 * (1 + full.abs())
    ratio = float(((fast - full).abs() / bound).max())  # about 0.07: a worst-case bound
    assert ratio <= 1.0, ratio
    assert (fast - full).abs().max() > 0  # bf16 really ran (a bound that cannot fail proves nothing)
    # after the default ADC: a few outputs one step away, the rest equal
    y_r = ref.analog_mvm(x, w, STANDARD, generator=torch.Generator().manual_seed(7))
    y_f = cpu_fast.analog_mvm(x, w, STANDARD, generator=torch.Generator().manual_seed(7), aux_dtype=torch.bfloat16)
    diff = (y_f - y_r).abs()
    assert (diff > 1e-6).float().mean() <= 0.02
    assert (diff <= STANDARD.out_step * 1.001).all()


def test_round_half_away_in_place_is_the_spec_bit_for_bit():
    v = torch.cat([torch.tensor([0.5, -0.5, 1.5, -2.5, 0.49999997, -0.49999997, 0.0, -0.0, 2.5000002]),
                   torch.randn(10000, generator=torch.Generator().manual_seed(0)) * 50,
                   torch.arange(-200, 201) / 4.0])
    assert torch.equal(cpu_fast._round_half_away(v), ref.round_half_away(v))


# ------------------------------------------------------------------------------------------------
# the fast path's own backward (cpu_fast.mvm_backward) against the spec's, one gradient at a time
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("need", ["x", "w", "both"])
@pytest.mark.parametrize("in_size,scaled", [(None, False), (None, True), (48, True)])
def test_backward_matches_the_spec_per_gradient(need, in_size, scaled):
    """Noise on, ADC rounding off (no output can flip), every mask active: DAC clipping, ADC
    saturation, an all-zero row; one slice (the single-matmul weight gradient) and three."""
    x, w = _data(33, 21, 130, seed=4)
    x[2] = 0.0
    x[6] *= 8.0
    io = dataclasses.replace(STANDARD, out_res=0.0, out_bound=3.0, out_scale=0.7)
    S = 1 if in_size is None else 3
    scales = torch.rand(S, 21, generator=torch.Generator().manual_seed(2)) + 0.5 if scaled else None
    grad_y = torch.randn(33, 21, generator=torch.Generator().manual_seed(8))
    grads = []
    for fn in (ref.analog_mvm, _fp32):
        xr = x.clone().requires_grad_(need in ("x", "both"))
        wr = w.clone().requires_grad_(need in ("w", "both"))
        y = fn(xr, wr, io, in_size=in_size, out_scales=scales, generator=torch.Generator().manual_seed(5))
        y.backward(grad_y)
        grads.append((y.detach(), xr.grad, wr.grad))
    (y_r, gx_r, gw_r), (y_f, gx_f, gw_f) = grads
    torch.testing.assert_close(y_f, y_r, rtol=1e-5, atol=1e-5)
    saturated = (y_r.abs() >= 0.999 * io.out_bound * io.out_scale * (1 if scales is None else scales.min())).any()
    assert saturated or need == "w"  # the output mask really stops some gradient
    for fast, spec in ((gx_f, gx_r), (gw_f, gw_r)):
        assert (fast is None) == (spec is None)
        if spec is not None:
            assert fast.shape == spec.shape
            torch.testing.assert_close(fast, spec, rtol=1e-5, atol=1e-5)


def test_empty_batch_forward_and_gradients():
    x, w = torch.zeros(0, 70, requires_grad=True), torch.rand(9, 70, requires_grad=True)
    y = cpu_fast.analog_mvm(x, w, STANDARD, in_size=32, generator=torch.Generator().manual_seed(0))
    assert y.shape == (0, 9)
    y.sum().backward()
    assert x.grad.shape == (0, 70) and torch.equal(w.grad, torch.zeros(9, 70))


def test_all_zero_rows_give_exact_zeros_under_every_noise_management():
    """The spec replaces α = 0 by 1, the fast path by the smallest subnormal; either way the row
    divides to 0 and its output (noise included) is zeroed by the rescale."""
    x, w = _data(6, 12, 40, seed=1)
    x[[1, 4]] = 0.0
    for nm, thres in (("abs_max", 0.0), ("max", 0.0), ("constant", 2.0), ("none", 0.0)):
        io = dataclasses.replace(IOParameters(out_noise=0.3, inp_noise=0.1), noise_management=nm, nm_thres=thres)
        y = cpu_fast.analog_mvm(x, w, io, generator=torch.Generator().manual_seed(0))
        assert torch.equal(y[[1, 4]], torch.zeros(2, 12)), nm
        assert (y[[0, 2, 3, 5]] != 0).all(), nm


def test_inputs_at_the_float_limits_round_like_the_spec():
    """Tiny inputs (subnormal after the division by α·Δ), huge ones and exact rounding ties."""
    w = torch.rand(7, 16, generator=torch.Generator().manual_seed(0)) - 0.5
    ties = (torch.arange(-8, 8) + 0.5) / 254
    tiny = torch.full((16,), 1e-39)
    huge = torch.linspace(-3e37, 3e37, 16)
    io = dataclasses.replace(QUIET, noise_management="none", bound_management="none", out_bound=1e9, out_res=0.0)
    for x in (ties, tiny, huge):
        x = x.reshape(1, 16)
        spec = ref.analog_mvm(x, w, io, generator=torch.Generator().manual_seed(0))
        fast = _fp32(x, w, io, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(fast, spec, rtol=1e-6, atol=0.0)
