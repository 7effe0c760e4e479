"""Analog recurrent cells and layers: RNN, LSTM and GRU with their weight matrices on analog tiles.

Every cell holds **two tiles**, as torch holds two matrices: ``tile_ih`` [G·H, I] for the input and
``tile_hh`` [G·H, H] for the hidden state (G = 1, 4, 3 gates for RNN, LSTM, GRU; gate order as in
torch). Two tiles because the GRU needs W_hn·h apart from W_in·x, and because the layers then run
the input MVM of all time steps as one batch (M = T·B rows) before the recurrence. Biases
(``bias_ih``, ``bias_hh``) are digital. ``set_weights``/``get_weights`` use torch's names and
shapes: the cells take/return (weight_ih, weight_hh, bias_ih, bias_hh), the layers a dict keyed
like ``nn.LSTM.named_parameters()`` (``weight_ih_l0``, ...).

The layers follow ``nn.RNN``/``nn.LSTM``/``nn.GRU``: inputs [T, B, I] ([B, T, I] with
``batch_first``) or unbatched [T, I], outputs and final states with torch's shapes. The whole input
sequence and the initial states are checked (shape, dtype, NaN/inf) before any tile runs, so a rejected
call changes nothing. Not supported:
``bidirectional=True`` and ``proj_size > 0`` (``NotImplementedError``).
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aimc_lab.config import AnalogConfig
from aimc_lab.nn._checks import check_finite, check_input, check_state
from aimc_lab.tile import make_tile

__all__ = ["AnalogRNNCell", "AnalogLSTMCell", "AnalogGRUCell", "AnalogRNN", "AnalogLSTM", "AnalogGRU"]

State = Tuple[Tensor, ...]  # (h,) or (h, c), each [B, H]

# ---------------------------------------------------------------------------------------------
# cell helpers (shared by the three cells; the cells stay thin)
# ---------------------------------------------------------------------------------------------


def _check_size(layer: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{layer}: {name} = {value!r} is invalid; allowed: an integer >= 1")


def _build_cell(cell: nn.Module, gates: int, input_size: int, hidden_size: int, bias: bool,
                config: Optional[AnalogConfig], tile_kwargs: dict) -> None:
    name = type(cell).__name__
    _check_size(name, "input_size", input_size)
    _check_size(name, "hidden_size", hidden_size)
    cell.input_size, cell.hidden_size, cell.gates = input_size, hidden_size, gates
    cell.config = AnalogConfig() if config is None else config
    cell.tile_ih = make_tile(gates * hidden_size, input_size, cell.config, **tile_kwargs)
    cell.tile_hh = make_tile(gates * hidden_size, hidden_size, cell.config, **tile_kwargs)
    cell.bias_ih = nn.Parameter(torch.zeros(gates * hidden_size)) if bias else None
    cell.bias_hh = nn.Parameter(torch.zeros(gates * hidden_size)) if bias else None


@torch.no_grad()
def _reset_cell(cell: nn.Module) -> None:
    """torch's initialization U(-1/sqrt(H), 1/sqrt(H)) for every matrix and bias."""
    bound = 1.0 / math.sqrt(cell.hidden_size)
    GH = cell.gates * cell.hidden_size
    w_ih = torch.empty(GH, cell.input_size).uniform_(-bound, bound)
    w_hh = torch.empty(GH, cell.hidden_size).uniform_(-bound, bound)
    has_bias = cell.bias_ih is not None
    b_ih = torch.empty(GH).uniform_(-bound, bound) if has_bias else None
    b_hh = torch.empty(GH).uniform_(-bound, bound) if has_bias else None
    _set_cell_weights(cell, w_ih, w_hh, b_ih, b_hh)


def _check_cell_weights(cell: nn.Module, weight_ih: Tensor, weight_hh: Tensor,
                        bias_ih: Optional[Tensor], bias_hh: Optional[Tensor]) -> None:
    name = type(cell).__name__
    GH = cell.gates * cell.hidden_size
    for arg, value, shape in (("weight_ih", weight_ih, (GH, cell.input_size)),
                              ("weight_hh", weight_hh, (GH, cell.hidden_size)),
                              ("bias_ih", bias_ih, (GH,)), ("bias_hh", bias_hh, (GH,))):
        if value is None:
            continue
        if not isinstance(value, Tensor) or tuple(value.shape) != shape:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"{name}.set_weights: {arg} must have shape {list(shape)}, got {got}")
        if not torch.isfinite(value).all():
            raise ValueError(f"{name}.set_weights: {arg} contains NaN or inf")
    if (bias_ih is not None or bias_hh is not None) and cell.bias_ih is None:
        raise ValueError(f"{name}.set_weights: this cell has no bias (bias=False) but a bias was given")


