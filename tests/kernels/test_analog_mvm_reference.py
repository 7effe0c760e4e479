"""Each step of the torch MVM reference (docs/physics.md §1) against a hand computation."""

import math

import pytest
import torch

from aimc_lab.config import IOParameters
from aimc_lab.kernels.analog_mvm import reference as ref
from aimc_lab.kernels.analog_mvm.reference import analog_mvm

QUIET = dict(out_noise=0.0, inp_res=0.0, out_res=0.0, bound_management="none", noise_management="none",
             out_bound=1e6, inp_bound=1e6)


def io(**kw):
    return IOParameters(**{**QUIET, **kw})



@pytest.mark.parametrize("M,K,N,size", [(1, 1, 1, None), (3, 257, 255, 128), (7, 1000, 70, 512), (1, 5, 3, 2)])
def test_perfect_equals_matmul_with_slices(M, K, N, size):
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(M, K, generator=g), torch.randn(N, K, generator=g)
    y = analog_mvm(x, w, IOParameters(is_perfect=True), in_size=size)
    torch.testing.assert_close(y, x @ w.T, rtol=1e-5, atol=1e-4)


def test_dac_quantization_rounds_half_away_and_clips():
    w = torch.eye(4)
    x = torch.tensor([[0.3, 0.74, -0.25, 3.0]])
    y = analog_mvm(x, w, io(inp_res=0.25, inp_bound=1.0))  # Δ_in = 0.5
    torch.testing.assert_close(y, torch.tensor([[0.5, 0.5, -0.5, 1.0]]))
    assert ref.round_half_away(torch.tensor([0.5, -0.5, 1.5, -2.5, 0.49])).tolist() == [1, -1, 2, -3, 0]


def test_adc_quantization_and_clipping():
    w = torch.eye(3)
    x = torch.tensor([[0.26, -0.74, 30.0]])
    y = analog_mvm(x, w, io(out_res=0.125, out_bound=2.0))  # Δ_out = 0.5
    torch.testing.assert_close(y, torch.tensor([[0.5, -0.5, 2.0]]))


def test_noise_management_abs_max_rescales_and_zero_row_is_zero():
    w = torch.eye(2)
    x = torch.tensor([[4.0, -2.0], [0.0, 0.0]])
    y = analog_mvm(x, w, io(inp_bound=1.0, noise_management="abs_max", out_noise=0.5))
    assert y[1].abs().sum() == 0  # all-zero row: exactly 0 even with output noise
    y = analog_mvm(x, w, io(inp_bound=1.0, noise_management="abs_max"))
    torch.testing.assert_close(y[0], torch.tensor([4.0, -2.0]))
    # without noise management the same input clips at the DAC bound
    y = analog_mvm(x, w, io(inp_bound=1.0, noise_management="none"))
    torch.testing.assert_close(y[0], torch.tensor([1.0, -1.0]))
    # nm_thres caps α: α = 2 → 4/2 clips at 1 → 2
    y = analog_mvm(x, w, io(inp_bound=1.0, noise_management="abs_max", nm_thres=2.0))
    torch.testing.assert_close(y[0], torch.tensor([2.0, -2.0]))


def test_noise_management_max_and_rows_without_a_positive_input():
    """'max' (AIHWKIT's Max, meant for non-negative inputs such as ReLU outputs): α = max_j x_j, so a
    negative input below −α clips at the DAC. A row with no positive input but a nonzero one takes
    α = max|x| (docs/physics.md §1) instead of 1, so −5 is not clipped to −1."""
    w = torch.eye(3)
    x = torch.tensor([[2.0, 1.0, -3.0], [-5.0, -1.0, -2.0], [0.0, -4.0, 0.0], [0.0, 0.0, 0.0]])
    y = analog_mvm(x, w, io(inp_bound=1.0, noise_management="max", out_noise=0.5))
    assert y[3].abs().sum() == 0  # all-zero row: exactly 0
    y = analog_mvm(x, w, io(inp_bound=1.0, noise_management="max"))
    torch.testing.assert_close(y, torch.tensor([[2.0, 1.0, -2.0], [-5.0, -1.0, -2.0], [0.0, -4.0, 0.0],
                                                [0.0, 0.0, 0.0]]))


