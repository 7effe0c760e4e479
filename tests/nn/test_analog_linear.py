"""AnalogLinear on a grid of tiles equals the dense computation with perfect IO."""

import torch
from torch import nn

from aimc_lab.config import AnalogConfig, IOParameters
from aimc_lab.nn import AnalogLinear

PERFECT = AnalogConfig(forward=IOParameters(is_perfect=True))


def test_tiled_linear_equals_dense_forward_and_gradients():
    torch.manual_seed(0)
    ref = nn.Linear(700, 1000)
    layer = AnalogLinear(700, 1000, config=PERFECT)
    layer.set_weights(ref.weight.detach(), ref.bias.detach())
    assert layer.tile.physical_grid == (2, 2)
    x = torch.randn(3, 5, 700)
    x_ref = x.clone().requires_grad_(True)
    x_an = x.clone().requires_grad_(True)
    y_ref, y_an = ref(x_ref), layer(x_an)
    assert y_an.shape == (3, 5, 1000)
    torch.testing.assert_close(y_an, y_ref, atol=1e-4, rtol=1e-4)
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    y_an.backward(g)
    torch.testing.assert_close(x_an.grad, x_ref.grad, atol=1e-4, rtol=1e-4)
    scale = layer.tile.out_scale.unsqueeze(1)
    torch.testing.assert_close(layer.tile.weight.grad, ref.weight.grad * scale, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(layer.bias.grad, ref.bias.grad)
