"""AnalogTile: weights and scales, tiling, programming, drift and compensation."""

import pytest
import torch

from aimc_lab import presets
from aimc_lab.config import (AnalogConfig, DriftCompensationParameters, IOParameters, MappingParameters,
                             NoiseModelParameters)
from aimc_lab.tile import AnalogTile

PERFECT = IOParameters(is_perfect=True)


def tile(N=6, K=5, **cfg):
    return AnalogTile(N, K, AnalogConfig(**cfg))


def test_weights_round_trip_and_scaling():
    w = torch.randn(6, 5)
    t = tile(mapping=MappingParameters(weight_scaling_omega=0.8, weight_scaling_columnwise=True))
    t.set_weights(w)
    torch.testing.assert_close(t.get_weights(), w)
    torch.testing.assert_close(t.weight.detach().abs().amax(1), torch.full((6,), 0.8))
    t = tile(mapping=MappingParameters(weight_scaling_omega=0.0))
    t.set_weights(w)
    torch.testing.assert_close(t.weight.detach(), w)


def test_bad_weights_and_inputs():
    t = tile()
    with pytest.raises(ValueError, match="shape"):
        t.set_weights(torch.ones(5, 6))
    with pytest.raises(ValueError, match="NaN"):
        t.set_weights(torch.full((6, 5), float("nan")))
    with pytest.raises(ValueError, match="input"):
        t(torch.ones(3, 4))
    with pytest.raises(ValueError, match="out_features"):
        AnalogTile(0, 3)
    with pytest.raises(TypeError, match="AnalogConfig"):
        AnalogTile(2, 3, IOParameters())


def test_tiling_equals_dense_for_odd_sizes():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(700, 1000, generator=g)
    x = torch.randn(9, 1000, generator=g)
    t = AnalogTile(700, 1000, AnalogConfig(forward=PERFECT))
    t.set_weights(w)
    assert t.physical_grid == (2, 2)
    torch.testing.assert_close(t(x), x @ w.T, rtol=1e-4, atol=1e-3)


def test_noisy_tiled_forward_error_matches_its_noise_budget():
    """Library IO defaults but a 5-bit DAC (so its rounding is ~40 % of the error) on two K-slices
    (512 + 488 inputs), weights scaled to max|w̃| = 0.5: the error of each slice's output is
    α·(σ_out·ξ + ADC rounding + Σ_j w̃_j·DAC rounding_j), times the column's digital scale, with
    α = max|x| of the slice row (abs_max noise management; these inputs never reach the ADC bound,
    asserted 10 σ_out below it, so k = 0). For inputs U[0, 1) the rounding errors are uniform and independent:
    E|y − x Wᵀ|² = Σ_{m,n,s} (α_sm·c_n)²·(σ_out² + Δ_out²/12 + Δ_in²/12·Σ_{j∈s} w̃_nj²).
    Over 64 × 70 × 2 terms the measured relative error has a ~0.8 % standard deviation around the
    prediction: the 4 % band catches an output noise 10 % too large (rel +6 %) or a DAC that does not
    round (rel −22 %) (mutations tried on cpu_fast.py); the ADC's rounding is too small a part (~5 %) to be checked here.
    """
    g = torch.Generator().manual_seed(1)
    w = 0.1 * torch.randn(70, 1000, generator=g)
    x = torch.rand(64, 1000, generator=g)
    t = AnalogTile(70, 1000, AnalogConfig(forward=IOParameters(inp_res=1 / 30),
                                          mapping=MappingParameters(weight_scaling_omega=0.5)))
    t.set_weights(w)
    t.generator = torch.Generator().manual_seed(2)
    y = t(x).detach()
    exact = x @ w.T
    io, size = t.config.forward, t.in_size
    w_tile, c = t.weight.detach(), t.out_scale  # tile units and the per-column digital scale
    mse = 0.0
    for xs, ws in zip(torch.split(x, size, dim=1), torch.split(w_tile, size, dim=1)):
        alpha = xs.abs().amax(dim=1)  # [M]
        clean = ((xs / alpha[:, None]) @ ws.T).abs().max()
        assert clean < io.out_bound - 10 * io.out_noise  # 10 σ from the ADC bound: no bound management
        per_column = io.out_noise ** 2 + io.out_step ** 2 / 12 + io.inp_step ** 2 / 12 * (ws ** 2).sum(dim=1)  # [N]
        mse += ((alpha[:, None] * c[None, :]) ** 2 * per_column[None, :]).sum().item()
    expected = (mse / (exact ** 2).sum().item()) ** 0.5
    rel = ((y - exact).norm() / exact.norm()).item()
    assert rel == pytest.approx(expected, rel=0.04), (rel, expected)


