"""In-memory training: tile forward/backward, algorithms lower a regression loss, AnalogSGD, state."""

import copy
import dataclasses

import pytest
import torch
from torch import nn

from aimc_lab.config import AnalogConfig, IOParameters
from aimc_lab.devices import pulsed as P
from aimc_lab.train.analog_sgd import AnalogSGD
from aimc_lab.train.inmemory import ALGORITHMS, InMemoryTile, InMemoryTrainingParameters, training_config, transfer

K, N = 8, 4


def regression():
    g = torch.Generator().manual_seed(0)
    w_true = torch.randn(N, K, generator=g) * 0.3
    x = torch.rand(256, K, generator=g) * 2 - 1
    return x, x @ w_true.t(), w_true


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_algorithm_lowers_loss_with_its_defaults(algorithm):
    # every algorithm with its published defaults only (docs/physics.md §4), an asymmetric device
    x, y, _ = regression()
    device = P.SoftBounds(dw_min=0.01, up_down=0.2)
    config = training_config(algorithm, device=device)
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
    assert loss() < 0.6 * before  # c-ttv2, the slowest here, reaches 0.53 after 6 epochs


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
    with pytest.raises(TypeError, match="InMemoryTrainingParameters.device"):
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


# -- algorithm semantics (docs/physics.md §4), each against a hand-derived expectation ----------------------

PERFECT = IOParameters(is_perfect=True)
EXACT_STEP = P.ConstantStep(dw_min=0.001, dw_min_dtod=0.0, dw_min_std=0.0, up_down_dtod=0.0, w_max=1.0,
                            w_min=-1.0, w_max_dtod=0.0, w_min_dtod=0.0)


def _constant_gradient_steps(tile, x, d, lr, steps):
    """Feed the same (x, δ) rows to ``tile.update`` ``steps`` times (no forward noise involved)."""
    for _ in range(steps):
        tile._pending.append((x.clone(), d.clone()))
        tile.update(lr)


def test_mixed_precision_with_ideal_steps_follows_digital_sgd():
    # χ accumulates −η·δᵀx digitally and only whole dw_min steps reach C, so with an exact
    # ConstantStep device C tracks digital SGD to within about one step
    x, y, _ = regression()
    config = training_config("mixed-precision", device=EXACT_STEP, forward=PERFECT, backward=PERFECT)
    tile = InMemoryTile(N, K, config, seed=0)
    w = tile.get_weights().clone()
    opt = AnalogSGD(tile, lr=0.05)
    for _ in range(3):
        for i in range(0, 256, 16):
            xb, yb = x[i:i + 16], y[i:i + 16]
            ((tile(xb) - yb) ** 2).mean().backward()
            opt.step()
            w = w - 0.05 * 2 * (xb @ w.t() - yb).t() @ xb / (16 * N)
    assert (tile.get_weights() - w).abs().max() <= 2 * EXACT_STEP.dw_min
    assert (tile.get_weights() - tile.get_weights().new_tensor(0)).abs().max() > 0.05  # it did learn
    # what is left in χ is the part not yet transferred: below one step (ε = dw_min)
    assert tile.H.abs().max() < EXACT_STEP.dw_min


def test_cttv2_without_chopping_is_ttv2():
    # choppers held at +1 (in_chop_prob = 0) and the same fast array: exactly the ttv2 trajectory
    x, y, _ = regression()
    device = P.SoftBounds(dw_min=0.01, up_down=0.2)
    common = dict(transfer_columns=3, transfer_lr=0.3, fast_lr=1.0, auto_scale=False,
                  fast_device=dataclasses.replace(device, subtract_symmetry_point=True))
    tiles = [InMemoryTile(N, K, training_config(a, device=device, **extra, **common), seed=0)
             for a, extra in (("ttv2", {}), ("c-ttv2", dict(in_chop_prob=0.0)))]
    for tile in tiles:
        opt = AnalogSGD(tile, lr=0.1)
        for i in range(0, 128, 16):
            ((tile(x[i:i + 16]) - y[i:i + 16]) ** 2).mean().backward()
            opt.step()
    ttv2, cttv2 = tiles
    assert torch.equal(cttv2.chopper, torch.ones(K))
    assert torch.equal(ttv2.get_weights(), cttv2.get_weights())
    assert torch.equal(ttv2.A.w, cttv2.A.w) and torch.equal(ttv2.H, cttv2.H)
    assert not torch.equal(ttv2.get_weights(), InMemoryTile(N, K, ttv2.config, seed=0).get_weights())


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cttv2_chopper_applied_on_update_and_undone_on_readout(sign):
    # A receives the chopped gradient (sign flips A), the read of A is multiplied by the same sign
    # before H, so H and C do not depend on the chopper
    config = training_config("c-ttv2", device=EXACT_STEP, fast_device=P.Ideal(), forward=PERFECT,
                             backward=PERFECT, transfer_io=PERFECT, transfer_columns=K, transfer_lr=0.25,
                             in_chop_prob=0.0, fast_lr=1.0, scale_fast_lr=True, auto_scale=False,
                             scale_transfer_lr=False, transfer_bl=31, forget_buffer=False)
    tile = InMemoryTile(1, K, config, seed=0)
    tile.set_weights(torch.zeros(1, K))
    tile.chopper.fill_(sign)
    x = torch.linspace(-1, 1, K).unsqueeze(0)
    _constant_gradient_steps(tile, x, -torch.ones(1, 1), lr=0.01, steps=1)
    target = 0.01 * x  # ΔW = −η·δᵀx with δ = −1
    torch.testing.assert_close(tile.A.weights(), sign * target)
    # H = transfer_lr·c·A/dw_min = 2.5·x pulses: trunc goes to C, the rest stays in H
    pulses = torch.trunc(0.25 * target / 0.001)
    torch.testing.assert_close(tile.get_weights(), pulses * 0.001)
    torch.testing.assert_close(tile.H, 0.25 * target / 0.001 - pulses)