def _set_cell_weights(cell: nn.Module, weight_ih: Tensor, weight_hh: Tensor,
                      bias_ih: Optional[Tensor], bias_hh: Optional[Tensor]) -> None:
    """Check everything first, so that a bad argument leaves the cell unchanged."""
    _check_cell_weights(cell, weight_ih, weight_hh, bias_ih, bias_hh)
    cell.tile_ih.set_weights(weight_ih)
    cell.tile_hh.set_weights(weight_hh)
    with torch.no_grad():
        if bias_ih is not None:
            cell.bias_ih.copy_(bias_ih)
        if bias_hh is not None:
            cell.bias_hh.copy_(bias_hh)


def _get_cell_weights(cell: nn.Module):
    def bias(b):
        return None if b is None else b.detach().clone()

    return cell.tile_ih.get_weights(), cell.tile_hh.get_weights(), bias(cell.bias_ih), bias(cell.bias_hh)


def _affine(tile: nn.Module, bias: Optional[Tensor], x: Tensor) -> Tensor:
    """tile(x [M, K]) + bias -> [M, G·H]."""
    y = tile(x)
    return y if bias is None else y + bias


def _check_cell_input(cell: nn.Module, x: Tensor) -> bool:
    """Validate x [B, I] or [I]; return whether it is unbatched."""
    check_input(type(cell).__name__, x)
    if x.dim() not in (1, 2) or x.shape[-1] != cell.input_size:
        raise ValueError(f"{type(cell).__name__} expects inputs [B, {cell.input_size}] or "
                         f"[{cell.input_size}], got {tuple(x.shape)}")
    check_finite(type(cell).__name__, x)
    return x.dim() == 1


def _cell_state(cell: nn.Module, h: Optional[Tensor], x: Tensor, unbatched: bool, what: str) -> Tensor:
    """A state tensor [B, H] (zeros when ``h`` is None)."""
    B = x.shape[0]
    if h is None:
        return x.new_zeros(B, cell.hidden_size)
    want = (cell.hidden_size,) if unbatched else (B, cell.hidden_size)
    if not isinstance(h, Tensor) or tuple(h.shape) != want:
        got = tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__
        raise ValueError(f"{type(cell).__name__}: {what} must have shape {list(want)}, got {got}")
    check_state(type(cell).__name__, h, x, what)
    return h.unsqueeze(0) if unbatched else h


# ---------------------------------------------------------------------------------------------
# cells
# ---------------------------------------------------------------------------------------------