def test_program_without_noise_model_is_exact_and_reproducible():
    w = torch.randn(6, 5)
    t = tile(forward=PERFECT)
    t.set_weights(w)
    t.program()
    x = torch.randn(3, 5)
    torch.testing.assert_close(t(x), x @ w.T)
    t = tile(noise_model=NoiseModelParameters(kind="pcm"))
    t.set_weights(w)
    t.program(torch.Generator().manual_seed(3))
    first = t.w_read.clone()
    t.program(torch.Generator().manual_seed(3))
    assert torch.equal(first, t.w_read)
    c = t.conductances()
    assert c["target_pos"].max().item() == pytest.approx(25.0) or c["target_neg"].max().item() == pytest.approx(25.0)


def test_drift_needs_program_and_valid_time():
    t = tile(noise_model=NoiseModelParameters(kind="pcm"))
    with pytest.raises(RuntimeError, match="program"):
        t.drift(10.0)
    t.program()
    with pytest.raises(ValueError, match="t_inference"):
        t.drift(-1.0)
    t.unprogram()
    assert not bool(t.programmed)


@pytest.mark.parametrize("kind", ["global", "per_column"])
def test_drift_compensation_restores_output_magnitude(kind):
    g = torch.Generator().manual_seed(4)
    w = 0.3 * torch.randn(64, 128, generator=g)
    x = torch.rand(256, 128, generator=g)

    def mean_abs(comp):
        t = AnalogTile(64, 128, AnalogConfig(forward=IOParameters(out_noise=0.0), noise_model=NoiseModelParameters(
            kind="pcm"), drift_compensation=DriftCompensationParameters(comp)))
        t.set_weights(w)
        t.program(torch.Generator().manual_seed(5))
        t.drift(1.0, torch.Generator().manual_seed(6))
        start = t(x).abs().mean().item()
        t.drift(3.1536e7, torch.Generator().manual_seed(6))
        return t(x).abs().mean().item() / start

    assert mean_abs("none") < 0.75  # about half the conductance is gone after a year
    assert mean_abs(kind) == pytest.approx(1.0, abs=0.08)


def test_remap_keeps_logical_weights():
    t = tile()
    w = torch.randn(6, 5)
    t.set_weights(w)
    with torch.no_grad():
        t.weight.mul_(1.7)
    before = t.get_weights().clone()
    t.remap("channelwise")
    torch.testing.assert_close(t.get_weights(), before)
    torch.testing.assert_close(t.weight.detach().abs().amax(1), torch.ones(6))
    with pytest.raises(ValueError, match="remap"):
        t.remap("rows")


def test_backward_mvm_is_transposed_read():
    t = tile(backward=PERFECT)
    w = torch.randn(6, 5)
    t.set_weights(w)
    d = torch.randn(4, 6)
    torch.testing.assert_close(t.backward_mvm(d), d @ t.weight.detach())


def test_standard_preset_forward_backward():
    t = AnalogTile(32, 40, presets.standard_hwa())
    t.set_weights(torch.randn(32, 40))
    x = torch.randn(8, 40)
    y = t(x)
    y.sum().backward()
    assert t.weight.grad is not None and t.input_range.grad is not None and t.out_scale.grad is not None
    assert int(t.input_range_batches) == 1


def test_pcm_tile_programs_and_drifts_through_the_pcm_kernels():
    """The library's PCM model runs G+ and G- through aimc_lab.kernels.pcm_noise in one call each:
    same generator state, same conductances as the kernel entry points on the stacked arrays."""
    from aimc_lab.kernels.pcm_noise import pcm_at_time, pcm_program

    t = tile(N=7, K=9, noise_model=NoiseModelParameters(kind="pcm"))
    t.set_weights(torch.randn(7, 9, generator=torch.Generator().manual_seed(3)))
    t.program(torch.Generator().manual_seed(11))
    targets = torch.stack((t.g_target_pos, t.g_target_neg))
    g_prog, nu = pcm_program(targets, t.noise_model.params, torch.Generator().manual_seed(11))
    torch.testing.assert_close(t.g_prog_pos, g_prog[0])
    torch.testing.assert_close(t.nu_neg, nu[1])
    t.drift(3600.0, torch.Generator().manual_seed(5))
    g = pcm_at_time(g_prog, nu, 3600.0, t.noise_model.params, torch.Generator().manual_seed(5))
    torch.testing.assert_close(t.w_read, (g[0] - g[1]) / t.map_scale[t.slice_index])