def test_cttv2_chopper_flips_with_in_chop_prob():
    config = training_config("c-ttv2", device=EXACT_STEP, transfer_columns=K, in_chop_prob=0.3)
    tile = InMemoryTile(N, K, config, seed=0)
    flips, reads = 0, 0
    x, d = torch.rand(4, K), torch.randn(4, N) * 0.01
    for _ in range(400):
        before = tile.chopper.clone()
        _constant_gradient_steps(tile, x, d, lr=0.01, steps=1)
        flips += int((tile.chopper != before).sum())
        reads += K
    assert abs(flips / reads - 0.3) < 0.03  # 3200 reads: std 0.008


@pytest.mark.parametrize("offset", [0.0, 0.3])
@pytest.mark.parametrize("tail, total", [(4.0, 10.0), (1.0, 1.0)])
def test_agad_reference_is_the_frozen_running_mean(offset, tail, total):
    # Ideal fast array, constant gradient 0.01·x per update, perfect reads of both columns after every
    # update, chopper period P = 4. Period 1 only builds the running mean μ; at the flip μ is frozen as
    # the reference. tail_weighting = P: α = 1, μ is the last read (A at the flip, offset + 0.04·x), and
    # period 2 adds c·(μ − ref)/dw_min·transfer_lr = 0.01·x·(s + 1)·100 for reads s = 0..3: 10·x.
    # tail_weighting = 1: plain means, μ_s − ref = 0.015·x − 0.005·x·(s + 2), c = −1: Σ = 0.01·x → 1·x
    # (the lag of a plain mean). A's offset cancels either way.
    config = training_config("agad", device=EXACT_STEP, fast_device=P.Ideal(), forward=PERFECT,
                             backward=PERFECT, transfer_io=PERFECT, transfer_columns=2, transfer_lr=0.1,
                             in_chop_prob=0.25, tail_weighting=tail, fast_lr=1.0, scale_fast_lr=True,
                             auto_scale=False, scale_transfer_lr=False, transfer_bl=31, forget_buffer=False)
    tile = InMemoryTile(1, 2, config, seed=0)
    tile.set_weights(torch.zeros(1, 2))
    tile.A.w.fill_(offset)
    x = torch.tensor([[1.0, 0.5]])
    _constant_gradient_steps(tile, x, -torch.ones(1, 1), lr=0.01, steps=4)
    assert torch.equal(tile.get_weights(), torch.zeros(1, 2)) and torch.equal(tile.H, torch.zeros(1, 2))
    assert torch.equal(tile.chopper, -torch.ones(2))  # flipped after the 4th read
    expected_ref = offset + (0.04 if tail == 4.0 else 0.025) * x
    torch.testing.assert_close(tile.ref_mean, expected_ref)
    _constant_gradient_steps(tile, x, -torch.ones(1, 1), lr=0.01, steps=4)
    transferred = tile.get_weights() / 0.001 + tile.H  # pulses sent to C plus what is left in H
    torch.testing.assert_close(transferred, total * x, atol=1e-3, rtol=0)
    assert torch.equal(tile.chopper, torch.ones(2))


