"""Hardware-aware training: post-step clipping/remapping, weight modifiers, input-range learning."""

import dataclasses

import pytest
import torch

from aimc_lab import presets
from aimc_lab.config import (AnalogConfig, ClipParameters, InputRangeParameters, IOParameters, MappingParameters,
                             RemapParameters, WeightModifierParameters)
from aimc_lab.inference import accuracy
from aimc_lab.kernels.weight_modifier import weight_modifier
from aimc_lab.nn import AnalogLinear
from aimc_lab.tile import AnalogTile, InputRangeFunction
from aimc_lab.train import attach_hwa, clip_weights, detach_hwa, hwa_train, remap_weights

PERFECT = IOParameters(is_perfect=True)


def make_tile(N=8, K=16, w=None, **cfg):
    """A tile with exact MVMs whose tile weights are exactly ``w`` (no weight scaling)."""
    cfg.setdefault("forward", PERFECT)
    cfg.setdefault("mapping", MappingParameters(weight_scaling_omega=0.0))
    tile = AnalogTile(N, K, AnalogConfig(**cfg))
    if w is None:
        w = torch.randn(N, K, generator=torch.Generator().manual_seed(1)) * 0.3
    tile.set_weights(w)
    return tile


# ------------------------------------------------------------------------------------------------
# clipping and remapping
# ------------------------------------------------------------------------------------------------


def test_fixed_clip_cuts_at_c_and_keeps_the_rest():
    w = torch.linspace(-1.5, 1.5, 8 * 16).reshape(8, 16)
    tile = make_tile(w=w, clip=ClipParameters(kind="fixed", fixed_value=0.7))
    clip_weights(tile)
    assert float(tile.weight.detach().abs().max()) == pytest.approx(0.7)
    inside = w.abs() <= 0.7
    assert torch.equal(tile.weight[inside], w[inside])
    assert torch.equal(tile.weight[~inside], 0.7 * w[~inside].sign())


def test_layer_gaussian_clip_uses_kappa_times_std():
    w = torch.randn(32, 64, generator=torch.Generator().manual_seed(0))
    tile = make_tile(32, 64, w=w, clip=ClipParameters(kind="layer_gaussian", sigma=1.5))
    bound = 1.5 * w.std()
    clip_weights(tile)
    assert torch.allclose(tile.weight, w.clamp(-bound, bound))


def test_no_clip_kind_leaves_weights():
    tile = make_tile(w=torch.full((8, 16), 3.0))
    clip_weights(tile)
    assert torch.equal(tile.weight, torch.full((8, 16), 3.0))


@pytest.mark.parametrize("kind", ["layer", "channelwise"])
def test_remap_normalizes_and_keeps_logical_weights(kind):
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(3)) * torch.linspace(0.1, 2, 8)[:, None]
    tile = make_tile(w=w, remap=RemapParameters(kind=kind))
    before = tile.get_weights().clone()
    remap_weights(tile)
    assert torch.allclose(tile.get_weights(), before, rtol=1e-6, atol=1e-7)
    if kind == "layer":
        assert float(tile.weight.detach().abs().max()) == pytest.approx(1.0)
        assert torch.allclose(tile.out_scale, torch.full((8,), float(w.abs().max())))
    else:
        assert torch.allclose(tile.weight.abs().amax(dim=1), torch.ones(8))
        assert torch.allclose(tile.out_scale, w.abs().amax(dim=1))
    x = torch.randn(5, 16)
    assert torch.allclose(tile(x), x @ before.T, atol=1e-5)