def test_output_noise_std_scales_with_alpha():
    g = torch.Generator().manual_seed(1)
    w = torch.zeros(64, 8)
    x = torch.full((4000, 8), 3.0)
    y = analog_mvm(x, w, io(noise_management="abs_max", out_noise=0.06), generator=g)
    assert y.mean().abs() < 0.01
    assert y.std().item() == pytest.approx(0.06 * 3.0, rel=0.03)


def test_input_noise_std():
    g = torch.Generator().manual_seed(2)
    w = torch.full((1, 16), 0.5)
    x = torch.zeros(20000, 16)
    x[:, 0] = 1.0
    y = analog_mvm(x, w, io(inp_noise=0.1), generator=g)
    # y = Σ_j 0.5·(x_j + 0.1 ξ_j) → std 0.5·0.1·sqrt(16)
    assert y.mean().item() == pytest.approx(0.5, abs=0.005)
    assert y.std().item() == pytest.approx(0.5 * 0.1 * 4, rel=0.03)


@pytest.mark.parametrize("kind", ["additive_constant", "pcm_read"])
def test_weight_read_noise_std(kind):
    g = torch.Generator().manual_seed(3)
    w = torch.tensor([[0.5, -0.25, 1.0]])
    x = torch.tensor([[0.2, 0.4, -0.6]]).expand(20000, 3)
    y = analog_mvm(x, w, io(w_noise=0.05, w_noise_type=kind), generator=g)
    exact = (x[0] @ w.T).item()
    if kind == "additive_constant":
        std = 0.05 * x[0].norm().item()
    else:
        std = 0.05 * math.sqrt((w.abs() * x[0] ** 2).sum().item())
    assert y.mean().item() == pytest.approx(exact, abs=3 * std / math.sqrt(20000) + 1e-6)
    assert y.std().item() == pytest.approx(std, rel=0.03)


def test_stochastic_rounding_is_unbiased():
    g = torch.Generator().manual_seed(4)
    w = torch.eye(1)
    x = torch.full((40000, 1), 0.3)
    y = analog_mvm(x, w, io(inp_res=0.25, inp_bound=1.0, inp_sto_round=True), generator=g)  # Δ = 0.5
    assert set(torch.unique(y).tolist()) == {0.0, 0.5}
    assert y.mean().item() == pytest.approx(0.3, abs=0.005)


def test_iterative_bound_management_recovers_saturated_row():
    w = torch.ones(2, 64)
    w[1] = 0.01
    x = torch.ones(3, 64)
    x[1] *= 0.5
    x[2] = 0
    plain = analog_mvm(x, w, io(out_bound=12.0, inp_bound=1.0, noise_management="abs_max"))
    assert plain[0, 0].item() == 12.0  # saturated: 64 clipped at 12
    bm = analog_mvm(x, w, io(out_bound=12.0, inp_bound=1.0, noise_management="abs_max",
                             bound_management="iterative"))
    torch.testing.assert_close(bm, x @ w.T)  # 64/2^3 = 8 < 12, rescaled by 8
    assert ref.max_bm_exponent(IOParameters()) == 3  # 2^3·(2/126) <= 0.25 < 2^4·(2/126)


def test_bound_management_stops_at_its_limit():
    w = torch.ones(1, 64)
    x = torch.ones(1, 64)
    y = analog_mvm(x, w, io(out_bound=1.0, inp_bound=1.0, noise_management="abs_max",
                            bound_management="iterative", max_bm_factor=4))
    assert y.item() == pytest.approx(4.0)  # k stops at 2: 64/4 = 16 clipped to 1, times 4


def test_ir_drop_sign_and_size():
    K = 8
    w = torch.full((1, K), 0.8)
    x = torch.ones(1, K)
    rho, gr = 1.0, 100.0
    y = analog_mvm(x, w, io(ir_drop=rho, ir_drop_g_ratio=gr))
    a = (K / gr) * (0.8 * K)
    c = a * (0.5 - 0.2 * a + 0.05 * a * a)
    j = torch.arange(K, dtype=torch.float32)
    expected = 0.8 * K - rho * c * (0.8 * (1 - (1 - j / K) ** 2)).sum().item()
    assert y.item() == pytest.approx(expected, rel=1e-5)
    assert y.item() < 0.8 * K  # IR drop lowers the output magnitude