@pytest.mark.parametrize("forget_buffer", [False, True])
def test_buffer_threshold_and_momentum(forget_buffer):
    # H in units of C's step: |H| >= 1 sends trunc(H) pulses (capped by transfer_bl); afterwards
    # H ← H − (1 − momentum)·n, or H ← momentum·H with forget_buffer; |H| < 1 stays untouched
    config = training_config("ttv2", device=EXACT_STEP, fast_device=P.Ideal(), transfer_columns=K,
                             transfer_io=PERFECT, momentum=0.25, forget_buffer=forget_buffer, transfer_bl=3)
    tile = InMemoryTile(1, K, config, seed=0)
    tile.set_weights(torch.zeros(1, K))
    h = torch.tensor([[0.4, -0.9, 1.0, 1.7, -2.5, 5.0, 0.0, -1.2]])
    tile.H.copy_(h)
    transfer.buffer_transfer(tile, torch.arange(K))
    n = torch.tensor([[0.0, 0.0, 1.0, 1.0, -2.0, 3.0, 0.0, -1.0]])
    torch.testing.assert_close(tile.get_weights(), n * 0.001)
    expected = torch.where(n != 0, 0.25 * h, h) if forget_buffer else h - 0.75 * n
    torch.testing.assert_close(tile.H, expected)


# -- validation of the training parameters (every field, types, non-finite values, cross-field) -----

NAN, INF = float("nan"), float("inf")
BAD_FIELDS = [
    ("algorithm", "adam", ValueError), ("algorithm", 3, TypeError),
    ("device", "reram", TypeError), ("device", None, TypeError), ("fast_device", P.Ideal, TypeError),
    ("desired_bl", 0, ValueError), ("desired_bl", 1.5, TypeError), ("desired_bl", True, TypeError),
    ("update_management", 1, TypeError), ("bl_management", "yes", TypeError),
    ("fast_lr", 0.0, ValueError), ("fast_lr", -1.0, ValueError), ("fast_lr", NAN, ValueError),
    ("fast_lr", INF, ValueError), ("fast_lr", "1", TypeError),
    ("transfer_every", 0, ValueError), ("transfer_every", 2.0, TypeError),
    ("transfer_columns", 0, ValueError), ("transfer_columns", None, TypeError),
    ("transfer_lr", 0.0, ValueError), ("transfer_lr", NAN, ValueError), ("transfer_lr", INF, ValueError),
    ("transfer_lr", -INF, ValueError),
    ("transfer_bl", 0, ValueError), ("transfer_bl", 31.0, TypeError),
    ("transfer_io", "perfect", TypeError),
    ("momentum", 1.0, ValueError), ("momentum", -0.1, ValueError), ("momentum", NAN, ValueError),
    ("momentum", INF, ValueError), ("forget_buffer", 0, TypeError),
    ("in_chop_prob", 1.5, ValueError), ("in_chop_prob", -0.1, ValueError), ("in_chop_prob", NAN, ValueError),
    ("in_chop_prob", INF, ValueError), ("in_chop_prob", "0.1", TypeError),
    ("n_x_bins", -1, ValueError), ("n_x_bins", 2.5, TypeError), ("n_d_bins", -3, ValueError),
]


@pytest.mark.parametrize("name, value, error", BAD_FIELDS)
def test_training_parameters_reject_each_bad_field(name, value, error):
    # the ttv2 family uses every field but the mixed-precision bins; those are checked with their algorithm
    algorithm = "mixed-precision" if name.startswith("n_") else "c-ttv2"
    kwargs = {"algorithm": algorithm, name: value}
    with pytest.raises(error, match=rf"InMemoryTrainingParameters\.{name}") as info:
        InMemoryTrainingParameters(**kwargs)
    if error is ValueError:
        assert repr(value) in str(info.value) and "allowed" in str(info.value)


@pytest.mark.parametrize("algorithm, name, value", [
    ("agad", "in_chop_prob", 0.0),  # no chopper period: AGAD would never build a reference
    ("sgd", "fast_device", P.Ideal()), ("mixed-precision", "fast_device", P.Ideal()),
    ("ttv2", "n_x_bins", 8), ("sgd", "n_d_bins", 8),
    ("sgd", "momentum", 0.5), ("tiki-taka", "forget_buffer", True), ("mixed-precision", "momentum", 0.5),
])
def test_training_parameters_reject_settings_the_algorithm_ignores(algorithm, name, value):
    with pytest.raises(ValueError, match=rf"InMemoryTrainingParameters\.{name} = .*{algorithm}"):
        InMemoryTrainingParameters(algorithm=algorithm, **{name: value})


