"""AnalogSGD: validation before any state changes, the pending rows' lifetime, plain optimizers refused."""

import math

import pytest
import torch
from torch import nn

from aimc_lab.devices import pulsed as P
from aimc_lab.nn import AnalogLinear
from aimc_lab.train import ALGORITHMS, AnalogSGD, training_config

K, N = 6, 3


class Net(nn.Module):
    """digital -> in-memory -> in-memory, so a step touches a digital layer and two tiles."""

    def __init__(self, algorithm):
        super().__init__()
        config = training_config(algorithm, device=P.SoftBounds(dw_min=0.01), transfer_columns=2)
        self.digital = nn.Linear(K, K)
        self.first = AnalogLinear(K, K, config=config, seed=1)
        self.second = AnalogLinear(K, N, config=config, seed=2)

    def forward(self, x):
        return self.second(torch.tanh(self.first(torch.tanh(self.digital(x)))))


def backward(model, rows=8, seed=0):
    x = torch.randn(rows, K, generator=torch.Generator().manual_seed(seed))
    model(x).pow(2).mean().backward()


def snapshot(model):
    """Every tensor of the model's state (parameters, device arrays, buffers, generator states)."""
    out = {}
    for key, value in model.state_dict().items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v.clone() for k, v in value.items()})
        else:
            out[key] = value.clone()
    return out


def assert_unchanged(before, model):
    after = snapshot(model)
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), f"{key} changed"


# -- hyper-parameters ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lr", "weight_decay"])
@pytest.mark.parametrize("value, error", [(math.nan, ValueError), (math.inf, ValueError), (-0.1, ValueError),
                                          ("0.1", TypeError), (True, TypeError), (None, TypeError)])
def test_constructor_rejects_bad_hyper_parameters(name, value, error):
    model = Net("sgd")
    with pytest.raises(error, match=rf"AnalogSGD\.{name} = {value!r}.*allowed: a finite number >= 0"):
        AnalogSGD(model, **{name: value})


def test_add_param_group_validates_before_adding():
    model = Net("sgd")
    opt = AnalogSGD(model.digital.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"AnalogSGD\.lr = nan"):
        opt.add_param_group({"params": list(model.first.parameters()), "lr": math.nan})
    with pytest.raises(TypeError, match=r"AnalogSGD\.weight_decay = '1'"):
        opt.add_param_group({"params": list(model.first.parameters()), "weight_decay": "1"})
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": list(model.first.parameters()), "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["weight_decay"] == 0.0


@pytest.mark.parametrize("name, value", [("lr", math.nan), ("lr", -1.0), ("weight_decay", "0.1"),
                                         ("weight_decay", math.inf)])
def test_step_rejects_a_changed_group_before_any_change(name, value):
    model = Net("mixed-precision")
    opt = AnalogSGD(model, lr=0.1)
    backward(model)
    opt.param_groups[0][name] = value  # as a scheduler or a user might
    before = snapshot(model)
    with pytest.raises((ValueError, TypeError), match=rf"AnalogSGD\.{name}"):
        opt.step()
    assert_unchanged(before, model)


# -- non-finite rows and gradients: the whole step is refused ----------------------------------

@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("which", ["x", "d"])
def test_non_finite_rows_reject_the_whole_step(algorithm, which):
    model = Net(algorithm)
    opt = AnalogSGD(model, lr=0.1)
    for _ in range(2):  # some state in the arrays, accumulators and choppers first
        opt.zero_grad()
        backward(model)
        opt.step()
    opt.zero_grad()
    backward(model)
    tile = model.second.tile  # the last tile AnalogSGD visits: the first one must not have moved either
    x, d = tile._pending[0]
    bad = (x.clone(), d) if which == "x" else (x, d.clone())
    bad[0 if which == "x" else 1][1, 0] = math.nan if which == "d" else math.inf
    tile._pending[0] = bad
    before = snapshot(model)
    with pytest.raises(ValueError, match=rf"NaN or inf.*{which}"):
        opt.step()
    assert_unchanged(before, model)
    assert model.digital.weight.grad is not None  # the step was refused, not half done
    opt.zero_grad()  # discards the bad rows with the gradients
    backward(model)
    opt.step()
    assert all(torch.isfinite(v).all() for v in snapshot(model).values() if v.is_floating_point())


def test_non_finite_digital_gradient_rejects_the_step():
    model = Net("ttv2")
    opt = AnalogSGD(model, lr=0.1)
    backward(model)
    model.digital.bias.grad[0] = math.nan
    before = snapshot(model)
    with pytest.raises(ValueError, match="gradient.*NaN or inf"):
        opt.step()
    assert_unchanged(before, model)


def test_overflowing_digital_gradient_names_the_likely_cause():
    model = AnalogLinear(K, N, config=training_config("sgd", device=P.SoftBounds(dw_min=0.01)), seed=0)
    model.set_weights(torch.full((N, K), 0.5), torch.zeros(N))
    opt = AnalogSGD(model, lr=0.1)
    x = torch.full((4, K), 2e38)  # finite float32 inputs, but y ≈ 3·2e38 overflows: the bias gradient is inf
    model(x).pow(2).mean().backward()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"gradient.*NaN or inf.*overflow.*inputs or the loss.*too large"):
        opt.step()
    assert_unchanged(before, model)


def test_mixed_precision_overflow_is_refused():
    model = Net("mixed-precision")
    opt = AnalogSGD(model, lr=1e37)  # a float32, but the float32 accumulator cannot hold lr·δᵀx
    backward(model)
    x, d = model.second.tile._pending[0]
    model.second.tile._pending[0] = (x, d * 1e3)
    before = snapshot(model)
    with pytest.raises(ValueError, match="overflow"):
        opt.step()
    assert_unchanged(before, model)


def test_lr_beyond_the_parameters_dtype_is_refused():
    model = Net("sgd")
    opt = AnalogSGD(model, lr=1e39)  # a finite double, but no float32
    backward(model)
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"AnalogSGD\.lr = 1e\+39.*float32"):
        opt.step()
    assert_unchanged(before, model)


# -- the rows stored by the backward live as long as the gradient --------------------------------

def test_zero_grad_discards_the_rows():
    model = Net("sgd")
    opt = AnalogSGD(model, lr=0.1)
    backward(model)
    backward(model)  # gradient accumulation: both backward passes are kept
    assert len(model.first.tile._pending) == 2
    opt.zero_grad()
    assert not model.first.tile._pending and not model.second.tile._pending


def test_plain_torch_optimizer_is_refused_at_the_first_step():
    model = Net("sgd")
    for opt in (torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.Adam(model.parameters())):
        backward(model)
        before = snapshot(model)
        with pytest.raises(TypeError, match=rf"{type(opt).__name__}.*in-memory.*AnalogSGD"):
            opt.step()
        assert_unchanged(before, model)
    # a model without in-memory tiles is untouched by the check
    digital = nn.Linear(2, 2)
    opt = torch.optim.SGD(digital.parameters(), lr=0.1)
    digital(torch.ones(1, 2)).sum().backward()
    opt.step()
