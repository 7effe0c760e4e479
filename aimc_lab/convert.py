"""Model conversion (torch <-> analog), a tile summary, and checkpoints that keep the configs.

Conversion is a small registry of handlers keyed by the *exact* module type (subclasses are not
matched: ``nn.MultiheadAttention``'s ``out_proj`` is a Linear subclass that must stay digital):

* ``register_conversion(nn.Linear, handler)`` with ``handler(module, config) -> analog module``;
* ``register_digital_conversion(AnalogLinear, handler)`` with
  ``handler(module, matrix) -> torch module``, where ``matrix(tile) -> Tensor [N, K]`` gives a
  tile's weights in layer units (trained, or the programmed/drifted ones).

``convert_to_analog`` walks the model, replaces every registered module (its children are not
visited) and turns every plain ``nn.Sequential`` into an :class:`AnalogSequential`;
``convert_to_digital`` is the inverse.

Checkpoints: a converted model's ``state_dict`` already holds the trained weights *and* the
programmed state (conductances, drift exponents, read weights, compensation), so
``model.load_state_dict(torch.load(...))`` into a freshly converted model reproduces it.
:func:`save_checkpoint` adds every tile's config, and :func:`load_checkpoint` refuses a checkpoint
whose configs, keys, shapes or values do not fit, leaving the model unchanged.
"""

from __future__ import annotations

import copy as copy_module
import io
import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from aimc_lab.config import AnalogConfig
from aimc_lab.nn import (AnalogConv1d, AnalogConv2d, AnalogGRU, AnalogGRUCell, AnalogLinear, AnalogLSTM,
                         AnalogLSTMCell, AnalogRNN, AnalogRNNCell, AnalogSequential)
from aimc_lab.nn.container import named_analog_tiles
from aimc_lab.tile import AnalogTile

__all__ = [
    "convert_to_analog",
    "convert_to_digital",
    "register_conversion",
    "register_digital_conversion",
    "analog_tiles",
    "named_analog_tiles",
    "analog_summary",
    "AnalogSummary",
    "SummaryRow",
    "save_checkpoint",
    "load_checkpoint",
    "CHECKPOINT_FORMAT",
]

ToAnalog = Callable[[nn.Module, AnalogConfig], nn.Module]
MatrixFn = Callable[[nn.Module], Tensor]
ToDigital = Callable[[nn.Module, MatrixFn], nn.Module]

_TO_ANALOG: Dict[type, ToAnalog] = {}
_TO_DIGITAL: Dict[type, ToDigital] = {}


def register_conversion(torch_type: type, handler: ToAnalog) -> None:
    """Convert modules of exactly ``torch_type`` with ``handler(module, config) -> analog module``
    (replaces an earlier handler for the type)."""
    if not (isinstance(torch_type, type) and issubclass(torch_type, nn.Module)):
        raise TypeError(f"torch_type must be an nn.Module subclass, got {torch_type!r}")
    if not callable(handler):
        raise TypeError(f"handler must be callable, got {type(handler).__name__}")
    _TO_ANALOG[torch_type] = handler


def register_digital_conversion(analog_type: type, handler: ToDigital) -> None:
    """Convert analog modules of exactly ``analog_type`` back with ``handler(module, matrix)``."""
    if not (isinstance(analog_type, type) and issubclass(analog_type, nn.Module)):
        raise TypeError(f"analog_type must be an nn.Module subclass, got {analog_type!r}")
    if not callable(handler):
        raise TypeError(f"handler must be callable, got {type(handler).__name__}")
    _TO_DIGITAL[analog_type] = handler


def _like(new: nn.Module, old: nn.Module) -> nn.Module:
    """``new`` on the device and floating dtype of ``old``'s first parameter (or buffer)."""
    ref = next(iter(old.parameters()), None)
    if ref is None:
        ref = next(iter(old.buffers()), None)
    if ref is None:
        return new
    return new.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else None)


# ---------------------------------------------------------------------------------------------
# built-in handlers: torch -> analog (each moves the new layer first, then copies the weights)
# ---------------------------------------------------------------------------------------------


def _linear_to_analog(m: nn.Linear, config: AnalogConfig) -> AnalogLinear:
    layer = _like(AnalogLinear(m.in_features, m.out_features, bias=m.bias is not None, config=config), m)
    layer.set_weights(m.weight.detach(), None if m.bias is None else m.bias.detach())
    return layer


