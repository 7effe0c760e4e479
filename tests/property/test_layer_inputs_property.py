"""Analog layers on any input: a correct finite result or a clear error, never a corrupted layer.

Each example builds a small AnalogLinear / AnalogConv1d / AnalogConv2d / AnalogRNN / AnalogLSTM / AnalogGRU
(default config, and the standard HWA preset whose input ranges initialize from the first training
batches) in training or eval mode and feeds it one input drawn from: ordinary values over many orders of
magnitude, a NaN / ±inf entry at a random place, huge finite values up to 3e38, an empty batch, a
wrong dtype (float64, float16, int64), a wrong shape, a non-contiguous view, or a plain list. Ordinary,
tiny and non-contiguous inputs must give a finite output of the right shape; an empty batch an empty
output; huge ones a finite output or ValueError; everything else TypeError or ValueError naming the
problem, with every parameter and buffer (weights, input ranges, init-batch counters) unchanged.
"""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aimc_lab import presets
from aimc_lab.config import AnalogConfig
from aimc_lab.nn import AnalogConv1d, AnalogConv2d, AnalogGRU, AnalogLinear, AnalogLSTM, AnalogRNN

SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# layer -> (constructor, input shape for a batch of B, output shape for a batch of B, shape with a wrong size)
LAYERS = {
    "linear": (lambda cfg: AnalogLinear(6, 3, config=cfg), lambda B: (B, 6), lambda B: (B, 3), (2, 7)),
    "conv1d": (lambda cfg: AnalogConv1d(2, 3, 3, padding=1, config=cfg), lambda B: (B, 2, 5), lambda B: (B, 3, 5),
               (2, 3, 5)),
    "conv2d": (lambda cfg: AnalogConv2d(2, 3, 3, padding=1, config=cfg), lambda B: (B, 2, 4, 4),
               lambda B: (B, 3, 4, 4), (2, 3, 4, 4)),
    "rnn": (lambda cfg: AnalogRNN(3, 4, config=cfg), lambda B: (3, B, 3), lambda B: (3, B, 4), (3, 2, 4)),
    "lstm": (lambda cfg: AnalogLSTM(3, 4, num_layers=2, config=cfg), lambda B: (3, B, 3), lambda B: (3, B, 4),
             (3, 2, 2)),
    "gru": (lambda cfg: AnalogGRU(3, 4, config=cfg), lambda B: (3, B, 3), lambda B: (3, B, 4), (3, 2, 5)),
}
CONFIGS = {"default": AnalogConfig, "standard_hwa": presets.standard_hwa}
ACCEPTED = ("normal", "tiny", "non_contiguous", "empty")
REJECTED = {"nan": ValueError, "inf": ValueError, "-inf": ValueError, "float64": TypeError, "float16": TypeError,
            "int64": TypeError, "wrong_shape": ValueError, "list": TypeError}


def output(result):
    return result[0] if isinstance(result, tuple) else result


def snapshot(layer):
    return {k: v.clone() for k, v in layer.state_dict().items()}


def strided(shape, generator):
    """A non-contiguous tensor of ``shape``: every other entry of a wider one."""
    x = torch.randn(*shape[:-1], 2 * shape[-1], generator=generator)[..., ::2]
    assert not x.is_contiguous()
    return x


def make_input(kind, name, B, scale, seed):
    _, in_shape, _, wrong = LAYERS[name]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(in_shape(B), generator=g)
    if kind == "normal":
        x = x * min(scale, 1e3)
    elif kind in ("nan", "inf", "-inf"):
        flat = x.view(-1)
        flat[int(torch.randint(flat.numel(), (1,), generator=g))] = float(kind)
    elif kind == "huge":
        x = x / x.abs().max() * scale
    elif kind == "tiny":
        x = x * 1e-30
    elif kind == "empty":
        shape = list(in_shape(B))
        shape[1 if name in ("rnn", "lstm", "gru") else 0] = 0
        x = torch.zeros(shape)
    elif kind in ("float64", "float16"):
        x = x.to(getattr(torch, kind))
    elif kind == "int64":
        x = x.round().long()
    elif kind == "wrong_shape":
        x = torch.randn(wrong, generator=g)
    elif kind == "non_contiguous":
        x = strided(in_shape(B), g)
    elif kind == "list":
        x = x.tolist()
    return x


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("name", sorted(LAYERS))
@SETTINGS
@given(kind=st.sampled_from(ACCEPTED + ("huge",) + tuple(REJECTED)), B=st.integers(1, 4),
       scale=st.sampled_from([1e-3, 1.0, 1e3, 1e20, 1e36, 3e38]), train=st.booleans(), seed=st.integers(0, 2 ** 31))
def test_any_input_gives_a_finite_result_or_a_clear_error(name, config, kind, B, scale, train, seed):
    torch.manual_seed(seed)
    build, _, out_shape, _ = LAYERS[name]
    layer = build(CONFIGS[config]()).train(train)
    x = make_input(kind, name, B, scale, seed)
    before = snapshot(layer)
    if kind in REJECTED:
        with pytest.raises(REJECTED[kind]) as err:
            layer(x)
        assert str(err.value)  # a message, not a bare exception
        after = snapshot(layer)
        for key, value in before.items():
            assert torch.equal(after[key], value), key
        return
    try:
        y = output(layer(x))
    except ValueError as err:
        assert kind == "huge" and "overflow" in str(err)
        after = snapshot(layer)
        for key, value in before.items():
            assert torch.equal(after[key], value), key
        return
    assert y.shape == out_shape(0 if kind == "empty" else B)
    assert torch.isfinite(y).all()
    for key, value in layer.state_dict().items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), key


@pytest.mark.parametrize("name", sorted(LAYERS))
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 31), B=st.integers(1, 4), train=st.booleans())
def test_same_seed_same_output_also_for_non_contiguous_inputs(name, seed, B, train):
    build, in_shape, _, _ = LAYERS[name]
    x_strided = strided(in_shape(B), torch.Generator().manual_seed(seed))
    x = x_strided.contiguous()
    outputs = []
    for inp in (x, x, x_strided):
        torch.manual_seed(seed)
        layer = build(presets.standard_hwa()).train(train)
        outputs.append(output(layer(inp)))
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])
