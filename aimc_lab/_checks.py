"""Input checks shared by the tiles (what a forward refuses before anything changes)."""

from __future__ import annotations

import torch
from torch import Tensor


def check_tile_input(x, in_features: int, dtype: torch.dtype, leading_dims: bool = False) -> None:
    """Refuse a tile input: not a tensor, or not of the tile's ``dtype``: TypeError; not of shape
    [M, K] ([..., K] with ``leading_dims``), K = ``in_features``, or NaN/inf entries: ValueError."""
    if not isinstance(x, Tensor):
        raise TypeError(f"tile input x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != dtype:
        raise TypeError(f"tile input x has dtype {x.dtype}; allowed: the tile's dtype {dtype} "
                        "(convert the input, or the model with .to(dtype))")
    if (x.dim() < 1 if leading_dims else x.dim() != 2) or x.shape[-1] != in_features:
        want = f"[..., {in_features}]" if leading_dims else f"[M, {in_features}]"
        raise ValueError(f"tile input must have shape {want}, got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"tile input x contains NaN or inf ({bad} of {x.numel()} entries); "
                         "allowed: finite values")
