"""Analog recurrent cells and layers equal torch's with perfect IO (forward, states, gradients)."""

import pytest
import torch
from torch import nn

from aimc_lab.config import AnalogConfig, IOParameters, MappingParameters
from aimc_lab.nn import (AnalogGRU, AnalogGRUCell, AnalogLSTM, AnalogLSTMCell, AnalogRNN,
                         AnalogRNNCell)

# tiny tiles so that every matrix spans several tiles along K and N
PERFECT = AnalogConfig(forward=IOParameters(is_perfect=True),
                       mapping=MappingParameters(max_input_size=4, max_output_size=8))

CELLS = [(nn.RNNCell, AnalogRNNCell, {}), (nn.RNNCell, AnalogRNNCell, {"nonlinearity": "relu"}),
         (nn.LSTMCell, AnalogLSTMCell, {}), (nn.GRUCell, AnalogGRUCell, {})]
LAYERS = [(nn.RNN, AnalogRNN, {}), (nn.RNN, AnalogRNN, {"nonlinearity": "relu"}),
          (nn.LSTM, AnalogLSTM, {}), (nn.GRU, AnalogGRU, {})]


def _cell_pair(torch_type, analog_type, kwargs, bias=True):
    ref = torch_type(5, 7, bias=bias, **kwargs)
    cell = analog_type(5, 7, bias=bias, config=PERFECT, **kwargs)
    p = dict(ref.named_parameters())
    cell.set_weights(p["weight_ih"].detach(), p["weight_hh"].detach(),
                     p["bias_ih"].detach() if bias else None, p["bias_hh"].detach() if bias else None)
    return ref, cell


@pytest.mark.parametrize("torch_type, analog_type, kwargs", CELLS)
@pytest.mark.parametrize("bias", [True, False])
def test_cells_equal_torch(torch_type, analog_type, kwargs, bias):
    torch.manual_seed(0)
    ref, cell = _cell_pair(torch_type, analog_type, kwargs, bias)
    x = torch.randn(3, 5)
    is_lstm = torch_type is nn.LSTMCell
    hx = (torch.randn(3, 7), torch.randn(3, 7)) if is_lstm else torch.randn(3, 7)
    for args in ((x,), (x, hx)):
        torch.testing.assert_close(cell(*args), ref(*args), atol=1e-5, rtol=1e-5)
    # unbatched
    hx1 = (hx[0][0], hx[1][0]) if is_lstm else hx[0]
    torch.testing.assert_close(cell(x[0], hx1), ref(x[0], hx1), atol=1e-5, rtol=1e-5)
    got = cell.get_weights()
    for mine, theirs in zip(got, (ref.weight_ih, ref.weight_hh, ref.bias_ih, ref.bias_hh)):
        if theirs is None:
            assert mine is None
        else:
            torch.testing.assert_close(mine, theirs.detach())


def _layer_pair(torch_type, analog_type, kwargs, **layer_kwargs):
    ref = torch_type(5, 7, **kwargs, **layer_kwargs)
    layer = analog_type(5, 7, config=PERFECT, **kwargs, **layer_kwargs)
    layer.set_weights({k: v.detach() for k, v in ref.named_parameters()})
    return ref, layer