def test_attach_hwa_clips_then_remaps_after_each_step_with_any_optimizer():
    torch.manual_seed(0)
    cfg = AnalogConfig(forward=PERFECT, clip=ClipParameters(kind="fixed", fixed_value=1.0),
                       remap=RemapParameters(kind="channelwise"),
                       mapping=MappingParameters(weight_scaling_omega=1.0, weight_scaling_columnwise=True,
                                                 learn_out_scaling=True))
    model = torch.nn.Sequential(AnalogLinear(16, 8, config=cfg), torch.nn.ReLU(), AnalogLinear(8, 4, config=cfg))
    x, y = torch.randn(32, 16), torch.randint(0, 4, (32,))
    for opt in (torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9), torch.optim.Adam(model.parameters(), 0.1)):
        handle = attach_hwa(opt, model)
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            for layer in (model[0], model[2]):
                assert torch.allclose(layer.tile.weight.abs().amax(dim=1), torch.ones(layer.out_features))
        assert detach_hwa(opt)
        assert not detach_hwa(opt)
        handle.remove()


def test_attach_twice_keeps_one_hook_and_detach_stops_it():
    tile_cfg = AnalogConfig(forward=PERFECT, clip=ClipParameters(kind="fixed", fixed_value=0.1),
                            mapping=MappingParameters(weight_scaling_omega=0.0))
    model = AnalogLinear(4, 3, config=tile_cfg)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    attach_hwa(opt, model)
    attach_hwa(opt, model)
    assert len(opt._optimizer_step_post_hooks) == 1
    detach_hwa(opt)
    assert len(opt._optimizer_step_post_hooks) == 0
    with torch.no_grad():
        model.tile.weight.fill_(0.5)
    opt.step()
    assert torch.all(model.tile.weight == 0.5)


def test_attach_needs_analog_tiles():
    with pytest.raises(ValueError, match="no analog tiles"):
        attach_hwa(torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1), torch.nn.Linear(2, 2))


def test_hwa_train_learns_and_returns_epoch_losses():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] > 0).long()
    cfg = AnalogConfig(forward=PERFECT, modifier=WeightModifierParameters(kind="add_normal", std_dev=0.02),
                       clip=ClipParameters(kind="fixed", fixed_value=1.0), remap=RemapParameters(kind="layer"),
                       mapping=MappingParameters(learn_out_scaling=True))  # clip at 1 caps W: scales must learn
    model = AnalogLinear(8, 2, config=cfg)
    loader = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = hwa_train(model, loader, epochs=5, optimizer=opt)
    assert len(losses) == 5 and losses[-1] < losses[0]
    assert accuracy(model, (x, y)) > 95.0
    assert not model.training
    assert len(opt._optimizer_step_post_hooks) == 0  # the hook attached for the run is removed
    assert float(model.tile.weight.detach().abs().max()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="epochs"):
        hwa_train(model, loader, epochs=0)


# ------------------------------------------------------------------------------------------------
# weight modifiers (docs/physics.md §3): statistics over many draws, through the tile's training forward
# ------------------------------------------------------------------------------------------------


def draws(tile, n):
    """n independent training-mode forward weights of ``tile`` (read out with the identity input)."""
    tile.train()
    tile.generator = torch.Generator().manual_seed(123)
    eye = torch.eye(tile.in_features)
    with torch.no_grad():
        return torch.stack([tile(eye).T for _ in range(n)])  # [n, N, K]


W = torch.randn(32, 64, generator=torch.Generator().manual_seed(7)) * 0.4


def test_add_normal_statistics():
    tile = make_tile(32, 64, w=W, modifier=WeightModifierParameters(kind="add_normal", std_dev=0.1))
    omega = W.abs().max()
    z = (draws(tile, 200) - W) / (0.1 * omega)  # ~ N(0, 1): 409,600 samples
    assert abs(float(z.mean())) < 0.01
    assert float(z.std()) == pytest.approx(1.0, abs=0.01)
    # assumed ω instead of the current max|W|
    tile = make_tile(32, 64, w=W, modifier=WeightModifierParameters(kind="add_normal", std_dev=0.1,
                                                                    assumed_wmax=2.0))
    assert float(((draws(tile, 100) - W) / 0.2).std()) == pytest.approx(1.0, abs=0.015)


def test_mult_normal_statistics():
    tile = make_tile(32, 64, w=W, modifier=WeightModifierParameters(kind="mult_normal", std_dev=0.2))
    z = (draws(tile, 200) / W - 1) / 0.2
    assert abs(float(z.mean())) < 0.01
    assert float(z.std()) == pytest.approx(1.0, abs=0.01)