def test_training_parameters_accept_the_limits():
    InMemoryTrainingParameters(algorithm="c-ttv2", momentum=0.999, in_chop_prob=1.0, forget_buffer=True)
    InMemoryTrainingParameters(algorithm="c-ttv2", in_chop_prob=0.0)
    InMemoryTrainingParameters(algorithm="mixed-precision", n_x_bins=1, n_d_bins=255)
    InMemoryTrainingParameters(algorithm="agad", in_chop_prob=1.0, fast_device=P.Ideal())



@pytest.mark.parametrize("name, lo, hi", [("desired_bl", 1, 2 ** 16), ("transfer_bl", 1, 2 ** 16),
                                          ("transfer_every", 1, 2 ** 31 - 1), ("transfer_columns", 1, 2 ** 31 - 1),
                                          ("n_x_bins", 0, 2 ** 24), ("n_d_bins", 0, 2 ** 24)])
def test_training_parameters_integer_fields_have_an_upper_bound(name, lo, hi):
    algorithm = "mixed-precision" if name.startswith("n_") else "c-ttv2"
    assert getattr(InMemoryTrainingParameters(algorithm=algorithm, **{name: hi}), name) == hi
    for value in (hi + 1, 10 ** 40):
        with pytest.raises(ValueError, match=rf"InMemoryTrainingParameters\.{name} = {value} is invalid; "
                                             rf"allowed: an integer in \[{lo}, {hi}\]"):
            InMemoryTrainingParameters(algorithm=algorithm, **{name: value})

@pytest.mark.parametrize("name", ["fast_lr", "transfer_lr"])
def test_training_parameters_rates_have_an_upper_bound(name):
    assert getattr(InMemoryTrainingParameters(algorithm="ttv2", **{name: 1e6}), name) == 1e6
    for value in (1.1e6, 1e300, 10 ** 400):
        with pytest.raises(ValueError, match=rf"InMemoryTrainingParameters\.{name} = .* is invalid"):
            InMemoryTrainingParameters(algorithm="ttv2", **{name: value})


# -- make_tile: keyword arguments reach the tile or are refused -----------------------------------

def test_make_tile_passes_the_seed_and_refuses_unknown_keywords():
    from aimc_lab.nn import AnalogLinear
    from aimc_lab.tile import AnalogTile, make_tile

    config = training_config("sgd", device=P.SoftBounds())
    with pytest.raises(TypeError, match="bogus"):
        AnalogLinear(K, N, config=config, seed=2, bogus="x")
    with pytest.raises(TypeError, match="noise_model"):
        make_tile(N, K, config, noise_model=None)
    with pytest.raises(TypeError, match="bogus"):
        make_tile(N, K, AnalogConfig(), bogus=1)
    assert isinstance(make_tile(N, K, AnalogConfig()), AnalogTile)
    draws = {seed: make_tile(N, K, config, seed=seed).C.dw_up for seed in (1, 2)}
    assert not torch.equal(draws[1], draws[2])
    assert torch.equal(draws[1], make_tile(N, K, config, seed=1).C.dw_up)
    assert torch.equal(draws[2], make_tile(N, K, config, seed=torch.Generator().manual_seed(2)).C.dw_up)


@pytest.mark.parametrize("seed, error", [("1", TypeError), (1.5, TypeError), (True, TypeError),
                                         (2 ** 64, ValueError)])
def test_tile_refuses_a_bad_seed(seed, error):
    with pytest.raises(error, match="seed"):
        InMemoryTile(N, K, training_config("sgd"), seed=seed)


@pytest.mark.parametrize("shape", [(0, K), (N, 2.0), (True, K)])
def test_tile_refuses_bad_shapes(shape):
    with pytest.raises((ValueError, TypeError), match="features"):
        InMemoryTile(*shape, training_config("sgd"))


@pytest.mark.parametrize("weights, error", [(torch.full((N, K), float("nan")), ValueError),
                                            (torch.zeros(K, N), ValueError), ([[0.0] * K] * N, TypeError)])
def test_set_weights_refuses_bad_weights_before_any_change(weights, error):
    tile = InMemoryTile(N, K, training_config("ttv2"), seed=0)
    before = {k: v.clone() for k, v in tile.state_dict().items() if isinstance(v, torch.Tensor)}
    with pytest.raises(error, match="weights"):
        tile.set_weights(weights)
    assert all(torch.equal(v, tile.state_dict()[k]) for k, v in before.items())


# -- the rows stored by the backward ------------------------------------------------------------