def _conv_to_analog(analog_type: type) -> ToAnalog:
    def handler(m: nn.Module, config: AnalogConfig) -> nn.Module:
        layer = analog_type(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                            dilation=m.dilation, groups=m.groups, bias=m.bias is not None,
                            padding_mode=m.padding_mode, config=config)
        layer = _like(layer, m)
        layer.set_weights(m.weight.detach(), None if m.bias is None else m.bias.detach())
        return layer

    return handler


def _cell_to_analog(analog_type: type) -> ToAnalog:
    def handler(m: nn.Module, config: AnalogConfig) -> nn.Module:
        kwargs = {"nonlinearity": m.nonlinearity} if isinstance(m, nn.RNNCell) else {}
        layer = _like(analog_type(m.input_size, m.hidden_size, bias=m.bias, config=config, **kwargs), m)
        params = dict(m.named_parameters())
        layer.set_weights(params["weight_ih"].detach(), params["weight_hh"].detach(),
                          params["bias_ih"].detach() if m.bias else None,
                          params["bias_hh"].detach() if m.bias else None)
        return layer

    return handler


def _recurrent_to_analog(analog_type: type) -> ToAnalog:
    def handler(m: nn.Module, config: AnalogConfig) -> nn.Module:
        kwargs = {}
        if isinstance(m, nn.RNN):
            kwargs["nonlinearity"] = m.nonlinearity
        if isinstance(m, nn.LSTM):
            kwargs["proj_size"] = m.proj_size
        layer = analog_type(m.input_size, m.hidden_size, num_layers=m.num_layers, bias=m.bias,
                            batch_first=m.batch_first, dropout=m.dropout, bidirectional=m.bidirectional,
                            config=config, **kwargs)
        layer = _like(layer, m)
        layer.set_weights({k: v.detach() for k, v in m.named_parameters()})
        return layer

    return handler


# ---------------------------------------------------------------------------------------------
# built-in handlers: analog -> torch
# ---------------------------------------------------------------------------------------------


def _bias_copy(target: Optional[Tensor], source: Optional[Tensor]) -> None:
    if target is not None:
        target.copy_(source.detach())


@torch.no_grad()
def _linear_to_digital(m: AnalogLinear, matrix: MatrixFn) -> nn.Linear:
    out = _like(nn.Linear(m.in_features, m.out_features, bias=m.bias is not None), m)
    out.weight.copy_(matrix(m.tile))
    _bias_copy(out.bias, m.bias)
    return out


def _conv_to_digital(torch_type: type) -> ToDigital:
    @torch.no_grad()
    def handler(m: nn.Module, matrix: MatrixFn) -> nn.Module:
        out = torch_type(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                         dilation=m.dilation, groups=m.groups, bias=m.bias is not None,
                         padding_mode=m.padding_mode)
        out = _like(out, m)
        out.weight.copy_(matrix(m.tile).reshape(out.weight.shape))
        _bias_copy(out.bias, m.bias)
        return out

    return handler


def _cell_to_digital(torch_type: type) -> ToDigital:
    @torch.no_grad()
    def handler(m: nn.Module, matrix: MatrixFn) -> nn.Module:
        kwargs = {"nonlinearity": m.nonlinearity} if isinstance(m, AnalogRNNCell) else {}
        out = _like(torch_type(m.input_size, m.hidden_size, bias=m.bias_ih is not None, **kwargs), m)
        out.weight_ih.copy_(matrix(m.tile_ih))
        out.weight_hh.copy_(matrix(m.tile_hh))
        _bias_copy(out.bias_ih, m.bias_ih)
        _bias_copy(out.bias_hh, m.bias_hh)
        return out

    return handler


def _recurrent_to_digital(torch_type: type) -> ToDigital:
    @torch.no_grad()
    def handler(m: nn.Module, matrix: MatrixFn) -> nn.Module:
        kwargs = {"nonlinearity": m.nonlinearity} if isinstance(m, AnalogRNN) else {}
        out = torch_type(m.input_size, m.hidden_size, num_layers=m.num_layers, bias=m.bias,
                         batch_first=m.batch_first, dropout=m.dropout, **kwargs)
        out = _like(out, m)
        for k, cell in enumerate(m.cells):
            getattr(out, f"weight_ih_l{k}").copy_(matrix(cell.tile_ih))
            getattr(out, f"weight_hh_l{k}").copy_(matrix(cell.tile_hh))
            if m.bias:
                getattr(out, f"bias_ih_l{k}").copy_(cell.bias_ih)
                getattr(out, f"bias_hh_l{k}").copy_(cell.bias_hh)
        return out

    return handler