def test_poly_statistics_follow_the_pcm_polynomial():
    mod = WeightModifierParameters(kind="poly", std_dev=1.0)
    tile = make_tile(32, 64, w=W, modifier=mod)
    omega = W.abs().max()
    c0, c1, c2 = mod.coeffs
    assert (c0, c1, c2) == pytest.approx((0.0105392, 0.0768, -0.046925))
    a = W.abs() / omega
    sigma = omega * (c0 + c1 * a + c2 * a * a)
    z = (draws(tile, 200) - W) / sigma
    assert abs(float(z.mean())) < 0.01
    assert float(z.std()) == pytest.approx(1.0, abs=0.01)


def test_discretize_rounds_to_the_grid():
    tile = make_tile(32, 64, w=W, modifier=WeightModifierParameters(kind="discretize", res=0.125))
    omega = W.abs().max()
    wq = draws(tile, 2)
    assert torch.equal(wq[0], wq[1])  # deterministic
    steps = wq[0] / (omega * 0.125)
    assert torch.allclose(steps, steps.round(), atol=1e-4)
    assert float((wq[0] - W).abs().max()) <= float(omega) * 0.0625 + 1e-6
    assert len(torch.unique(steps.round())) <= 17


def test_drop_connect_statistics():
    tile = make_tile(32, 64, w=W, modifier=WeightModifierParameters(kind="drop_connect", pdrop=0.3))
    d = draws(tile, 100)
    dropped = d == 0
    assert float(dropped.float().mean()) == pytest.approx(0.3, abs=0.005)  # 204,800 Bernoulli draws
    kept = ~dropped
    assert torch.allclose(d[kept], W.expand_as(d)[kept], atol=1e-6)


def test_modifier_only_in_training_unless_enabled_during_test():
    x = torch.randn(4, 64)
    tile = make_tile(32, 64, w=W, modifier=WeightModifierParameters(kind="add_normal", std_dev=0.1))
    tile.eval()
    assert torch.allclose(tile(x), x @ W.T, atol=1e-5)
    tile = make_tile(32, 64, w=W, modifier=WeightModifierParameters(kind="add_normal", std_dev=0.1,
                                                                    enable_during_test=True))
    tile.eval()
    assert not torch.allclose(tile(x), x @ W.T, atol=1e-3)


