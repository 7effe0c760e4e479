"""Model conversion (torch <-> analog) and checkpoints that keep the configs (the tile summary,
``analog_summary``, lives in :mod:`aimc_lab.summary` and is re-exported here).

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
import os
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Union

import torch
from torch import Tensor, nn

from aimc_lab.config import AnalogConfig
from aimc_lab.nn import (AnalogConv1d, AnalogConv2d, AnalogGRU, AnalogGRUCell, AnalogLinear, AnalogLSTM,
                         AnalogLSTMCell, AnalogRNN, AnalogRNNCell, AnalogSequential)
from aimc_lab.nn.container import analog_tiles, named_analog_tiles
from aimc_lab.summary import AnalogSummary, SummaryRow, analog_summary  # moved there; re-exported here
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
        config: the hardware of every converted layer (default ``AnalogConfig()``). A user's own noise
            model or drift compensation reaches every tile through it: register the model
            (``aimc_lab.devices.register_noise_model``, ``devices.compensation.register_compensation``)
            and name it in ``config.noise_model.kind`` / ``config.drift_compensation.kind``; a new
            layer type through :func:`register_conversion` (docs/extending.md).
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
