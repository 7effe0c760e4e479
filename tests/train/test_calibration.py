"""Post-training input-range calibration: each method gives the expected range on synthetic data."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from aimc_lab import presets
from aimc_lab.config import AnalogConfig, InputRangeParameters, IOParameters, MappingParameters
from aimc_lab.nn import AnalogLinear
from aimc_lab.train import calibrate_input_ranges

SCALES = torch.tensor([1.0] * 4 + [2.0] * 4 + [0.5] * 4)  # three slices of 4 inputs with different spreads


def layer(K=12, in_size=4, **ir):
    ir.setdefault("init_from_data", 10)
    cfg = AnalogConfig(mapping=MappingParameters(max_input_size=in_size),
                       input_range=InputRangeParameters(enable=True, **ir))
    return AnalogLinear(K, 3, config=cfg)


def gaussian(n=4096, seed=0):
    return torch.randn(n, 12, generator=torch.Generator().manual_seed(seed)) * SCALES


def per_slice(x, fn):
    return torch.stack([fn(x[:, 4 * s:4 * s + 4]) for s in range(3)])


def test_max_is_the_max_abs_input_per_slice():
    x = gaussian()
    model = layer()
    out = calibrate_input_ranges(model, x, method="max", batch_size=500)
    expect = per_slice(x, lambda v: v.abs().max())
    assert torch.allclose(model.tile.input_range.detach(), expect)
    assert torch.allclose(out["tile"], expect)


def test_cache_quantile_is_the_quantile_of_abs_x():
    x = gaussian()
    model = layer()
    calibrate_input_ranges(model, x, method="cache_quantile", quantile=0.99, max_samples=10_000)
    r = model.tile.input_range.detach()
    assert torch.allclose(r, per_slice(x, lambda v: torch.quantile(v.abs().flatten(), 0.99)))
    # |N(0, s²)| has its 99 % quantile at 2.5758·s
    assert torch.allclose(r, 2.5758 * SCALES[::4], rtol=0.05)


def test_cache_quantile_subsamples_to_max_samples_rows():
    x = gaussian(8192)
    model = layer()
    calibrate_input_ranges(model, x, method="cache_quantile", quantile=0.95, max_samples=2000, batch_size=512)
    assert torch.allclose(model.tile.input_range.detach(), 1.96 * SCALES[::4], rtol=0.05)


def test_moving_quantile_is_the_mean_of_batch_quantiles():
    x = gaussian()
    model = layer()
    calibrate_input_ranges(model, x, method="moving_quantile", quantile=0.9, batch_size=1024)
    batch_q = torch.stack([per_slice(b, lambda v: torch.quantile(v.abs().flatten(), 0.9)) for b in x.split(1024)])
    assert torch.allclose(model.tile.input_range.detach(), batch_q.mean(0), rtol=1e-5)
    assert torch.allclose(model.tile.input_range.detach(), 1.645 * SCALES[::4], rtol=0.05)


def test_moving_std_is_alpha_times_std():
    x = gaussian()
    model = layer()
    calibrate_input_ranges(model, x, method="moving_std", std_alpha=2.0, batch_size=1024)
    batch_std = torch.stack([per_slice(b, lambda v: 2.0 * v.std()) for b in x.split(1024)])
    assert torch.allclose(model.tile.input_range.detach(), batch_std.mean(0), rtol=1e-5)
    assert torch.allclose(model.tile.input_range.detach(), 2.0 * SCALES[::4], rtol=0.05)


def test_data_forms_max_batches_and_zero_rows():
    x = gaussian(1000)
    y = torch.zeros(1000, dtype=torch.long)
    expect_all = per_slice(x, lambda v: v.abs().max())
    for data in ((x, y), DataLoader(TensorDataset(x, y), batch_size=100), [x[:500], x[500:]]):
        model = layer()
        calibrate_input_ranges(model, data, method="max")
        assert torch.allclose(model.tile.input_range.detach(), expect_all)
    model = layer()
    calibrate_input_ranges(model, x, method="max", batch_size=100, max_batches=2)
    assert torch.allclose(model.tile.input_range.detach(), per_slice(x[:200], lambda v: v.abs().max()))
    # all-zero rows are dropped before the statistics
    model = layer()
    xz = torch.cat([x[:100], torch.zeros(900, 12)])
    calibrate_input_ranges(model, xz, method="moving_std", batch_size=1000)
    assert torch.allclose(model.tile.input_range.detach(), per_slice(x[:100], lambda v: 3.0 * v.std()), rtol=1e-5)


def test_calibration_is_sequential_through_the_model_and_restores_state():
    torch.manual_seed(0)
    cfg = presets.standard_hwa()
    model = torch.nn.Sequential(AnalogLinear(12, 16, config=cfg), torch.nn.ReLU(), AnalogLinear(16, 4, config=cfg))
    model.train()
    x = gaussian(512)
    seen = []
    handle = model[2].tile.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    out = calibrate_input_ranges(model, x, method="max", batch_size=512)
    handle.remove()
    assert set(out) == {"0.tile", "2.tile"}
    # the second layer is calibrated on what the first one actually produced (exact MVMs, old range clipping)
    assert torch.allclose(model[2].tile.input_range.detach(), seen[0].abs().max().reshape(1))
    assert model.training  # mode restored
    assert all(not layer.tile.config.forward.is_perfect for layer in (model[0], model[2]))  # config restored
    assert int(model[0].tile.input_range_batches) == cfg.input_range.init_from_data  # no re-init in training
    before = model[0].tile.input_range.detach().clone()
    model(x[:64])
    assert torch.equal(model[0].tile.input_range.detach(), before)


def test_bad_arguments_raise_clear_errors():
    model = layer()
    x = gaussian(100)
    with pytest.raises(ValueError, match="method = 'median'.*cache_quantile"):
        calibrate_input_ranges(model, x, method="median")
    for q in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="quantile"):
            calibrate_input_ranges(model, x, quantile=q)
    with pytest.raises(ValueError, match="std_alpha"):
        calibrate_input_ranges(model, x, method="moving_std", std_alpha=0)
    with pytest.raises(ValueError, match="max_batches"):
        calibrate_input_ranges(model, x, max_batches=0)
    with pytest.raises(ValueError, match="no analog tile with an input range"):
        calibrate_input_ranges(AnalogLinear(4, 2, config=AnalogConfig(forward=IOParameters(is_perfect=True))),
                               torch.randn(8, 4))


def test_conv_layer_is_calibrated_on_its_unfolded_patches():
    from aimc_lab.nn import AnalogConv2d

    conv = AnalogConv2d(2, 3, 3, padding=1, config=presets.standard_hwa())
    x = torch.rand(16, 2, 6, 6, generator=torch.Generator().manual_seed(0)) * 4 - 2
    out = calibrate_input_ranges(conv, x, method="max")
    assert list(out) == ["tile"]
    assert torch.allclose(conv.tile.input_range.detach(), x.abs().max().reshape(1))


@pytest.mark.parametrize("data, match", [
    (torch.zeros(0, 12), "saw no nonzero input"),
    (torch.zeros(64, 12), "saw no nonzero input"),
    ([], "no batches"),
])
def test_empty_or_all_zero_data_raise_and_change_nothing(data, match):
    """Issue 10.13: no silent 3.0 left in place."""
    model = layer()
    with pytest.raises(ValueError, match=match):
        calibrate_input_ranges(model, data, method="max")
    assert torch.equal(model.tile.input_range.detach(), torch.full((3,), 3.0))
    assert int(model.tile.input_range_batches) == 0


def test_non_finite_data_raises_and_changes_nothing():
    model = layer()
    x = gaussian(64)
    x[5, 3] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        calibrate_input_ranges(model, x, method="max")
    assert torch.equal(model.tile.input_range.detach(), torch.full((3,), 3.0))
    assert not model.tile.config.forward.is_perfect  # config restored