def _grads_equal(ref, layer):
    for k, cell in enumerate(layer.cells):
        for part in ("ih", "hh"):
            tile = getattr(cell, f"tile_{part}")
            expected = getattr(ref, f"weight_{part}_l{k}").grad * tile.out_scale.unsqueeze(1)
            torch.testing.assert_close(tile.weight.grad, expected, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(getattr(cell, f"bias_{part}").grad, getattr(ref, f"bias_{part}_l{k}").grad,
                                       atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("torch_type, analog_type, kwargs", LAYERS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_layers_equal_torch_with_gradients(torch_type, analog_type, kwargs, batch_first):
    torch.manual_seed(1)
    ref, layer = _layer_pair(torch_type, analog_type, kwargs, num_layers=2, batch_first=batch_first)
    T, B = 6, 3
    x = torch.randn(B, T, 5) if batch_first else torch.randn(T, B, 5)
    is_lstm = torch_type is nn.LSTM
    h0 = (torch.randn(2, B, 7), torch.randn(2, B, 7)) if is_lstm else torch.randn(2, B, 7)
    x_ref, x_an = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_ref, state_ref = ref(x_ref, h0)
    out_an, state_an = layer(x_an, h0)
    assert out_an.shape == out_ref.shape
    torch.testing.assert_close(out_an, out_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state_an, state_ref, atol=1e-5, rtol=1e-5)
    h_ref = state_ref[0] if is_lstm else state_ref
    h_an = state_an[0] if is_lstm else state_an
    (out_ref.square().sum() + h_ref.sum()).backward()
    (out_an.square().sum() + h_an.sum()).backward()
    torch.testing.assert_close(x_an.grad, x_ref.grad, atol=1e-4, rtol=1e-4)
    _grads_equal(ref, layer)


@pytest.mark.parametrize("torch_type, analog_type, kwargs", LAYERS)
def test_layers_default_state_unbatched_and_no_bias(torch_type, analog_type, kwargs):
    torch.manual_seed(2)
    ref, layer = _layer_pair(torch_type, analog_type, kwargs, bias=False)
    x = torch.randn(4, 5)  # unbatched [T, I]
    out_ref, state_ref = ref(x)
    out_an, state_an = layer(x)
    assert out_an.shape == (4, 7)
    torch.testing.assert_close(out_an, out_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state_an, state_ref, atol=1e-5, rtol=1e-5)
    assert set(layer.get_weights()) == {k for k, _ in ref.named_parameters()}


def test_lstm_on_512_tiles_odd_sizes():
    torch.manual_seed(3)
    config = AnalogConfig(forward=IOParameters(is_perfect=True))
    ref = nn.LSTM(600, 130)  # W_ih: 520 x 600 -> 2 x 2 tiles
    layer = AnalogLSTM(600, 130, config=config)
    layer.set_weights({k: v.detach() for k, v in ref.named_parameters()})
    assert layer.cells[0].tile_ih.physical_grid == (2, 2)
    x = torch.randn(3, 2, 600)
    out_ref, (h_ref, c_ref) = ref(x)
    out_an, (h_an, c_an) = layer(x)
    torch.testing.assert_close(out_an, out_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(c_an, c_ref, atol=1e-4, rtol=1e-4)


def test_noisy_default_config_runs_and_dropout():
    layer = AnalogGRU(4, 6, num_layers=2, dropout=0.5)
    out, h = layer(torch.randn(5, 2, 4))
    assert out.shape == (5, 2, 6) and h.shape == (2, 2, 6) and torch.isfinite(out).all()
    layer.eval()
    assert layer.config is layer.cells[1].config


@pytest.mark.parametrize("analog_type, kwargs, error, match", [
    (AnalogLSTM, dict(bidirectional=True), NotImplementedError, "bidirectional"),
    (AnalogGRU, dict(bidirectional=True), NotImplementedError, "bidirectional"),
    (AnalogLSTM, dict(proj_size=3), NotImplementedError, "proj_size"),
    (AnalogRNN, dict(nonlinearity="sigmoid"), ValueError, "nonlinearity"),
    (AnalogRNN, dict(num_layers=0), ValueError, "num_layers"),
    (AnalogGRU, dict(dropout=1.5), ValueError, "dropout"),
    (AnalogLSTM, dict(hidden_size=0), ValueError, "hidden_size"),
])
def test_bad_constructor_arguments(analog_type, kwargs, error, match):
    args = dict(input_size=3, hidden_size=4)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        analog_type(**args)


def test_bad_inputs_and_weights():
    lstm = AnalogLSTM(3, 4, num_layers=2, batch_first=True)
    with pytest.raises(ValueError, match=r"\[B, T, I\] with I = 3"):
        lstm(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="h0 must have shape"):
        lstm(torch.randn(2, 5, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)))
    with pytest.raises(ValueError, match="empty"):
        lstm(torch.randn(2, 0, 3))
    weights = lstm.get_weights()
    weights["weight_hh_l1"] = torch.full((16, 4), float("nan"))
    with pytest.raises(ValueError, match="weight_hh contains NaN"):
        lstm.set_weights(weights)
    del weights["bias_ih_l0"]
    with pytest.raises(ValueError, match="missing keys"):
        lstm.set_weights(weights)
    cell = AnalogGRUCell(3, 4)
    with pytest.raises(ValueError, match=r"\[B, 3\]"):
        cell(torch.randn(2, 2))
    with pytest.raises(ValueError, match="hx must have shape"):
        cell(torch.randn(2, 3), torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"weight_ih must have shape \[12, 3\]"):
        cell.set_weights(torch.randn(12, 4), torch.randn(12, 4))


def test_bad_set_weights_leaves_layer_unchanged():
    gru = AnalogGRU(3, 4, num_layers=2)
    before = gru.get_weights()
    bad = {k: torch.randn_like(v) for k, v in before.items()}
    bad["bias_hh_l1"] = torch.full((12,), float("inf"))
    with pytest.raises(ValueError, match="bias_hh contains NaN or inf"):
        gru.set_weights(bad)
    for k, v in gru.get_weights().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


# -- a non-finite input or initial state is refused at the start, before any tile changes --------

def full_state(module):
    """Every tensor of the state dict, the tiles' extra state (runtime generators) included, cloned."""
    out = {}
    for key, value in module.state_dict().items():
        for sub, v in (value.items() if isinstance(value, dict) else [("", value)]):
            out[f"{key}{sub}"] = v.clone() if isinstance(v, torch.Tensor) else v
    return out


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k], k


def recurrent_configs():
    from aimc_lab.train import training_config

    return {"inference": AnalogConfig(), "sgd": training_config("sgd"), "ttv2": training_config("ttv2")}


@pytest.mark.parametrize("config_name", ["inference", "sgd", "ttv2"])
@pytest.mark.parametrize("analog_type, where", [(t, w) for t in (AnalogRNN, AnalogLSTM, AnalogGRU)
                                                 for w in ("input", "h0", "c0") if w != "c0" or t is AnalogLSTM])
@pytest.mark.parametrize("bad", [float("inf"), -float("inf"), float("nan")])
def test_layers_refuse_non_finite_sequences_and_states_before_any_change(config_name, analog_type, where, bad):
    torch.manual_seed(0)
    layer = analog_type(3, 4, num_layers=2, config=recurrent_configs()[config_name])
    x, h0, c0 = torch.randn(5, 2, 3), torch.zeros(2, 2, 4), torch.zeros(2, 2, 4)
    {"input": x, "h0": h0, "c0": c0}[where][-1, 1, 2] = bad  # the last time step / the second layer
    hx = (h0, c0) if analog_type is AnalogLSTM else h0
    name = "hx" if where == "h0" and analog_type is not AnalogLSTM else where
    for mode in (False, True):
        layer.train(mode)
        before = full_state(layer)
        with pytest.raises(ValueError, match=rf"{analog_type.__name__}: {name} contains NaN or inf \(1 of "
                                             r"\d+ entries\); allowed: finite values"):
            layer(x, hx)
        assert_same_state(before, full_state(layer))


@pytest.mark.parametrize("analog_type", [AnalogRNN, AnalogLSTM, AnalogGRU])
def test_layers_refuse_a_state_of_another_dtype_before_any_change(analog_type):
    layer = analog_type(3, 4, config=recurrent_configs()["sgd"])
    h0 = torch.zeros(1, 2, 4, dtype=torch.float64)
    before = full_state(layer)
    with pytest.raises(TypeError, match=rf"{analog_type.__name__}: h.* has dtype torch.float64"):
        layer(torch.randn(5, 2, 3), (h0, h0.float()) if analog_type is AnalogLSTM else h0)
    assert_same_state(before, full_state(layer))


@pytest.mark.parametrize("config_name", ["inference", "sgd"])
@pytest.mark.parametrize("cell_type", [AnalogRNNCell, AnalogLSTMCell, AnalogGRUCell])
def test_cells_refuse_a_non_finite_state_before_any_change(config_name, cell_type):
    torch.manual_seed(0)
    cell = cell_type(3, 4, config=recurrent_configs()[config_name])
    h = torch.zeros(2, 4)
    h[1, 3] = float("inf")
    hx = (torch.zeros(2, 4), h) if cell_type is AnalogLSTMCell else h
    name = "c" if cell_type is AnalogLSTMCell else "hx"
    before = full_state(cell)
    with pytest.raises(ValueError, match=rf"{cell_type.__name__}: {name} contains NaN or inf"):
        cell(torch.randn(2, 3), hx)
    assert_same_state(before, full_state(cell))
