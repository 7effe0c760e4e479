"""AnalogConv1d/2d: im2col on tiles equals torch's convolution with perfect IO; clear errors."""

import pytest
import torch
from torch import nn

from aimc_lab.config import AnalogConfig, IOParameters, MappingParameters
from aimc_lab.nn import AnalogConv1d, AnalogConv2d

PERFECT = AnalogConfig(forward=IOParameters(is_perfect=True))
SMALL_TILES = AnalogConfig(forward=IOParameters(is_perfect=True),
                           mapping=MappingParameters(max_input_size=16, max_output_size=8))


def _pair(torch_type, analog_type, config, *args, **kwargs):
    ref = torch_type(*args, **kwargs)
    layer = analog_type(*args, config=config, **kwargs)
    layer.set_weights(ref.weight.detach(), None if ref.bias is None else ref.bias.detach())
    return ref, layer


CONV2D_CASES = [
    dict(kernel_size=3),
    dict(kernel_size=(3, 2), stride=2, padding=1),
    dict(kernel_size=3, dilation=2, padding=(2, 1), bias=False),
    dict(kernel_size=(2, 4), padding="same", dilation=(1, 2)),
    dict(kernel_size=3, padding="valid", stride=(1, 3)),
    dict(kernel_size=3, padding=2, padding_mode="reflect"),
    dict(kernel_size=3, padding=1, padding_mode="circular"),
    dict(kernel_size=3, padding=(1, 2), padding_mode="replicate"),
]


@pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")
@pytest.mark.parametrize("kwargs", CONV2D_CASES)
def test_conv2d_equals_torch(kwargs):
    torch.manual_seed(1)
    ref, layer = _pair(nn.Conv2d, AnalogConv2d, SMALL_TILES, 5, 11, **kwargs)
    x = torch.randn(2, 5, 9, 10)
    torch.testing.assert_close(layer(x), ref(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer(x[0]), ref(x[0]), atol=1e-5, rtol=1e-5)  # unbatched


CONV1D_CASES = [
    dict(kernel_size=3),
    dict(kernel_size=4, stride=3, padding=2, dilation=2),
    dict(kernel_size=4, padding="same", bias=False),
    dict(kernel_size=3, padding=2, padding_mode="reflect"),
]


@pytest.mark.parametrize("kwargs", CONV1D_CASES)
def test_conv1d_equals_torch(kwargs):
    torch.manual_seed(2)
    ref, layer = _pair(nn.Conv1d, AnalogConv1d, SMALL_TILES, 7, 13, **kwargs)
    x = torch.randn(3, 7, 17)
    torch.testing.assert_close(layer(x), ref(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer(x[1]), ref(x[1]), atol=1e-5, rtol=1e-5)


def test_conv2d_odd_sizes_on_512_tiles_forward_and_gradients():
    torch.manual_seed(3)
    ref, layer = _pair(nn.Conv2d, AnalogConv2d, PERFECT, 61, 37, 3, stride=2, padding=1)
    assert layer.tile.physical_grid == (2, 1)  # K = 61·9 = 549 > 512
    x = torch.randn(2, 61, 9, 11)
    x_ref, x_an = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y_ref, y_an = ref(x_ref), layer(x_an)
    torch.testing.assert_close(y_an, y_ref, atol=1e-4, rtol=1e-4)
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    y_an.backward(g)
    torch.testing.assert_close(x_an.grad, x_ref.grad, atol=1e-4, rtol=1e-4)
    scale = layer.tile.out_scale.unsqueeze(1)
    torch.testing.assert_close(layer.tile.weight.grad, ref.weight.grad.reshape(37, -1) * scale,
                               atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(layer.bias.grad, ref.bias.grad, atol=1e-4, rtol=1e-5)


def test_conv1d_gradients():
    torch.manual_seed(4)
    ref, layer = _pair(nn.Conv1d, AnalogConv1d, SMALL_TILES, 6, 9, 5, padding=2)
    x = torch.randn(2, 6, 12)
    x_ref, x_an = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ref(x_ref).square().sum().backward()
    layer(x_an).square().sum().backward()
    torch.testing.assert_close(x_an.grad, x_ref.grad, atol=1e-4, rtol=1e-4)
    scale = layer.tile.out_scale.unsqueeze(1)
    torch.testing.assert_close(layer.tile.weight.grad, ref.weight.grad.reshape(9, -1) * scale,
                               atol=1e-4, rtol=1e-4)


def test_get_weights_round_trip():
    ref, layer = _pair(nn.Conv2d, AnalogConv2d, PERFECT, 3, 4, (2, 3))
    w, b = layer.get_weights()
    assert w.shape == ref.weight.shape and b.shape == ref.bias.shape
    torch.testing.assert_close(w, ref.weight.detach())
    torch.testing.assert_close(b, ref.bias.detach())
    assert layer.config is PERFECT


def test_noisy_default_config_runs():
    layer = AnalogConv2d(3, 4, 3)
    y = layer(torch.randn(2, 3, 6, 6))
    assert y.shape == (2, 4, 4, 4) and torch.isfinite(y).all()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(groups=2), NotImplementedError, "groups"),
    (dict(kernel_size=0), ValueError, "kernel_size"),
    (dict(stride=(1,)), ValueError, "stride"),
    (dict(padding=-1), ValueError, "padding"),
    (dict(padding="full"), ValueError, "padding"),
    (dict(padding="same", stride=2), ValueError, "stride"),
    (dict(padding_mode="mirror"), ValueError, "padding_mode"),
    (dict(dilation=0), ValueError, "dilation"),
])
def test_bad_constructor_arguments(kwargs, error, match):
    args = dict(in_channels=4, out_channels=4, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        AnalogConv2d(**args)


def test_bad_inputs_and_weights():
    layer = AnalogConv2d(4, 6, 3)
    with pytest.raises(ValueError, match=r"\[B, 4, H, W\]"):
        layer(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\[B, 4, H, W\]"):
        layer(torch.randn(8, 8))
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        layer(torch.randn(1, 4, 2, 8))
    w = torch.randn(6, 4, 3, 3)
    w[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        layer.set_weights(w)
    with pytest.raises(ValueError, match=r"\[6, 4, 3, 3\]"):
        layer.set_weights(torch.randn(6, 36))
    with pytest.raises(ValueError, match="NaN"):
        layer.set_weights(torch.randn(6, 4, 3, 3), torch.full((6,), float("nan")))
    nobias = AnalogConv1d(2, 3, 2, bias=False)
    with pytest.raises(ValueError, match="no bias"):
        nobias.set_weights(torch.randn(3, 2, 2), torch.zeros(3))
    with pytest.raises(ValueError, match=r"\[B, 2, L\]"):
        nobias(torch.randn(1, 2, 3, 4))


@pytest.mark.parametrize("kernel, stride, dilation", [((5, 5), (1, 1), (1, 1)), ((3, 2), (2, 3), (1, 1)),
                                                      ((3, 3), (1, 2), (2, 3)), ((1, 4), (3, 1), (1, 2))])
def test_patches_are_unfolds_rows_with_the_same_gradient(kernel, stride, dilation):
    """conv.patches (one copy of strided views) is F.unfold transposed to rows [B·L, C·kh·kw], bit for
    bit, and its input gradient is unfold's (the overlapping patches' sums)."""
    from aimc_lab.nn.conv import ConvGeometry, patches

    g = ConvGeometry(kernel=kernel, stride=stride, dilation=dilation, pad=(0, 0, 0, 0), padding_mode="zeros")
    x = torch.randn(3, 4, 13, 11, generator=torch.Generator().manual_seed(0))
    want = nn.functional.unfold(x, kernel, dilation=dilation, stride=stride).transpose(1, 2).reshape(-1, 4 * kernel[0]
                                                                                                     * kernel[1])
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    got = patches(xa, g)
    assert got.is_contiguous() and torch.equal(got, want)
    grad = torch.randn(want.shape, generator=torch.Generator().manual_seed(1)).requires_grad_()
    ga = torch.autograd.grad(got, xa, grad, create_graph=True)[0]
    rows = nn.functional.unfold(xb, kernel, dilation=dilation, stride=stride).transpose(1, 2).reshape(want.shape)
    gb = torch.autograd.grad(rows, xb, grad, create_graph=True)[0]
    torch.testing.assert_close(ga, gb)
    # the gradient is differentiable (as unfold's): the derivative of Σ (∂/∂x)² by the rows' gradient agrees too
    second = [torch.autograd.grad((v ** 2).sum(), grad)[0] for v in (ga, gb)]
    torch.testing.assert_close(second[0], second[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_patches_gradient_through_a_padded_conv_layer(dtype):
    """The fold backward inside the analog conv (padding, stride, a first layer whose input needs a
    gradient): the input gradient of a perfect-periphery layer equals the digital conv's."""
    from aimc_lab.convert import convert_to_analog

    torch.manual_seed(0)
    digital = nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2)).to(dtype)
    perfect = AnalogConfig(forward=IOParameters(is_perfect=True), backward=IOParameters(is_perfect=True))
    analog = convert_to_analog(nn.Sequential(digital), perfect)[0].to(dtype)
    assert isinstance(analog, AnalogConv2d)
    x = torch.randn(2, 3, 9, 8, dtype=dtype)
    xa, xd = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yd = analog(xa), digital(xd)
    g = torch.randn_like(yd)
    ya.backward(g)
    yd.backward(g)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ya, yd, **tol)
    torch.testing.assert_close(xa.grad, xd.grad, **tol)


def test_empty_batch_conv_backward_gives_an_empty_gradient():
    """An empty batch through a strided, dilated conv: forward and backward run, the gradient is empty."""
    from aimc_lab.convert import convert_to_analog

    layer = convert_to_analog(nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, dilation=2, padding=1)))[0]
    x = torch.rand(0, 2, 9, 9, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    assert y.shape == (0, 3, 4, 4) and x.grad.shape == (0, 2, 9, 9)