def test_backward_after_zero_grad_keeps_only_its_own_rows():
    # a backward after the gradient was reset (zero_grad, set_to_none) drops the rows of earlier
    # backward passes; within one backward pass a tile used twice keeps both rows
    tile = InMemoryTile(K, K, training_config("sgd"), seed=0)
    for _ in range(50):
        tile.zero_grad()
        tile(tile(torch.randn(4, K))).sum().backward()
        assert len(tile._pending) == 2
    tile(torch.randn(4, K)).sum().backward()  # accumulation without zero_grad
    assert len(tile._pending) == 3


def test_frozen_tile_records_nothing():
    tile = InMemoryTile(N, K, training_config("sgd"), seed=0)
    tile.analog_ctx.requires_grad_(False)
    x = torch.randn(4, K, requires_grad=True)
    tile(x).sum().backward()
    assert x.grad is not None and not tile._pending


def test_input_gradients_alone_record_nothing():
    # gradients of the input only (saliency, adversarial examples): the tile gets no gradient, so no rows
    tile = InMemoryTile(N, K, training_config("sgd"), seed=0)
    x = torch.randn(4, K, requires_grad=True)
    for _ in range(3):
        (grad_x,) = torch.autograd.grad(tile(x).sum(), x)
        tile(x).sum().backward(inputs=[x])
    assert grad_x.shape == x.shape and not tile._pending and tile.analog_ctx.grad is None
    tile(x).sum().backward()
    assert len(tile._pending) == 1


@pytest.mark.parametrize("lr, error", [(NAN, ValueError), (-0.1, ValueError), (INF, ValueError),
                                       ("0.1", TypeError)])
def test_update_validates_lr_before_any_change(lr, error):
    tile = InMemoryTile(N, K, training_config("mixed-precision"), seed=0)
    tile(torch.randn(4, K)).sum().backward()
    before = {k: v.clone() for k, v in tile.state_dict().items() if isinstance(v, torch.Tensor)}
    with pytest.raises(error, match="lr"):
        tile.update(lr)
    assert all(torch.equal(v, tile.state_dict()[k]) for k, v in before.items())
    assert len(tile._pending) == 1


# -- whole-object copies keep training --------------------------------------------------------------