def test_gradient_of_noisy_forward_goes_to_the_clean_weights():
    mod = WeightModifierParameters(kind="add_normal", std_dev=0.1)
    tile = make_tile(32, 64, w=W, modifier=mod)
    tile.train()
    tile.generator = torch.Generator().manual_seed(5)
    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(6))
    y = tile(x)
    (0.5 * (y ** 2).sum()).backward()
    w_noisy = weight_modifier(W, mod, torch.Generator().manual_seed(5))  # the same draw
    assert torch.allclose(y, x @ w_noisy.T, atol=1e-5)
    expected = (x @ w_noisy.T).T @ x  # dL/dW evaluated at the noisy weights
    assert torch.allclose(tile.weight.grad, expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(expected, (x @ W.T).T @ x, atol=1e-2)
    assert torch.equal(tile.weight.detach(), W)  # the forward did not touch the stored weights
    opt = torch.optim.SGD([tile.weight], lr=0.01)
    opt.step()
    assert torch.allclose(tile.weight.detach(), W - 0.01 * expected)  # update applied to the clean weights


# ------------------------------------------------------------------------------------------------
# learned input range (docs/physics.md §3)
# ------------------------------------------------------------------------------------------------


def expected_range_grad(x, g_clip, r, slice_index, decay, min_pct):
    """The rule written out: per slice, Σ_{x>=r} min(g,0) − Σ_{x<=-r} max(g,0) + decay·r·[inside > min_pct]."""
    out = torch.zeros_like(r)
    for s in range(len(r)):
        cols = slice_index == s
        xs, gs = x[:, cols], g_clip[:, cols]
        upper, lower = xs >= r[s], xs <= -r[s]
        val = gs[upper].clamp(max=0).sum() - gs[lower].clamp(min=0).sum()
        inside = (~(upper | lower)).float().mean()
        out[s] = val + (decay * r[s] if inside > min_pct else 0.0)
    return out


def ir_params(decay, min_pct, relative=False, straight_through=False):
    return InputRangeParameters(enable=True, decay=decay, input_min_percentage=min_pct,
                                gradient_relative=relative, straight_through=straight_through)


@pytest.mark.parametrize("relative", [False, True])
def test_input_range_function_gradient_rule_per_slice(relative):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 8, generator=gen) * 1.5
    r = torch.tensor([1.0, 2.5], requires_grad=True)
    slice_index = torch.arange(8) // 4
    grad_out = torch.randn(50, 8, generator=gen)
    xr = x.clone().requires_grad_(True)
    out = InputRangeFunction.apply(xr, r, slice_index, ir_params(0.01, 0.9, relative))
    r_cols = r.detach()[slice_index]
    assert torch.allclose(out, x.clamp(-r_cols, r_cols) / r_cols)
    out.backward(grad_out)
    g_clip = grad_out / r_cols
    expect = expected_range_grad(x, g_clip, r.detach(), slice_index, 0.0, 0.9)
    if relative:
        expect = expect * r.detach()
    expect += expected_range_grad(x, torch.zeros_like(x), r.detach(), slice_index, 0.01, 0.9)  # decay·r
    assert torch.allclose(r.grad, expect, atol=1e-5)
    # slice 0 (r = 1, σ = 1.5) clips many inputs: no decay; slice 1 (r = 2.5) few: decay applies
    inside0 = (x[:, :4].abs() < 1.0).float().mean()
    inside1 = (x[:, 4:].abs() < 2.5).float().mean()
    assert inside0 < 0.9 < inside1
    outside = (x.abs() >= r_cols)
    assert outside.any()
    assert torch.allclose(xr.grad, grad_out * (~outside) / r_cols)


def test_input_range_signs_only_grow_the_range_and_decay_shrinks_it():
    r = torch.tensor([1.0], requires_grad=True)
    idx = torch.zeros(2, dtype=torch.long)
    x = torch.tensor([[2.0, -2.0]])
    # gradients that would shrink r on both sides are ignored (positive side g > 0, negative side g < 0)
    InputRangeFunction.apply(x, r, idx, ir_params(0.0, 0.95)).backward(torch.tensor([[1.0, -1.0]]))
    assert float(r.grad) == 0.0
    r.grad = None
    # gradients that want larger |x| count: positive side g < 0 → min(g, 0), negative side g > 0 → −max(g, 0)
    InputRangeFunction.apply(x, r, idx, ir_params(0.0, 0.95)).backward(torch.tensor([[-1.0, 3.0]]))
    assert float(r.grad) == pytest.approx(-1.0 - 3.0)
    r.grad = None
    # everything inside: only the decay, pulling r down
    InputRangeFunction.apply(torch.tensor([[0.1, -0.2]]), r, idx, ir_params(0.05, 0.95)).backward(torch.ones(1, 2))
    assert float(r.grad) == pytest.approx(0.05)


