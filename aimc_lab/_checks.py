"""Input checks shared by the tiles (what a forward refuses before anything changes)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: The latest inference time accepted, in seconds (about 3·10^10 years): any later time overflows
#: the fp32 state it is stored in long before it means anything physically.
MAX_TIME = 1e18


def check_time(t_inference: float) -> float:
    """Validate an inference time in seconds: a finite number in [0, MAX_TIME]."""
    if isinstance(t_inference, bool) or not isinstance(t_inference, (int, float)):
        raise TypeError(f"t_inference must be a number of seconds, got {type(t_inference).__name__}")
    if not math.isfinite(t_inference) or not 0 <= t_inference <= MAX_TIME:
        raise ValueError(f"t_inference = {t_inference!r} is invalid; allowed: a finite time in "
                         f"[0, {MAX_TIME:g}] seconds")
    return float(t_inference)


def all_finite(t: Tensor) -> bool:
    """True when ``t`` has no NaN or inf: its min and max in one pass (NaN propagates through both),
    without the bool temporary of ``isfinite(t).all()`` (several times slower on large tensors); the
    two numbers are tested in Python (torch.isfinite on a 0-d tensor is four ops, ~0.1 ms a call)."""
    if t.numel() == 0:
        return True
    low, high = torch.aminmax(t)
    return math.isfinite(low.item()) and math.isfinite(high.item())


def check_tile_input(x, in_features: int, dtype: torch.dtype, leading_dims: bool = False, finite=None) -> None:
    """Refuse a tile input: not a tensor, or not of the tile's ``dtype``: TypeError; not of shape
    [M, K] ([..., K] with ``leading_dims``), K = ``in_features``, or NaN/inf entries: ValueError.
    ``finite``: the finiteness test (default :func:`all_finite`; a faster one of the same contract)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"tile input x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != dtype:
        raise TypeError(f"tile input x has dtype {x.dtype}; allowed: the tile's dtype {dtype} "
                        "(convert the input, or the model with .to(dtype))")
    if (x.dim() < 1 if leading_dims else x.dim() != 2) or x.shape[-1] != in_features:
        want = f"[..., {in_features}]" if leading_dims else f"[M, {in_features}]"
        raise ValueError(f"tile input must have shape {want}, got {tuple(x.shape)}")
    if not (all_finite if finite is None else finite)(x):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"tile input x contains NaN or inf ({bad} of {x.numel()} entries); "
                         "allowed: finite values")