for _torch_type, _analog_type, _to_analog, _to_digital in (
        (nn.Linear, AnalogLinear, _linear_to_analog, _linear_to_digital),
        (nn.Conv1d, AnalogConv1d, _conv_to_analog(AnalogConv1d), _conv_to_digital(nn.Conv1d)),
        (nn.Conv2d, AnalogConv2d, _conv_to_analog(AnalogConv2d), _conv_to_digital(nn.Conv2d)),
        (nn.RNNCell, AnalogRNNCell, _cell_to_analog(AnalogRNNCell), _cell_to_digital(nn.RNNCell)),
        (nn.LSTMCell, AnalogLSTMCell, _cell_to_analog(AnalogLSTMCell), _cell_to_digital(nn.LSTMCell)),
        (nn.GRUCell, AnalogGRUCell, _cell_to_analog(AnalogGRUCell), _cell_to_digital(nn.GRUCell)),
        (nn.RNN, AnalogRNN, _recurrent_to_analog(AnalogRNN), _recurrent_to_digital(nn.RNN)),
        (nn.LSTM, AnalogLSTM, _recurrent_to_analog(AnalogLSTM), _recurrent_to_digital(nn.LSTM)),
        (nn.GRU, AnalogGRU, _recurrent_to_analog(AnalogGRU), _recurrent_to_digital(nn.GRU))):
    register_conversion(_torch_type, _to_analog)
    register_digital_conversion(_analog_type, _to_digital)


# ---------------------------------------------------------------------------------------------
# the walk
# ---------------------------------------------------------------------------------------------


def _replace(module: nn.Module, name: str, handler: Callable[[nn.Module], nn.Module], where: str) -> nn.Module:
    """Run a handler with the module's path in any error, and keep device, dtype and train mode."""
    try:
        new = handler(module)
    except (ValueError, TypeError, NotImplementedError, RuntimeError) as err:
        raise type(err)(f"{where}: cannot convert {name or '<model>'} ({type(module).__name__}): {err}") from err
    return _like(new, module).train(module.training)


def _walk(module: nn.Module, prefix: str, table: Dict[type, Any], call: Callable, where: str,
          sequential_from: type, sequential_to: type) -> nn.Module:
    handler = table.get(type(module))
    if handler is not None:
        return _replace(module, prefix, lambda m: call(handler, m), where)
    for name, child in list(module.named_children()):
        new = _walk(child, f"{prefix}.{name}" if prefix else name, table, call, where, sequential_from, sequential_to)
        if new is not child:
            setattr(module, name, new)
    if type(module) is sequential_from:
        return sequential_to(OrderedDict(module.named_children())).train(module.training)
    return module


def convert_to_analog(model: nn.Module, config: Optional[AnalogConfig] = None, *, copy: bool = True) -> nn.Module:
    """Replace every registered torch layer (Linear, Conv1d/2d, RNN/LSTM/GRU and their cells) by its
    analog layer with the same weights, and every ``nn.Sequential`` by an ``AnalogSequential``.

    Args:
        model: any module (also a single layer).
        config: the hardware of every converted layer (default ``AnalogConfig()``).
        copy: convert a deep copy (default) instead of changing ``model`` in place.

    Returns:
        The converted model (a new object when ``copy`` or when ``model`` itself is converted).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    config = AnalogConfig() if config is None else config
    if not isinstance(config, AnalogConfig):
        raise TypeError(f"config must be an AnalogConfig or None, got {type(config).__name__}")
    if copy:
        model = copy_module.deepcopy(model)
    return _walk(model, "", _TO_ANALOG, lambda handler, m: handler(m, config), "convert_to_analog",
                 nn.Sequential, AnalogSequential)


def _tile_matrix(use_programmed: bool) -> MatrixFn:
    """A tile's weights [N, K] in layer units: trained, or as the programmed tile applies them now
    (read weights at the last drift time, times drift compensation and output scales)."""

    def matrix(tile: nn.Module) -> Tensor:
        if not use_programmed:
            return tile.get_weights()
        if not isinstance(tile, AnalogTile):
            raise TypeError(f"use_programmed=True needs AnalogTile tiles, got {type(tile).__name__}")
        if not bool(tile.programmed):
            raise RuntimeError("use_programmed=True needs programmed tiles: call program() first")
        alpha = tile.drift_alpha[tile.slice_index].t()  # [S, N] -> [N, K]
        return (tile.w_read * alpha * tile.out_scale.unsqueeze(1)).detach()

    return matrix


def convert_to_digital(model: nn.Module, *, use_programmed: bool = False, copy: bool = True) -> nn.Module:
    """The inverse of :func:`convert_to_analog`: analog layers -> torch layers.

    With ``use_programmed=False`` the torch layers get the trained weights; with ``True`` the weights
    the programmed tiles apply at their last drift time (drifted, noisy conductances, times drift
    compensation), without the MVM nonidealities. ``AnalogSequential`` becomes ``nn.Sequential``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if copy:
        model = copy_module.deepcopy(model)
    matrix = _tile_matrix(use_programmed)
    return _walk(model, "", _TO_DIGITAL, lambda handler, m: handler(m, matrix), "convert_to_digital",
                 AnalogSequential, nn.Sequential)