# A 1×4 tile with exact MVMs, r = 2, w = [-0.5, 1, 0.25, -1], x = [3, -1, -2.5, 0.5], loss L = y, decay 0.1,
# input_min_percentage 0.4. By hand: clip(x) = [2, -1, -2, 0.5], y = r·w·(clip(x)/r) = -3. The output
# scale r is digital (no gradient), so dL/du = r·w for u = clip(x)/r and g = dL/dclip(x) = w.
# Range: x0 = 3 ≥ r gives min(g0, 0) = -0.5; x2 = -2.5 ≤ -r gives -max(g2, 0) = -0.25; sum -0.75,
# times r = 2 when relative (-1.5); two of four inputs inside (0.5 > 0.4) add decay·r = 0.2.
# Input: g = w straight through, or w with the clipped entries x0, x2 zeroed.
@pytest.mark.parametrize("relative, straight_through, grad_r, grad_x", [
    (True, True, -1.3, [-0.5, 1.0, 0.25, -1.0]),
    (True, False, -1.3, [0.0, 1.0, 0.0, -1.0]),
    (False, True, -0.55, [-0.5, 1.0, 0.25, -1.0]),
    (False, False, -0.55, [0.0, 1.0, 0.0, -1.0]),
])
def test_input_range_gradients_of_a_1x4_tile_by_hand(relative, straight_through, grad_r, grad_x):
    ir = InputRangeParameters(enable=True, init_value=2.0, init_from_data=0, decay=0.1, input_min_percentage=0.4,
                              gradient_relative=relative, straight_through=straight_through)
    tile = make_tile(1, 4, w=torch.tensor([[-0.5, 1.0, 0.25, -1.0]]), input_range=ir)
    x = torch.tensor([[3.0, -1.0, -2.5, 0.5]], requires_grad=True)
    y = tile(x)
    assert y.item() == pytest.approx(-3.0)
    y.sum().backward()
    assert float(tile.input_range.grad) == pytest.approx(grad_r, abs=1e-6)
    assert torch.allclose(x.grad, torch.tensor([grad_x]), atol=1e-6)


def test_input_range_defaults_are_the_reference_toolkits():
    ir = InputRangeParameters()
    assert ir.gradient_relative and ir.straight_through
    preset = presets.standard_hwa().input_range
    assert preset.gradient_relative and preset.straight_through


def test_tile_input_range_gradient_end_to_end():
    ir = InputRangeParameters(enable=True, init_value=1.0, init_from_data=0, decay=0.0)
    tile = make_tile(4, 6, w=torch.randn(4, 6, generator=torch.Generator().manual_seed(2)), input_range=ir,
                     mapping=MappingParameters(weight_scaling_omega=0.0, max_input_size=3))
    x = torch.randn(20, 6, generator=torch.Generator().manual_seed(3)) * 2
    c = torch.randn(4)
    y = tile(x)
    assert torch.allclose(y, x.clamp(-1, 1) @ tile.weight.detach().T, atol=1e-5)
    (y * c).sum().backward()
    g_clip = (c @ tile.weight.detach()).expand(20, 6)  # dL/d clip(x)
    expect = expected_range_grad(x, g_clip, torch.ones(2), tile.slice_index, 0.0, 0.95)
    assert torch.allclose(tile.input_range.grad, expect, atol=1e-4)


def test_input_range_init_from_data_running_mean_of_alpha_std():
    ir = InputRangeParameters(enable=True, init_value=3.0, init_from_data=3, init_std_alpha=2.0)
    tile = make_tile(4, 8, input_range=ir, mapping=MappingParameters(weight_scaling_omega=0.0, max_input_size=4))
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(64, 8, generator=gen) * torch.tensor([1.0] * 4 + [5.0] * 4) for _ in range(4)]
    tile.eval()
    tile(batches[0])
    assert torch.equal(tile.input_range.detach(), torch.full((2,), 3.0))  # no init in eval mode
    tile.train()
    for b in batches:
        tile(b)
    stds = torch.stack([torch.stack([b[:, :4].std(), b[:, 4:].std()]) for b in batches[:3]])
    assert torch.allclose(tile.input_range.detach(), 2.0 * stds.mean(0), rtol=1e-5)  # 4th batch ignored
    assert int(tile.input_range_batches) == 3


@pytest.mark.parametrize("layer_type", ["AnalogRNN", "AnalogLSTM", "AnalogGRU"])
def test_recurrent_layers_train_with_standard_hwa_during_the_range_init(layer_type):
    """Each step calls the hidden tile again while the init-from-data moves its range (issue 10.2)."""
    import aimc_lab.nn as analog_nn

    torch.manual_seed(0)
    layer = getattr(analog_nn, layer_type)(3, 5, num_layers=2, config=presets.standard_hwa())
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    attach_hwa(opt, layer)
    for _ in range(3):
        opt.zero_grad()
        out, _ = layer(torch.randn(4, 2, 3))
        out.square().mean().backward()
        opt.step()
    tile = layer.cells[1].tile_hh
    assert int(tile.input_range_batches) == 3 * 4  # one init step per call: 4 time steps, 3 batches
    assert tile.input_range.grad is not None and torch.isfinite(tile.input_range.grad).all()


