"""In-memory training: tile forward/backward, algorithms lower a regression loss, AnalogSGD, state."""

import copy

import pytest
import torch
from torch import nn

from aimc_lab.config import AnalogConfig, IOParameters
from aimc_lab.devices import pulsed as P
from aimc_lab.kernels.analog_mvm import analog_mvm
from aimc_lab.train.analog_sgd import AnalogSGD
from aimc_lab.train.inmemory import ALGORITHMS, InMemoryTile, InMemoryTrainingParameters, training_config

K, N = 8, 4


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def regression():
    g = torch.Generator().manual_seed(0)
    w_true = torch.randn(N, K, generator=g) * 0.3
    x = torch.rand(256, K, generator=g) * 2 - 1
    return x, x @ w_true.t(), w_true


# c-ttv2: the chopped reads of a non-leaky A cancel over a chopper period, so A must saturate (soft
# bounds) within a period: large fast_lr; forget_buffer as in AIHWKIT's buffered-transfer default
TUNED = {"sgd": {}, "tiki-taka": {}, "ttv2": {}, "c-ttv2": dict(fast_lr=20.0, forget_buffer=True),
         "agad": dict(fast_lr=5.0),
         "mixed-precision": {}}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_algorithm_lowers_loss(algorithm):
    x, y, _ = regression()
    device = P.SoftBounds(dw_min=0.01, up_down=0.2)
    config = training_config(algorithm, device=device, transfer_columns=K, **TUNED[algorithm])
    tile = InMemoryTile(N, K, config, seed=0)
    opt = AnalogSGD(tile, lr=0.1)

    def loss():
        return ((tile.get_weights() @ x.t() - y.t()) ** 2).mean().item()

    before = loss()
    for _ in range(6):
        for i in range(0, 256, 16):
            out = tile(x[i:i + 16])
            batch_loss = ((out - y[i:i + 16]) ** 2).mean()
            opt.zero_grad()
            batch_loss.backward()
            opt.step()
    assert loss() < 0.5 * before


def test_backward_is_transposed_mvm_and_stores_rows():
    config = training_config("sgd", device=P.ConstantStep(), backward=IOParameters(is_perfect=True))
    tile = InMemoryTile(N, K, config, seed=0)
    x = torch.randn(5, K, requires_grad=True)
    y = tile(x)
    grad_y = torch.randn(5, N)
    y.backward(grad_y)
    torch.testing.assert_close(x.grad, grad_y @ tile.C.read())
    assert len(tile._pending) == 1 and torch.equal(tile._pending[0][1], grad_y)
    # a first layer (input without grad) still records its rows
    tile2 = InMemoryTile(N, K, config, seed=0)
    tile2(torch.randn(3, K)).sum().backward()
    assert len(tile2._pending) == 1


def test_noisy_backward_uses_backward_io():
    config = training_config("sgd", backward=IOParameters(out_noise=0.5, bound_management="none"))
    tile = InMemoryTile(N, K, config, seed=0)
    x = torch.randn(64, K, requires_grad=True)
    tile(x).backward(torch.ones(64, N))
    exact = torch.ones(64, N) @ tile.C.read()
    assert (x.grad - exact).std() > 0.1


def test_set_get_weights_and_forward():
    config = training_config("ttv2", device=P.SoftBounds(), forward=IOParameters(is_perfect=True))
    tile = InMemoryTile(N, K, config, seed=0)
    w = torch.rand(N, K, generator=torch.Generator().manual_seed(0)) * 0.4 - 0.2
    tile.set_weights(w)
    w = tile.C.clip(w + tile.C.reference) - tile.C.reference  # programmed within each device's bounds
    torch.testing.assert_close(tile.get_weights(), w)
    x = torch.randn(3, K)
    torch.testing.assert_close(tile(x), x @ w.t())
    torch.testing.assert_close(tile.A.weights(), torch.zeros(N, K), atol=1e-6, rtol=0)  # A at its reference


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_state_dict_round_trip(algorithm):
    x, y, _ = regression()
    config = training_config(algorithm, device=P.SoftBounds(dw_min=0.01), transfer_columns=3)
    tile = InMemoryTile(N, K, config, seed=0)
    opt = AnalogSGD(tile, lr=0.1)
    for i in range(0, 64, 16):
        ((tile(x[i:i + 16]) - y[i:i + 16]) ** 2).mean().backward()
        opt.step()
    other = InMemoryTile(N, K, config, seed=99)
    other.load_state_dict(tile.state_dict())
    for key, value in tile.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, other.state_dict()[key]), key
    # same state, same generator: identical continuation
    for t in (tile, other):
        ((t(x[:16]) - y[:16]) ** 2).mean().backward()
        AnalogSGD(t, lr=0.1).step()
    assert torch.equal(tile.get_weights(), other.get_weights())
    clone = copy.deepcopy(tile)
    assert clone.analog_ctx.analog_tile is clone


def test_config_round_trip_and_validation():
    config = training_config("c-ttv2", device=P.reram_sb(), in_chop_prob=0.05)
    assert isinstance(config, AnalogConfig) and config.training.algorithm == "c-ttv2"
    assert AnalogConfig.from_dict(config.to_dict()) == config
    tt = training_config("tt", device=P.SoftBounds())
    assert tt.training.algorithm == "tiki-taka" and tt.training.fast_device.subtract_symmetry_point
    with pytest.raises(ValueError, match="InMemoryTrainingParameters.desired_bl"):
        training_config("sgd", desired_bl=0)
    with pytest.raises(ValueError, match="algorithm"):
        training_config("adam")
    with pytest.raises(ValueError, match="unknown option"):
        training_config("sgd", not_a_field=1)
    with pytest.raises(ValueError, match="InMemoryTrainingParameters.device"):
        InMemoryTrainingParameters(device="reram")
    with pytest.raises(ValueError, match="training"):
        InMemoryTile(2, 2, AnalogConfig())


class Mixed(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.digital = nn.Linear(K, K)
        self.analog = InMemoryTile(N, K, config, seed=0)
        self.bias = nn.Parameter(torch.zeros(N))

    def forward(self, x):
        return self.analog(torch.tanh(self.digital(x))) + self.bias


@pytest.mark.parametrize("pass_module", [True, False])
def test_analog_sgd_mixes_analog_and_digital(pass_module):
    model = Mixed(training_config("sgd", device=P.ConstantStep(dw_min=0.01)))
    opt = AnalogSGD(model if pass_module else model.parameters(), lr=0.1)
    x, y, _ = regression()
    w_a, w_d, b = model.analog.get_weights(), model.digital.weight.detach().clone(), model.bias.detach().clone()
    ((model(x[:32]) - y[:32]) ** 2).mean().backward()
    opt.step()
    assert not torch.equal(model.analog.get_weights(), w_a)
    assert not torch.equal(model.digital.weight, w_d)
    assert not torch.equal(model.bias, b)
    assert not model.analog._pending
    with pytest.raises(ValueError, match="AnalogSGD.lr"):
        AnalogSGD(model, lr=-1.0)