def analog_tiles(model: nn.Module) -> Iterator[nn.Module]:
    """Every analog tile in ``model``."""
    return (tile for _, tile in named_analog_tiles(model))


# ---------------------------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryRow:
    """One tile: logical [N, K] on an S x T grid of max_in x max_out physical tiles."""

    name: str  # the layer's qualified name ("" for the model itself)
    tile: str  # the tile's attribute in the layer ("tile", "tile_ih", "tile_hh")
    layer_type: str
    out_features: int  # N
    in_features: int  # K
    grid: Tuple[int, int]  # (S along K, T along N)
    max_in: int
    max_out: int

    @property
    def label(self) -> str:
        """The layer name, with the tile for layers of several tiles."""
        return (self.name or "<model>") + ("" if self.tile in ("tile", "") else f" [{self.tile}]")

    @property
    def physical_shape(self) -> Tuple[int, int]:
        """(S·max_in rows, T·max_out columns)."""
        return self.grid[0] * self.max_in, self.grid[1] * self.max_out

    @property
    def utilisation(self) -> float:
        """N·K / (S·T·max_in·max_out), in [0, 1]."""
        rows, cols = self.physical_shape
        return self.out_features * self.in_features / (rows * cols)


@dataclass(frozen=True)
class AnalogSummary:
    """The tiles of a model; ``str()`` gives a table with totals."""

    rows: Tuple[SummaryRow, ...]

    @property
    def n_layers(self) -> int:
        return len({r.name for r in self.rows})

    @property
    def n_physical_tiles(self) -> int:
        return sum(r.grid[0] * r.grid[1] for r in self.rows)

    @property
    def n_weights(self) -> int:
        return sum(r.out_features * r.in_features for r in self.rows)

    @property
    def n_cells(self) -> int:
        """Physical cross-points (weight pairs) available on all tiles."""
        return sum(math.prod(r.physical_shape) for r in self.rows)

    @property
    def utilisation(self) -> float:
        return self.n_weights / self.n_cells if self.n_cells else 0.0

    def __str__(self) -> str:
        header = ("layer", "type", "logical N x K", "tiles S x T", "physical in x out", "utilisation")
        lines = [(r.label, r.layer_type, f"{r.out_features} x {r.in_features}", f"{r.grid[0]} x {r.grid[1]}",
                  f"{r.physical_shape[0]} x {r.physical_shape[1]}", f"{100 * r.utilisation:.1f} %")
                 for r in self.rows]
        total = ("total", f"{self.n_layers} layers", f"{self.n_weights} weights",
                 f"{self.n_physical_tiles} tiles", f"{self.n_cells} cells", f"{100 * self.utilisation:.1f} %")
        widths = [max(len(row[i]) for row in [header, total, *lines]) for i in range(len(header))]

        def fmt(row):
            return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

        rule = "-" * len(fmt(header))
        return "\n".join([fmt(header), rule, *map(fmt, lines), rule, fmt(total)])

    def __repr__(self) -> str:
        return str(self)