def test_a_layer_called_twice_in_one_forward_trains():
    torch.manual_seed(0)
    layer = AnalogLinear(4, 4, config=presets.standard_hwa())
    x = torch.randn(8, 4)
    layer(layer(x)).sum().backward()
    assert int(layer.tile.input_range_batches) == 2
    assert torch.isfinite(layer.tile.weight.grad).all() and torch.isfinite(layer.tile.input_range.grad).all()


def test_layer_gaussian_clip_leaves_a_layer_without_spread_unchanged():
    """std of one weight is undefined and of equal weights 0: clipping at κ·std would give NaN or 0."""
    clip = ClipParameters(kind="layer_gaussian", sigma=2.5)
    single = make_tile(1, 1, w=torch.tensor([[0.7]]), clip=clip)
    clip_weights(single)
    assert torch.equal(single.weight.detach(), torch.tensor([[0.7]]))
    equal = make_tile(2, 3, w=torch.full((2, 3), -0.4), clip=clip)
    clip_weights(equal)
    assert torch.equal(equal.weight.detach(), torch.full((2, 3), -0.4))


@pytest.mark.parametrize("cfg", [AnalogConfig(), presets.standard_hwa(0.02), presets.pcm_inference(),
                                 dataclasses.replace(presets.standard_hwa(0.02),
                                                     mapping=MappingParameters(max_input_size=5, max_output_size=3))],
                         ids=["default", "standard_hwa", "pcm", "split"])
def test_a_step_with_non_finite_gradients_is_refused_before_the_weights_change(cfg):
    torch.manual_seed(0)
    model = torch.nn.Sequential(AnalogLinear(12, 6, config=cfg))
    x = torch.randn(8, 12) * 1e30  # the forward is finite, the squared loss overflows: inf gradients
    model.train()
    model(x).pow(2).mean().backward()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    attach_hwa(opt, model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"(?s)gradient.*0\.tile\.weight.*NaN or inf.*inputs.*refused"):
        opt.step()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_weights_made_non_finite_by_the_optimizer_are_refused_after_the_step():
    model = AnalogLinear(4, 3, config=presets.standard_hwa())
    model(torch.randn(5, 4)).sum().backward()  # finite gradients
    opt = torch.optim.SGD(model.parameters(), lr=float("inf"))  # ...but an update that overflows
    attach_hwa(opt, model)
    with pytest.raises(ValueError, match=r"(?s)tile\.weight.*NaN or inf after the optimizer step"):
        opt.step()


def test_hwa_train_refuses_bad_loaders_and_labels_naming_them():
    model = AnalogLinear(8, 3, config=presets.standard_hwa())
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for loader, error, match in [
            (None, TypeError, r"loader must be .*iterable of such batches, got None"),
            (3, TypeError, r"loader must be .*iterable of such batches, got int"),
            (x, TypeError, r"loader must be an \(x, y\) pair.*got Tensor"),
            ([x], TypeError, r"loader: batch 0 must be an \(x, y\) pair"),
            ((x, y.float()), TypeError, r"loader: labels y.*float32.*integer class indices"),
            ((x, y.float() * float("nan")), TypeError, r"loader: labels y.*float32"),
            ((x, y[:5]), ValueError, r"labels.*5.*16")]:
        with pytest.raises(error, match=match):
            hwa_train(model, loader)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    soft = torch.softmax(torch.randn(16, 3), dim=1)  # class probabilities are a valid cross-entropy target
    assert len(hwa_train(model, (x, soft))) == 1
    assert len(hwa_train(model, (x, torch.randn(16, 3)), loss=torch.nn.functional.mse_loss)) == 1
