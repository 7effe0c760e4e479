"""Input checks shared by the analog layers (the tile checks shape, dtype and finiteness again)."""

from __future__ import annotations

import torch
from torch import Tensor


def check_input(layer: str, x, name: str = "input") -> None:
    """TypeError unless ``x`` is a floating-point tensor, before a layer reshapes or pads it."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{layer}: {name} has dtype {x.dtype}; allowed: the layer's floating-point dtype "
                        "(torch.float32 unless the model was converted with .to(dtype))")


def check_finite(layer: str, x: Tensor, name: str = "input") -> None:
    """ValueError naming ``name`` if the tensor ``x`` has NaN or inf entries."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        raise ValueError(f"{layer}: {name} contains NaN or inf ({int((~finite).sum())} of {x.numel()} entries); "
                         "allowed: finite values")


def check_state(layer: str, h: Tensor, ref: Tensor, name: str) -> None:
    """A state tensor ``h`` (shape already checked) must have the input's dtype and finite entries."""
    if h.dtype != ref.dtype:
        raise TypeError(f"{layer}: {name} has dtype {h.dtype}; allowed: the input's dtype {ref.dtype}")
    check_finite(layer, h, name)