class _AnalogCell(nn.Module):
    """What every analog cell shares: the input tile W_ih [G·H, I] and hidden tile W_hh [G·H, H] with
    digital biases, weights in ``nn.*Cell`` layout, and ``forward`` for cells with one state tensor.
    Subclasses set ``GATES`` (G) and implement ``step``."""

    GATES = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 config: Optional[AnalogConfig] = None, **tile_kwargs) -> None:
        super().__init__()
        _build_cell(self, self.GATES, input_size, hidden_size, bias, config, tile_kwargs)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_cell(self)

    def set_weights(self, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Optional[Tensor] = None,
                    bias_hh: Optional[Tensor] = None) -> None:
        """weight_ih [G·H, I], weight_hh [G·H, H], biases [G·H] (as the matching ``nn.*Cell``)."""
        _set_cell_weights(self, weight_ih, weight_hh, bias_ih, bias_hh)

    def get_weights(self):
        """(weight_ih [G·H, I], weight_hh [G·H, H], bias_ih [G·H] or None, bias_hh [G·H] or None)."""
        return _get_cell_weights(self)

    def input_part(self, x: Tensor) -> Tensor:
        """W_ih x + b_ih: [M, I] -> [M, G·H]."""
        return _affine(self.tile_ih, self.bias_ih, x)

    def step(self, gi: Tensor, state: State) -> State:
        raise NotImplementedError

    def forward(self, x: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        """x [B, I] (or [I]), hx [B, H] -> h' [B, H]."""
        unbatched = _check_cell_input(self, x)
        x2 = x.unsqueeze(0) if unbatched else x
        h = _cell_state(self, hx, x2, unbatched, "hx")
        (h_new,) = self.step(self.input_part(x2), (h,))
        return h_new.squeeze(0) if unbatched else h_new

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"


class AnalogRNNCell(_AnalogCell):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu (as ``nn.RNNCell``)."""

    GATES = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 config: Optional[AnalogConfig] = None, **tile_kwargs) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"AnalogRNNCell: nonlinearity = {nonlinearity!r} is invalid; allowed: 'tanh', 'relu'")
        super().__init__(input_size, hidden_size, bias, config, **tile_kwargs)
        self.nonlinearity = nonlinearity

    def step(self, gi: Tensor, state: State) -> State:
        """One step from the input part gi [B, H] and state (h [B, H],)."""
        z = gi + _affine(self.tile_hh, self.bias_hh, state[0])
        return (torch.tanh(z) if self.nonlinearity == "tanh" else torch.relu(z),)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity!r}"


class AnalogLSTMCell(_AnalogCell):
    """``nn.LSTMCell`` with gates (i, f, g, o) from two analog tiles."""

    GATES = 4

    def step(self, gi: Tensor, state: State) -> State:
        """One step from gi [B, 4H] and state (h [B, H], c [B, H]) -> (h', c')."""
        h, c = state
        gates = gi + _affine(self.tile_hh, self.bias_hh, h)  # [B, 4H]
        i, f, g, o = gates.chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new

    def forward(self, x: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None) -> Tuple[Tensor, Tensor]:
        """x [B, I] (or [I]), hx (h [B, H], c [B, H]) -> (h', c')."""
        unbatched = _check_cell_input(self, x)
        x2 = x.unsqueeze(0) if unbatched else x
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise ValueError("AnalogLSTMCell: hx must be a pair (h, c)")
        h = _cell_state(self, None if hx is None else hx[0], x2, unbatched, "h")
        c = _cell_state(self, None if hx is None else hx[1], x2, unbatched, "c")
        h_new, c_new = self.step(self.input_part(x2), (h, c))
        return (h_new.squeeze(0), c_new.squeeze(0)) if unbatched else (h_new, c_new)


class AnalogGRUCell(_AnalogCell):
    """``nn.GRUCell`` with gates (r, z, n) from two analog tiles."""

    GATES = 3

    def step(self, gi: Tensor, state: State) -> State:
        """One step from gi [B, 3H] and state (h [B, H],) -> (h',)."""
        h = state[0]
        gh = _affine(self.tile_hh, self.bias_hh, h)  # [B, 3H]
        i_r, i_z, i_n = gi.chunk(3, dim=1)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return ((1 - z) * n + z * h,)


# ---------------------------------------------------------------------------------------------
# layer helpers
# ---------------------------------------------------------------------------------------------


def _check_layer_args(layer: str, num_layers, dropout, bidirectional, proj_size=0) -> None:
    _check_size(layer, "num_layers", num_layers)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
        raise ValueError(f"{layer}: dropout = {dropout!r} is invalid; allowed: a number in [0, 1]")
    if bidirectional:
        raise NotImplementedError(f"{layer}: bidirectional=True is not supported; run two layers, one on "
                                  "the reversed sequence, and concatenate their outputs")
    if proj_size:
        raise NotImplementedError(f"{layer}: proj_size = {proj_size!r} is not supported; allowed: 0")


def _set_layer_weights(layer: nn.Module, weights: Mapping[str, Tensor]) -> None:
    name = type(layer).__name__
    if not isinstance(weights, Mapping):
        raise TypeError(f"{name}.set_weights expects a dict like dict(torch_layer.named_parameters()), "
                        f"got {type(weights).__name__}")
    expected = set(_layer_weight_names(layer))
    if set(weights) != expected:
        missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
        raise ValueError(f"{name}.set_weights: missing keys {missing}, unexpected keys {unexpected}")
    per_cell = [(weights[f"weight_ih_l{k}"], weights[f"weight_hh_l{k}"],
                 weights[f"bias_ih_l{k}"] if layer.bias else None, weights[f"bias_hh_l{k}"] if layer.bias else None)
                for k in range(layer.num_layers)]
    for cell, args in zip(layer.cells, per_cell):  # check all layers first: a bad entry changes nothing
        _check_cell_weights(cell, *args)
    for cell, args in zip(layer.cells, per_cell):
        cell.set_weights(*args)


def _layer_weight_names(layer: nn.Module) -> List[str]:
    names = []
    for k in range(layer.num_layers):
        names += [f"weight_ih_l{k}", f"weight_hh_l{k}"]
        if layer.bias:
            names += [f"bias_ih_l{k}", f"bias_hh_l{k}"]
    return names


def _get_layer_weights(layer: nn.Module) -> Dict[str, Tensor]:
    out = {}
    for k, cell in enumerate(layer.cells):
        w_ih, w_hh, b_ih, b_hh = cell.get_weights()
        out[f"weight_ih_l{k}"], out[f"weight_hh_l{k}"] = w_ih, w_hh
        if layer.bias:
            out[f"bias_ih_l{k}"], out[f"bias_hh_l{k}"] = b_ih, b_hh
    return out


def _initial_state(layer: nn.Module, h: Optional[Tensor], B: int, unbatched: bool, ref: Tensor,
                   what: str) -> Tensor:
    """[L, B, H] initial state (zeros when ``h`` is None)."""
    L, H = layer.num_layers, layer.hidden_size
    if h is None:
        return ref.new_zeros(L, B, H)
    want = (L, H) if unbatched else (L, B, H)
    if not isinstance(h, Tensor) or tuple(h.shape) != want:
        got = tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__
        raise ValueError(f"{type(layer).__name__}: {what} must have shape {list(want)}, got {got}")
    check_state(type(layer).__name__, h, ref, what)
    return h.unsqueeze(1) if unbatched else h


def _sequence(layer: nn.Module, x: Tensor) -> Tuple[Tensor, bool]:
    """x -> [T, B, I]; returns also whether it was unbatched."""
    name, n_in = type(layer).__name__, layer.input_size
    check_input(name, x)
    if x.dim() not in (2, 3) or x.shape[-1] != n_in:
        order = "[B, T, I]" if layer.batch_first else "[T, B, I]"
        raise ValueError(f"{name} expects inputs {order} with I = {n_in}, or unbatched [T, {n_in}]; "
                         f"got {tuple(x.shape)}")
    check_finite(name, x)
    if x.dim() == 2:
        return x.unsqueeze(1), True
    return (x.transpose(0, 1) if layer.batch_first else x), False


def _run_layers(layer: nn.Module, x: Tensor, states: List[State]) -> Tuple[Tensor, List[State]]:
    """The stacked recurrence: x [T, B, I], one initial state per layer -> ([T, B, H], final states)."""
    T, B = x.shape[0], x.shape[1]
    if T == 0:
        raise ValueError(f"{type(layer).__name__}: the input sequence is empty (T = 0)")
    finals = []
    for k, cell in enumerate(layer.cells):
        gi = cell.input_part(x.reshape(T * B, x.shape[-1]))  # [T·B, G·H], one batched MVM
        gi = gi.reshape(T, B, gi.shape[-1])  # (explicit sizes: B may be 0)
        state = states[k]
        outputs = []
        for t in range(T):
            state = cell.step(gi[t], state)
            outputs.append(state[0])
        x = torch.stack(outputs)  # [T, B, H]
        finals.append(state)
        if layer.dropout > 0 and k < layer.num_layers - 1:
            x = F.dropout(x, layer.dropout, layer.training)
    return x, finals


def _output(layer: nn.Module, y: Tensor, unbatched: bool) -> Tensor:
    if unbatched:
        return y.squeeze(1)
    return y.transpose(0, 1) if layer.batch_first else y


def _final(stack: List[Tensor], unbatched: bool) -> Tensor:
    h = torch.stack(stack)  # [L, B, H]
    return h.squeeze(1) if unbatched else h


def _build_layer(layer: nn.Module, cell_type: type, input_size: int, hidden_size: int, num_layers: int,
                 bias: bool, batch_first: bool, dropout: float, config: Optional[AnalogConfig],
                 cell_kwargs: dict) -> None:
    layer.input_size, layer.hidden_size, layer.num_layers = input_size, hidden_size, num_layers
    layer.bias, layer.batch_first, layer.dropout = bias, batch_first, float(dropout)
    layer.bidirectional, layer.proj_size = False, 0
    layer.config = AnalogConfig() if config is None else config
    layer.cells = nn.ModuleList(
        cell_type(input_size if k == 0 else hidden_size, hidden_size, bias=bias, config=layer.config, **cell_kwargs)
        for k in range(num_layers))


def _layer_repr(layer: nn.Module) -> str:
    return (f"{layer.input_size}, {layer.hidden_size}, num_layers={layer.num_layers}, bias={layer.bias}, "
            f"batch_first={layer.batch_first}, dropout={layer.dropout}")


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------


class _AnalogRecurrent(nn.Module):
    """What AnalogRNN, AnalogLSTM and AnalogGRU share: a stack of cells, torch-keyed weights, and the
    forward of a layer whose state is one tensor h (RNN, GRU; the LSTM overrides it for (h, c)).
    A subclass sets ``cell_type``; parameter names follow the torch layer of the same name."""

    cell_type: type

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bias: bool, batch_first: bool,
                 dropout: float, bidirectional: bool, proj_size: int, config: Optional[AnalogConfig],
                 cell_kwargs: dict) -> None:
        super().__init__()
        _check_layer_args(type(self).__name__, num_layers, dropout, bidirectional, proj_size)
        _build_layer(self, self.cell_type, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                     config, cell_kwargs)

    def set_weights(self, weights: Mapping[str, Tensor]) -> None:
        """Weights keyed as ``dict(torch_layer.named_parameters())``: weight_ih_l0 [G·H, I], ..."""
        _set_layer_weights(self, weights)

    def get_weights(self) -> Dict[str, Tensor]:
        """Weights keyed as the torch layer's ``named_parameters()``, in layer units."""
        return _get_layer_weights(self)

    def forward(self, x: Tensor, hx: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        seq, unbatched = _sequence(self, x)  # [T, B, I]
        h0 = _initial_state(self, hx, seq.shape[1], unbatched, seq, "hx")
        y, finals = _run_layers(self, seq, [(h0[k],) for k in range(self.num_layers)])
        return _output(self, y, unbatched), _final([s[0] for s in finals], unbatched)

    def extra_repr(self) -> str:
        return _layer_repr(self)


class AnalogRNN(_AnalogRecurrent):
    """``nn.RNN`` on analog tiles: forward(x, h0) -> (output [T, B, H], h_n [L, B, H])."""

    cell_type = AnalogRNNCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, config: Optional[AnalogConfig] = None, **tile_kwargs) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         config, dict(tile_kwargs, nonlinearity=nonlinearity))
        self.nonlinearity = nonlinearity

    def extra_repr(self) -> str:
        return _layer_repr(self) + f", nonlinearity={self.nonlinearity!r}"


