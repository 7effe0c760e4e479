"""AnalogLinear: ``nn.Linear`` on analog tiles (digital bias added after the partial sums)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from aimc_lab.config import AnalogConfig
from aimc_lab.nn._checks import check_input
from aimc_lab.tile import check_finite_state, make_tile

__all__ = ["AnalogLinear"]


class AnalogLinear(nn.Module):
    """y = analog(x @ W.T) + b. ``x`` may have any leading dimensions ``[..., in_features]``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 config: Optional[AnalogConfig] = None, **tile_kwargs) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.config = AnalogConfig() if config is None else config
        self.tile = make_tile(out_features, in_features, self.config, **tile_kwargs)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.reset_parameters()

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        check_finite_state(state_dict, prefix)  # the whole layer, before its own parameters are copied
        super()._load_from_state_dict(state_dict, prefix, *args)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """nn.Linear's initialization, then mapped onto the tile."""
        ref = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        self.tile.set_weights(ref.weight)
        if self.bias is not None:
            self.bias.copy_(ref.bias)

    def set_weights(self, weight: Tensor, bias: Optional[Tensor] = None) -> None:
        self.tile.set_weights(weight)
        if bias is not None:
            if self.bias is None:
                raise ValueError("this layer has no bias (bias=False) but a bias was given")
            if tuple(bias.shape) != (self.out_features,) or not torch.isfinite(bias).all():
                raise ValueError(f"bias must be a finite tensor of shape [{self.out_features}], "
                                 f"got shape {tuple(bias.shape)}")
            with torch.no_grad():
                self.bias.copy_(bias)

    def get_weights(self):
        """(weight [N, K], bias [N] or None) in layer units."""
        return self.tile.get_weights(), None if self.bias is None else self.bias.detach().clone()

    def forward(self, x: Tensor) -> Tensor:
        check_input("AnalogLinear", x)
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"AnalogLinear expects inputs [..., {self.in_features}], got {tuple(x.shape)}")
        flat = x.dim() == 2
        y = self.tile(x if flat else x.reshape(-1, self.in_features))
        if self.bias is not None:
            y = y + self.bias
        return y if flat else y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