def analog_summary(model: nn.Module) -> AnalogSummary:
    """Per tile: layer name (with ``[tile_ih]``/``[tile_hh]`` for recurrent cells) and type, logical
    shape N x K, tile grid S x T, physical shape S·max_in x T·max_out, utilisation, and totals.
    ``print(analog_summary(model))`` shows the table."""
    rows = []
    for name, tile in named_analog_tiles(model):
        layer_name, _, attr = name.rpartition(".")
        layer = model.get_submodule(layer_name) if layer_name else model
        mapping = tile.config.mapping  # the grid of tile.physical_grid, for every tile type
        S = math.ceil(tile.in_features / mapping.max_input_size)
        T = math.ceil(tile.out_features / mapping.max_output_size)
        rows.append(SummaryRow(layer_name, attr, type(layer).__name__, tile.out_features, tile.in_features, (S, T),
                               mapping.max_input_size, mapping.max_output_size))
    return AnalogSummary(tuple(rows))


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------

CHECKPOINT_FORMAT = "aimc_lab.checkpoint/1"


def _configs(model: nn.Module) -> Dict[str, dict]:
    return {name: tile.config.to_dict() for name, tile in named_analog_tiles(model)}


def _check_path(where: str, path) -> None:
    if not isinstance(path, (str, os.PathLike, io.IOBase)):
        raise TypeError(f"{where}: path must be a str or os.PathLike (or an open binary file), "
                        f"got {type(path).__name__} ({path!r:.80})")


def save_checkpoint(model: nn.Module, path: Union[str, os.PathLike]) -> None:
    """Save ``{"format", "state_dict", "configs"}``: the weights and programmed state of every layer and
    the config (``to_dict``) of every tile, keyed by tile name."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    _check_path("save_checkpoint", path)
    torch.save({"format": CHECKPOINT_FORMAT, "state_dict": model.state_dict(), "configs": _configs(model)}, path)


def _differences(a: Any, b: Any, path: str) -> List[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                out.append(f"{sub}: {'missing in checkpoint' if key not in a else 'missing in model'}")
            else:
                out += _differences(a[key], b[key], sub)
        return out
    return [] if a == b else [f"{path}: checkpoint {a!r}, model {b!r}"]


def _read(path: Union[str, os.PathLike]) -> dict:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch raises many types for a damaged file
        raise ValueError(f"load_checkpoint: cannot read {str(path)!r} as a checkpoint: {err}") from err
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"load_checkpoint: {str(path)!r} is not an aimc_lab checkpoint "
                         f"(expected format {CHECKPOINT_FORMAT!r}, found {found!r})")
    if not isinstance(data.get("state_dict"), dict) or not isinstance(data.get("configs"), dict):
        raise ValueError(f"load_checkpoint: {str(path)!r} lacks a 'state_dict' or 'configs' dict")
    for key, value in data["state_dict"].items():
        if key.endswith("_extra_state"):  # a module's get_extra_state(), checked by that module
            continue
        if not isinstance(value, Tensor):
            raise ValueError(f"load_checkpoint: state_dict entry {key!r} is not a tensor")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"load_checkpoint: state_dict entry {key!r} contains NaN or inf")
    return data


def load_checkpoint(path: Union[str, os.PathLike],
                    model_factory_or_model: Union[nn.Module, Callable[[], nn.Module]]) -> nn.Module:
    """Load a :func:`save_checkpoint` file into a model (or into ``model_factory_or_model()``).

    Checks that every tile's config equals the saved one and that the state dict fits (same keys and
    shapes, finite values), first on a copy: on any mismatch a ``ValueError`` says what differs and
    the model is unchanged. Returns the loaded model.
    """
    _check_path("load_checkpoint", path)
    if isinstance(model_factory_or_model, nn.Module):
        model = model_factory_or_model
    elif callable(model_factory_or_model):
        model = model_factory_or_model()
        if not isinstance(model, nn.Module):
            raise TypeError(f"the model factory must return an nn.Module, got {type(model).__name__}")
    else:
        raise TypeError("model_factory_or_model must be an nn.Module or a callable returning one, "
                        f"got {type(model_factory_or_model).__name__}")
    data = _read(path)
    diffs = _differences(data["configs"], _configs(model), "")
    if diffs:
        shown = "; ".join(diffs[:5]) + (f"; ... ({len(diffs) - 5} more)" if len(diffs) > 5 else "")
        raise ValueError(f"load_checkpoint: the checkpoint's analog configs do not match the model's: {shown}")
    trial = copy_module.deepcopy(model)
    try:
        trial.load_state_dict(data["state_dict"], strict=True)
    except RuntimeError as err:
        raise ValueError(f"load_checkpoint: the state_dict does not fit the model: {err}") from err
    model.load_state_dict(data["state_dict"], strict=True)
    return model
