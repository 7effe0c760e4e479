"""Input checks shared by the analog layers (the tile checks shape, dtype and finiteness again)."""

from __future__ import annotations

from torch import Tensor


def check_input(layer: str, x, name: str = "input") -> None:
    """TypeError unless ``x`` is a floating-point tensor, before a layer reshapes or pads it."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{layer}: {name} has dtype {x.dtype}; allowed: the layer's floating-point dtype "
                        "(torch.float32 unless the model was converted with .to(dtype))")