class AnalogLSTM(_AnalogRecurrent):
    """``nn.LSTM`` on analog tiles: forward(x, (h0, c0)) -> (output [T, B, H], (h_n, c_n) [L, B, H])."""

    cell_type = AnalogLSTMCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, config: Optional[AnalogConfig] = None, **tile_kwargs) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, config, tile_kwargs)

    def forward(self, x: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None):
        seq, unbatched = _sequence(self, x)  # [T, B, I]
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise ValueError("AnalogLSTM: hx must be a pair (h0, c0)")
        B = seq.shape[1]
        h0 = _initial_state(self, None if hx is None else hx[0], B, unbatched, seq, "h0")
        c0 = _initial_state(self, None if hx is None else hx[1], B, unbatched, seq, "c0")
        y, finals = _run_layers(self, seq, [(h0[k], c0[k]) for k in range(self.num_layers)])
        h_n = _final([s[0] for s in finals], unbatched)
        c_n = _final([s[1] for s in finals], unbatched)
        return _output(self, y, unbatched), (h_n, c_n)


class AnalogGRU(_AnalogRecurrent):
    """``nn.GRU`` on analog tiles: forward(x, h0) -> (output [T, B, H], h_n [L, B, H])."""

    cell_type = AnalogGRUCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 config: Optional[AnalogConfig] = None, **tile_kwargs) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         config, tile_kwargs)