def test_user_pcm_subclass_keeps_its_own_hooks():
    from aimc_lab.devices.pcm import PCMLikeNoise

    class Noiseless(PCMLikeNoise):
        def programming_noise(self, g_target, generator):
            return g_target.clone()

        def drift_exponents(self, g_target, generator):
            return torch.zeros_like(g_target)

        def at_time(self, g_prog, nu, g_target, t_inference, generator):
            return g_prog.clone()

    t = AnalogTile(4, 6, AnalogConfig(forward=IOParameters(is_perfect=True)), noise_model=Noiseless())
    w = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    t.set_weights(w)
    t.program(torch.Generator().manual_seed(1))
    t.drift(1e6)
    torch.testing.assert_close(t.w_read, t.weight.detach())


def state(t):
    return {k: v.detach().clone() for k, v in list(t.named_parameters()) + list(t.named_buffers())}


def assert_same_state(t, before):
    for k, v in state(t).items():
        assert torch.equal(v, before[k]), k


def hwa_tile(N=3, K=5, in_size=4):
    cfg = presets.standard_hwa()
    cfg = AnalogConfig(**{**{f: getattr(cfg, f) for f in ("forward", "modifier", "clip", "remap", "input_range")},
                          "mapping": MappingParameters(max_input_size=in_size)})
    t = AnalogTile(N, K, cfg)
    t.set_weights(torch.randn(N, K, generator=torch.Generator().manual_seed(0)))
    t.train()
    return t


@pytest.mark.parametrize("bad, error, match", [
    (torch.full((2, 5), float("nan")), ValueError, "NaN or inf"),
    (torch.tensor([[1.0, float("inf"), 0.0, 0.0, 0.0]]), ValueError, "NaN or inf"),
    (torch.tensor([[0.0, 0.0, -float("inf"), 0.0, 0.0]]), ValueError, "NaN or inf"),
    (torch.ones(2, 5, dtype=torch.float64), TypeError, "float64.*float32"),
    (torch.ones(2, 5, dtype=torch.int64), TypeError, "int64"),
    (torch.ones(2, 5, dtype=torch.float16), TypeError, "float16"),
    ([[1.0] * 5], TypeError, "torch.Tensor"),
    (torch.ones(2, 4), ValueError, r"shape \[M, 5\]"),
    (torch.ones(5), ValueError, r"shape \[M, 5\]"),
])
def test_rejected_inputs_leave_the_tile_unchanged(bad, error, match):
    """Issue 10.3/10.8: validate before anything changes; the next clean batch works."""
    t = hwa_tile()
    before = state(t)
    with pytest.raises(error, match=match):
        t(bad)
    assert_same_state(t, before)
    y = t(torch.randn(8, 5))
    assert torch.isfinite(y).all() and torch.isfinite(t.input_range).all()
    assert int(t.input_range_batches) == 1


def test_empty_batch_and_batches_without_a_std_do_not_touch_the_range():
    t = hwa_tile()  # slices of 4 and 1 inputs
    before = state(t)
    y = t(torch.zeros(0, 5))
    assert y.shape == (0, 3)
    y.sum().backward()
    t.zero_grad(set_to_none=True)
    t(torch.randn(1, 5))  # one row: the one-column slice has a single value, no std
    assert_same_state(t, before)
    t(torch.randn(2, 5))
    assert int(t.input_range_batches) == 1 and torch.isfinite(t.input_range).all()


def test_huge_finite_inputs_give_finite_outputs_or_a_clear_error():
    g = torch.Generator().manual_seed(2)
    w, x = torch.randn(3, 64, generator=g) * 0.1, torch.randn(4, 64, generator=g)
    exact = AnalogTile(3, 64, AnalogConfig(forward=PERFECT))
    exact.set_weights(w)
    for scale in (1e20, 1e30, 1e36):
        torch.testing.assert_close(exact(x * scale) / scale, x @ w.T, rtol=1e-4, atol=1e-4)
    for t in (exact, AnalogTile(3, 64)):
        t.set_weights(w)
        before = state(t)
        with pytest.raises(ValueError, match="overflows torch.float32"):
            t(torch.full((4, 64), 3e38))
        assert_same_state(t, before)
    t = hwa_tile(K=64, in_size=64)
    t(x * 1e30)  # the init from data takes std(x) without overflowing its variance
    assert float(t.input_range.detach()) == pytest.approx(3 * float(x.std()) * 1e30, rel=1e-4)
    before = state(t)
    with pytest.raises(ValueError, match="overflows"):  # a range beyond float32 is not committed
        t(torch.full((4, 64), 3e38) * torch.sign(x))
    assert_same_state(t, before)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_input_range_backward_reads_the_clipped_entries_off_its_output(dtype):
    """InputRangeFunction's backward takes floor|u| as the clipped mask: u = clip(x)/r is exactly ±1
    where |x| >= r and below 1 elsewhere, also for the float next to r on either side."""
    from aimc_lab.config import InputRangeParameters
    from aimc_lab.tile import InputRangeFunction

    r = torch.tensor([1e-6, 0.3, 1.0, 3.0, 7.77, 1000.0], dtype=dtype).clamp(min=torch.finfo(dtype).tiny * 4)
    below, above = torch.nextafter(r, torch.zeros_like(r)), torch.nextafter(r, torch.full_like(r, 1e4))
    x = torch.stack([below, r, above, -below, -r, -above])  # [6, S]: one input column per range
    ir = InputRangeParameters(enable=True, decay=0.0, gradient_relative=False, straight_through=False)
    xr = x.clone().requires_grad_(True)
    rr = r.clone().requires_grad_(True)
    u = InputRangeFunction.apply(xr, rr, torch.arange(len(r)), ir)
    clipped = x.abs() >= r
    assert torch.equal(u.abs().floor() == 1, clipped)
    grad = torch.ones_like(x)
    grad[3:] = -1.0  # clipped at +r with g > 0 and at -r with g < 0 would shrink r: ignored
    grad[[2, 5]] = torch.tensor([-2.0, 2.0], dtype=dtype).unsqueeze(1)  # these grow it: min(g·sign(x), 0) / r
    u.backward(grad)
    torch.testing.assert_close(xr.grad, grad * ~clipped / r)
    torch.testing.assert_close(rr.grad, -4.0 / r)