@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_copied_tile_keeps_training(how, tmp_path):
    tile = InMemoryTile(N, K, training_config("ttv2", device=P.SoftBounds(dw_min=0.01)), seed=0)
    tile.double()
    tile(torch.randn(2, K, dtype=torch.float64)).sum().backward()  # rows, like gradients, are not copied
    if how == "pickle":
        torch.save(tile, tmp_path / "tile.pt")
        clone = torch.load(tmp_path / "tile.pt", weights_only=False)
    else:
        clone = copy.deepcopy(tile)
    ctx = clone.analog_ctx
    assert type(ctx).__name__ == "AnalogContext" and ctx.analog_tile is clone and ctx.dtype == torch.float64
    assert not clone._pending and ctx.grad is None and len(tile._pending) == 1
    assert list(clone.parameters()) == [ctx]
    w = clone.get_weights()
    opt = AnalogSGD(clone, lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        clone(torch.randn(8, K, dtype=torch.float64)).sum().backward()
        opt.step()
    assert not torch.equal(clone.get_weights(), w)


# -- the forward checks its input before anything changes (as AnalogTile.forward) ----------------

def tile_state(module):
    """Every tensor of the state dict, extra state (the runtime generators) included, cloned."""
    out = {}
    for key, value in module.state_dict().items():
        items = value.items() if isinstance(value, dict) else [("", value)]
        for sub, v in items:
            out[f"{key}{sub}"] = v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
    return out


def same_state(a, b):
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("layer", ["linear", "conv2d"])
@pytest.mark.parametrize("bad", [float("inf"), -float("inf"), float("nan")])
@pytest.mark.parametrize("train", [False, True])
def test_layers_refuse_non_finite_input_before_any_change(algorithm, layer, bad, train):
    from aimc_lab.nn import AnalogConv2d, AnalogLinear

    config = training_config(algorithm, device=P.SoftBounds())
    if layer == "linear":
        model, x = AnalogLinear(K, N, config=config, seed=0), torch.rand(3, K)
    else:
        model, x = AnalogConv2d(2, 3, 3, config=config, seed=0), torch.rand(2, 2, 5, 5)
    model.train(train)
    x.view(-1)[4] = bad
    before = tile_state(model)
    with pytest.raises(ValueError, match="tile input x contains NaN or inf .*allowed: finite values"):
        model(x)
    assert same_state(before, tile_state(model))


@pytest.mark.parametrize("x, error, match", [
    ([[0.0] * K], TypeError, "must be a torch.Tensor"), (torch.zeros(2, K, dtype=torch.float64), TypeError, "dtype"),
    (torch.zeros(2, K, dtype=torch.int64), TypeError, "dtype"), (torch.zeros(2, K + 1), ValueError, "shape"),
    (torch.zeros(()), ValueError, "shape"), (torch.full((2, K), float("inf")), ValueError, "NaN or inf"),
])
def test_tile_forward_refuses_bad_input_before_any_change(x, error, match):
    tile = InMemoryTile(N, K, training_config("c-ttv2"), seed=0)
    before = tile_state(tile)
    with pytest.raises(error, match=match):
        tile(x)
    assert same_state(before, tile_state(tile))
    assert tile(torch.zeros(2, 3, K)).shape == (2, 3, N)  # leading dimensions stay allowed


# -- one class per algorithm: a seventh algorithm is one class and one registration ------------------

def test_a_new_algorithm_is_one_class_and_one_registration():
    from aimc_lab.nn import AnalogLinear
    from aimc_lab.train.inmemory import Algorithm, algorithm_names, register_algorithm, unregister_algorithm

    class SignSGD(Algorithm):
        """One pulse per device per update, against the sign of δᵀx (a toy rule); counts its updates."""

        name = "toy-sign-sgd"
        aliases = ("toy",)
        uses = frozenset({"transfer_lr"})
        defaults = {"transfer_lr": 0.5}

        def build(self, tile, generator):
            tile.register_buffer("sign_updates", torch.zeros((), dtype=torch.long))

        def reset(self, tile):
            tile.sign_updates.zero_()

        def update(self, tile, x, d, lr):
            tile.C.signed_counts_update(-torch.sign(d.t() @ x), generator=tile.generator)
            tile.sign_updates += 1

    register_algorithm(SignSGD)
    try:
        assert "toy-sign-sgd" in algorithm_names()
        config = training_config("toy", device=EXACT_STEP, forward=PERFECT, backward=PERFECT)
        assert config.training.algorithm == "toy-sign-sgd" and config.training.transfer_lr == 0.5
        assert AnalogConfig.from_dict(config.to_dict()) == config
        with pytest.raises(ValueError, match=r"fast_lr = 2.0 .*toy-sign-sgd"):
            training_config("toy", fast_lr=2.0)
        layer = AnalogLinear(K, N, bias=False, config=config, seed=0)
        tile = layer.tile
        assert isinstance(tile, InMemoryTile) and isinstance(tile.algorithm, SignSGD)
        w0 = tile.get_weights().clone()
        x = torch.rand(4, K)
        grad_y = torch.randn(4, N)
        layer(x).backward(grad_y)
        AnalogSGD(layer, lr=0.1).step()
        torch.testing.assert_close(tile.get_weights() - w0, -torch.sign(grad_y.t() @ x) * EXACT_STEP.dw_min)
        assert int(tile.sign_updates) == 1
        other = InMemoryTile(N, K, config, seed=1)
        other.load_state_dict(tile.state_dict())
        assert torch.equal(other.get_weights(), tile.get_weights()) and int(other.sign_updates) == 1
    finally:
        unregister_algorithm("toy-sign-sgd")
    assert "toy-sign-sgd" not in algorithm_names()
    with pytest.raises(ValueError, match="algorithm"):
        training_config("toy")


def test_tile_classes_come_from_the_registry_not_from_an_import():
    # tile.py and nn/container.py find InMemoryTile through aimc_lab._registry (keyed on the type of
    # config.training), so neither imports the training package (which imports them)
    import ast
    import inspect

    from aimc_lab import _registry, tile as tile_module
    from aimc_lab.nn import container

    assert _registry.tile_class(training_config("sgd").training) is InMemoryTile
    assert InMemoryTile in container.tile_types()
    for module in (tile_module, container):
        imported = [node.module or "" for node in ast.walk(ast.parse(inspect.getsource(module)))
                    if isinstance(node, ast.ImportFrom)]
        imported += [alias.name for node in ast.walk(ast.parse(inspect.getsource(module)))
                     if isinstance(node, ast.Import) for alias in node.names]
        assert not [name for name in imported if name.startswith("aimc_lab.train")], module.__name__
    with pytest.raises(TypeError, match="no tile class is registered"):
        _registry.tile_class(object())


# -- the published defaults (docs/physics.md §4), each against a hand-derived expectation -------------

IDEAL = P.Ideal(w_max=1.0, w_min=-1.0)


def test_tiki_taka_transfer_rate_is_transfer_lr_times_eta():
    # Ideal arrays: A += −η·δᵀx exactly, then per sample one column k of A is written to C with rate
    # transfer_lr·η: ΔC[:, k] = transfer_lr·η·A[:, k] (η = 0.5, transfer_lr = 0.3; 2 samples: columns 0, 1)
    config = training_config("tiki-taka", device=IDEAL, fast_device=IDEAL, forward=PERFECT, backward=PERFECT,
                             transfer_io=PERFECT, transfer_lr=0.3)
    assert config.training.scale_transfer_lr and config.training.transfer_per_sample
    tile = InMemoryTile(2, 3, config, seed=0)
    tile.set_weights(torch.zeros(2, 3))
    x = torch.tensor([[1.0, 0.5, -0.5], [0.2, -1.0, 0.4]])
    d = torch.tensor([[-0.2, 0.1], [0.3, -0.4]])
    _constant_gradient_steps(tile, x, d, lr=0.5, steps=1)
    a = -0.5 * d.t() @ x
    torch.testing.assert_close(tile.A.weights(), a)
    expected = torch.zeros(2, 3)
    expected[:, :2] = 0.3 * 0.5 * a[:, :2]
    torch.testing.assert_close(tile.get_weights(), expected)
    assert int(tile.transfer_column) == 2


def test_ttv2_defaults_one_pulse_per_transfer_buffer_reset_one_column_per_sample():
    p = training_config("ttv2", device=EXACT_STEP).training
    assert (p.fast_lr, p.scale_fast_lr, p.desired_bl, p.transfer_bl, p.forget_buffer, p.momentum) == \
        (1.0, False, 5, 1, True, 0.0)
    # absolute fast_lr: A gets −fast_lr·δᵀx whatever η; H += transfer_lr·η·A/dw_min per read; where
    # |H| >= 1 exactly one pulse goes to C and that entry of H is reset to 0
    config = training_config("ttv2", device=EXACT_STEP, fast_device=IDEAL, forward=PERFECT, backward=PERFECT,
                             transfer_io=PERFECT, fast_lr=0.01)
    tile = InMemoryTile(2, 4, config, seed=0)
    tile.set_weights(torch.zeros(2, 4))
    x = torch.tensor([[1.0, 0.5, -1.0, 0.0], [0.5, 1.0, 1.0, 0.0], [1.0, -1.0, 0.5, 0.0]])
    d = torch.tensor([[-1.0, 0.5], [-1.0, -0.5], [-1.0, 0.25]])
    _constant_gradient_steps(tile, x, d, lr=0.2, steps=1)
    a = -0.01 * d.t() @ x
    torch.testing.assert_close(tile.A.weights(), a)
    h = 0.2 * a[:, :3] / EXACT_STEP.dw_min  # 3 samples: columns 0, 1, 2
    pulses = torch.where(h.abs() >= 1, torch.sign(h), torch.zeros_like(h))
    torch.testing.assert_close(tile.get_weights()[:, :3], pulses * EXACT_STEP.dw_min)
    torch.testing.assert_close(tile.H[:, :3], torch.where(pulses != 0, torch.zeros_like(h), h))
    assert h.abs().max() > 1.5 and int(tile.transfer_column) == 3  # capped at one pulse; 3 columns read


def test_auto_scale_normalises_fast_updates_to_the_running_gradient_size():
    # c-ttv2 default: A's rate = fast_lr·desired_bl·dw_min_A/(x̄·d̄), x̄, d̄ running means (momentum 0.99,
    # the first update sets them) of the rows' max |x|, max |δ|; scaling x and δ leaves A's update unchanged
    p = training_config("c-ttv2").training
    assert p.auto_scale and p.fast_lr == 0.1 and p.desired_bl == 5 and p.in_chop_prob == 0.1
    fast = P.Ideal(dw_min=0.002, w_max=1.0, w_min=-1.0)
    updates = []
    for scale in (1.0, 10.0):
        config = training_config("c-ttv2", device=EXACT_STEP, fast_device=fast, forward=PERFECT,
                                 backward=PERFECT, transfer_io=PERFECT, in_chop_prob=0.0)
        tile = InMemoryTile(2, 3, config, seed=0)
        tile.set_weights(torch.zeros(2, 3))
        x = torch.tensor([[1.0, -0.5, 0.25], [0.5, 0.5, -0.2]]) * scale
        d = torch.tensor([[0.2, -0.1], [-0.4, 0.1]]) * scale
        _constant_gradient_steps(tile, x, d, lr=0.1, steps=1)
        x_bar, d_bar = 0.75 * scale, 0.3 * scale
        torch.testing.assert_close(tile.grad_scale, torch.tensor([x_bar, d_bar, 1.0]))
        rate = 0.1 * 5 * 0.002 / (x_bar * d_bar)
        torch.testing.assert_close(tile.A.weights(), -rate * d.t() @ x)
        updates.append(tile.A.weights())
        x2, d2 = x * 3, d * 2  # second update: x̄ ← 0.99·x̄ + 0.01·(3·x̄)
        _constant_gradient_steps(tile, x2, d2, lr=0.1, steps=1)
        torch.testing.assert_close(tile.grad_scale[:2], torch.tensor([1.02 * x_bar, 1.01 * d_bar]))
    torch.testing.assert_close(updates[0], updates[1])


def test_in_memory_reads_are_split_into_physical_tiles_like_analog_tiles():
    """max_input_size / max_output_size split the forward and the transposed read into slices with their
    own converters (what analog_summary's grid reports): the tile's forward equals analog_mvm with that
    in_size, and differs from the unsplit read when the DAC range is set per slice."""
    from aimc_lab.config import replace_path
    from aimc_lab.kernels.analog_mvm import analog_mvm
    from aimc_lab.train import training_config

    config = replace_path(training_config("sgd"), "mapping.max_input_size", 4)
    config = replace_path(config, "mapping.max_output_size", 3)
    config = replace_path(config, "forward.out_noise", 0.0)
    config = replace_path(config, "backward", replace_path(config.forward, "inp_res", 1 / 16))
    from aimc_lab.nn import AnalogLinear
    layer = AnalogLinear(8, 6, bias=False, config=config)
    tile = layer.tile
    x = torch.zeros(5, 8)
    x[:, :4] = torch.rand(5, 4, generator=torch.Generator().manual_seed(0)) * 0.05  # slice 0: small inputs
    x[:, 4:] = torch.rand(5, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1
    w = tile.C.read()
    with torch.no_grad():
        y = tile.forward_mvm(x, w)
    torch.testing.assert_close(y, analog_mvm(x, w, config.forward, in_size=4))
    unsplit = analog_mvm(x, w, config.forward)  # one DAC range for all 8 inputs: slice 0 rounds to 0
    assert not torch.allclose(y, unsplit)
    d = torch.rand(5, 6, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(tile.backward_mvm(d, w), analog_mvm(d, w.t().contiguous(), config.backward,
                                                                        in_size=3))


def test_small_reads_take_the_compiled_mvm_with_the_fast_paths_draws(monkeypatch):
    """A tile read of one slice and a small batch goes straight to the compiled small MVM (forward, and
    the backward's transposed read without a transposed copy): the same output as the fast path's
    analog_mvm up to ADC rounding ties, the same draws (the generators end alike), and the same input
    gradient through autograd; a backend other than 'torch' and AIMC_LAB_NUMBA=0 skip it."""
    from aimc_lab.kernels import backend
    from aimc_lab.kernels.analog_mvm import compiled as compiled_mvm

    if not compiled_mvm.supports(torch.zeros(1, 1), IOParameters(), 1, False, False):
        pytest.skip("numba is not installed")
    calls = []
    inner = compiled_mvm.mvm_forward
    monkeypatch.setattr(compiled_mvm, "mvm_forward", lambda *a, **k: calls.append(k) or inner(*a, **k))
    config = training_config("sgd", device=P.reram_sb())
    grads, outs, states = [], [], []
    for flag in ("1", "0"):
        monkeypatch.setenv("AIMC_LAB_NUMBA", flag)
        tile = InMemoryTile(N, K, config, seed=3)
        x = (torch.rand(5, K, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_()
        y = tile(x)
        y.backward(torch.randn(5, N, generator=torch.Generator().manual_seed(1)) * 0.1)
        outs.append(y.detach())
        grads.append(x.grad)
        states.append(tile.generator.get_state())
    assert [c.get("transposed", False) for c in calls] == [False, True]  # only the compiled run
    step = config.forward.out_step  # one ADC step (abs-max: times max|x| <= 1)
    assert float(((outs[0] - outs[1]).abs() > 0).float().mean()) <= 0.01
    assert float((outs[0] - outs[1]).abs().max()) <= step * 1.0001
    assert float(((grads[0] - grads[1]).abs() > 0).float().mean()) <= 0.01
    assert torch.equal(states[0], states[1])
    calls.clear()
    monkeypatch.setenv("AIMC_LAB_NUMBA", "1")
    with backend.use_backend("reference"):
        InMemoryTile(N, K, config, seed=3)(torch.rand(5, K))
    assert calls == []