def test_out_scales_and_slices():
    g = torch.Generator().manual_seed(5)
    x, w = torch.randn(4, 10, generator=g), torch.randn(3, 10, generator=g)
    scales = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]])
    y = analog_mvm(x, w, IOParameters(is_perfect=True), in_size=6, out_scales=scales)
    expected = (x[:, :6] @ w[:, :6].T) * scales[0] + (x[:, 6:] @ w[:, 6:].T) * scales[1]
    torch.testing.assert_close(y, expected)


def test_straight_through_gradients():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(5, 12, generator=g, requires_grad=True)
    w = (0.3 * torch.randn(4, 12, generator=g)).requires_grad_()
    cfg = IOParameters(out_noise=0.0, bound_management="none")  # quantization on, abs_max NM
    y = analog_mvm(x, w, cfg)
    grad = torch.randn(5, 4, generator=g)
    y.backward(grad)
    # inside the bounds: dy/dx = w, dy/dw = x̃·α (x̃·α ≈ x up to the DAC step)
    torch.testing.assert_close(x.grad, grad @ w.detach(), rtol=1e-5, atol=1e-5)
    alpha = x.detach().abs().amax(1, keepdim=True)
    xt = ref.round_half_away(x.detach() / alpha / cfg.inp_step) * cfg.inp_step * alpha
    torch.testing.assert_close(w.grad, grad.T @ xt, rtol=1e-4, atol=1e-4)


def test_clipped_outputs_and_inputs_stop_the_gradient():
    w = torch.ones(2, 4, requires_grad=True)
    x = torch.tensor([[3.0, 0.5, 0.1, 0.2]], requires_grad=True)
    y = analog_mvm(x, w, io(inp_bound=1.0, out_bound=1.5))  # input 3 clipped; output 1+0.8 clipped
    y.sum().backward()
    assert x.grad.abs().sum() == 0 and w.grad.abs().sum() == 0
    x.grad = w.grad = None
    y = analog_mvm(x, w, io(inp_bound=1.0, out_bound=100.0))
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[0.0, 2.0, 2.0, 2.0]]))


def test_reproducible_and_inputs_unchanged():
    cfg = IOParameters(inp_noise=0.01, w_noise=0.02, w_noise_type="pcm_read", ir_drop=1.0, inp_sto_round=True)
    x, w = torch.randn(9, 300), 0.2 * torch.randn(7, 300)
    x0, w0 = x.clone(), w.clone()
    y1 = analog_mvm(x, w, cfg, in_size=128, generator=torch.Generator().manual_seed(7))
    y2 = analog_mvm(x, w, cfg, in_size=128, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)
    assert torch.equal(x, x0) and torch.equal(w, w0)


def test_bad_inputs_raise_clear_errors():
    cfg = IOParameters()
    with pytest.raises(ValueError, match="K = 3"):
        analog_mvm(torch.ones(2, 3), torch.ones(4, 5), cfg)
    with pytest.raises(ValueError, match="2-D"):
        analog_mvm(torch.ones(3), torch.ones(4, 3), cfg)
    with pytest.raises(TypeError, match="dtype"):
        analog_mvm(torch.ones(2, 3), torch.ones(4, 3, dtype=torch.float64), cfg)
    with pytest.raises(ValueError, match="NaN"):
        analog_mvm(torch.tensor([[float("nan"), 1.0]]), torch.ones(1, 2), cfg)
    with pytest.raises(ValueError, match="in_size"):
        analog_mvm(torch.ones(2, 3), torch.ones(4, 3), cfg, in_size=0)
    with pytest.raises(ValueError, match="out_scales"):
        analog_mvm(torch.ones(2, 3), torch.ones(4, 3), cfg, out_scales=torch.ones(2, 4))
    with pytest.raises(TypeError, match="IOParameters"):
        analog_mvm(torch.ones(2, 3), torch.ones(4, 3), {"out_noise": 0.1})


def test_empty_batch_forward_and_backward():
    """M = 0 rows: an empty output and empty/zero gradients (the backward reshaped with -1 and failed)."""
    x = torch.zeros(0, 10, requires_grad=True)
    w = torch.randn(4, 10, requires_grad=True)
    y = analog_mvm(x, w, IOParameters(), in_size=4)  # 3 slices, the last one padded
    assert y.shape == (0, 4)
    y.sum().backward()
    assert x.grad.shape == (0, 10)
    assert torch.equal(w.grad, torch.zeros_like(w))