def test_no_grad_forward_folds_the_output_scale_into_the_kernel():
    """Without a gradient the digital output scale joins the MVM's per-slice scales; the output is
    the grad-enabled one (same draws) up to the rounding of the final products."""
    from aimc_lab.config import replace_path

    t = AnalogTile(24, 70, replace_path(presets.standard_hwa(), "mapping.max_input_size", 32))  # 3 slices
    assert t.n_slices == 3
    g = torch.Generator().manual_seed(0)
    t.set_weights(torch.randn(24, 70, generator=g))
    with torch.no_grad():
        t.out_scale.mul_(torch.rand(24, generator=g) + 0.5)
    t.eval()
    x = torch.randn(9, 70, generator=g)
    t.generator = torch.Generator().manual_seed(3)
    y_grad = t(x)
    t.generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        y_fold = t(x)
    assert y_grad.requires_grad and not y_fold.requires_grad
    # float32 rounding of products of size max|y| (a few eps of it); another draw would differ by the
    # output noise (1e-2 and more)
    torch.testing.assert_close(y_fold, y_grad.detach(), rtol=0, atol=32 * 1.2e-7 * float(y_grad.detach().abs().max()))


@pytest.mark.parametrize("kind", ["global", "per_column"])
def test_remeasure_compensation_equals_programming_behind_the_new_periphery(kind):
    """Changing only config.forward and re-measuring gives the state of a tile programmed under the new
    forward with the same streams (the Tile explorer's periphery controls rely on it)."""
    old_io, new_io = IOParameters(out_res=1 / 64), IOParameters(out_res=1 / 512, out_noise=0.02)
    w = torch.randn(12, 40, generator=torch.Generator().manual_seed(5))

    def programmed(forward):
        t = tile(N=12, K=40, noise_model=NoiseModelParameters(kind="pcm"), forward=forward,
                 drift_compensation=DriftCompensationParameters(kind=kind),
                 mapping=MappingParameters(max_input_size=16))
        t.set_weights(w)
        t.generator = torch.Generator().manual_seed(3)
        t.program(torch.Generator().manual_seed(1))
        t.generator = torch.Generator().manual_seed(3)
        t.drift(3600.0, torch.Generator().manual_seed(2))
        return t

    from aimc_lab.config import replace_path

    fresh, moved = programmed(new_io), programmed(old_io)
    assert not torch.equal(fresh.drift_alpha, moved.drift_alpha)
    own = moved.generator
    moved.config = replace_path(moved.config, "forward", new_io)
    moved.remeasure_compensation(torch.Generator().manual_seed(3), torch.Generator().manual_seed(3))
    torch.testing.assert_close(moved.drift_ref, fresh.drift_ref, rtol=0, atol=0)
    torch.testing.assert_close(moved.drift_alpha, fresh.drift_alpha, rtol=0, atol=0)
    assert moved.generator is own  # the tile's own generator is back


def test_remeasure_compensation_leaves_an_unprogrammed_tile_alone():
    t = tile(N=4, K=6, noise_model=NoiseModelParameters(kind="pcm"),
             drift_compensation=DriftCompensationParameters(kind="global"))
    before = t.drift_alpha.clone()
    t.remeasure_compensation()
    assert torch.equal(t.drift_alpha, before) and not bool(t.programmed)
