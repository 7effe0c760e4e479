"""AnalogConv1d / AnalogConv2d: convolutions as one analog MVM over the unfolded input (im2col).

The input is padded (any torch ``padding_mode``), unfolded into patches and multiplied by the kernel
matrix [N, K] on the layer's tile, with N = out_channels and K = in_channels·∏kernel_size (the
order of ``weight.reshape(N, -1)``, as ``F.unfold`` lays out patches). Every output pixel is one
row of the MVM batch: M = batch·∏output_size. The bias is digital. A 1-d convolution runs as a 2-d
one of height 1. ``groups != 1`` is not supported (``NotImplementedError``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aimc_lab.config import AnalogConfig
from aimc_lab.nn._checks import check_input
from aimc_lab.tile import check_finite_state, make_tile

__all__ = ["AnalogConv1d", "AnalogConv2d", "ConvGeometry", "conv_geometry"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution's geometry in 2-d form (a 1-d convolution has height 1).

    ``pad`` is in ``F.pad`` order: (left, right, top, bottom).
    """

    kernel: Tuple[int, int]
    stride: Tuple[int, int]
    dilation: Tuple[int, int]
    pad: Tuple[int, int, int, int]
    padding_mode: str


def _tuple(layer: str, name: str, value, dims: int, lo: int) -> Tuple[int, ...]:
    """An int or a tuple of ``dims`` ints, each >= lo."""
    values = (value,) * dims if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(values, (tuple, list)) or len(values) != dims
            or any(isinstance(v, bool) or not isinstance(v, int) or v < lo for v in values)):
        raise ValueError(f"{layer}: {name} = {value!r} is invalid; allowed: an integer >= {lo} "
                         f"or a tuple of {dims} such integers")
    return tuple(values)


def conv_geometry(layer: str, dims: int, kernel_size, stride, padding, dilation,
                  padding_mode: str) -> Tuple[ConvGeometry, Union[str, Tuple[int, ...]]]:
    """Validate torch-style convolution arguments (``dims`` = 1 or 2).

    Returns the 2-d geometry and the ``padding`` argument in the form torch keeps
    (a string or a tuple of ``dims`` ints).
    """
    kernel = _tuple(layer, "kernel_size", kernel_size, dims, 1)
    stride_t = _tuple(layer, "stride", stride, dims, 1)
    dilation_t = _tuple(layer, "dilation", dilation, dims, 1)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{layer}: padding_mode = {padding_mode!r} is invalid; allowed: "
                         + ", ".join(repr(m) for m in PADDING_MODES))
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"{layer}: padding = {padding!r} is invalid; allowed: 'same', 'valid', "
                             "an integer >= 0 or a tuple of such integers")
        if padding == "same" and any(s != 1 for s in stride_t):
            raise ValueError(f"{layer}: padding = 'same' needs stride = 1, got stride = {stride!r}")
        pairs = []
        for k, d in zip(kernel, dilation_t):
            total = d * (k - 1) if padding == "same" else 0
            pairs.append((total // 2, total - total // 2))  # torch puts the odd extra on the right
        padding_kept: Union[str, Tuple[int, ...]] = padding
    else:
        padding_kept = _tuple(layer, "padding", padding, dims, 0)
        pairs = [(p, p) for p in padding_kept]
    if dims == 1:
        kernel, stride_t, dilation_t, pairs = (1,) + kernel, (1,) + stride_t, (1,) + dilation_t, [(0, 0)] + pairs
    pad = (pairs[1][0], pairs[1][1], pairs[0][0], pairs[0][1])
    return ConvGeometry(kernel, stride_t, dilation_t, pad, padding_mode), padding_kept


def _check_channels(layer: str, in_channels, out_channels, groups) -> None:
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{layer}: {name} = {value!r} is invalid; allowed: an integer >= 1")
    if groups != 1:
        raise NotImplementedError(f"{layer}: groups = {groups!r} is not supported; allowed: 1 "
                                  "(grouped and depthwise convolutions are not implemented)")


def patches(x: Tensor, g: ConvGeometry) -> Tensor:
    """The patches of x [B, C, H, W] as rows [B·Ho·Wo, C·kh·kw] (``F.unfold``'s entries, transposed):
    strided views of x copied once, where unfold followed by the transpose's reshape copies twice
    (measured on LeNet's layers, batch 64: 5.9 → 1.5 ms and 3.6 → 1.3 ms). The input gradient sums
    the overlapping patches with one ``F.fold`` (col2im); autograd through the two strided views runs
    two ``unfold_backward`` passes (LeNet's second layer, batch 64: 8.9 → 4.9 ms; the sums' order,
    so their last bits, differ)."""
    return _Patches.apply(x, g)


def _patch_rows(x: Tensor, g: ConvGeometry) -> Tensor:
    (kh, kw), (sh, sw), (dh, dw) = g.kernel, g.stride, g.dilation
    v = x.unfold(2, dh * (kh - 1) + 1, sh).unfold(3, dw * (kw - 1) + 1, sw)  # [B, C, Ho, Wo, span_h, span_w]
    if dh > 1 or dw > 1:
        v = v[..., ::dh, ::dw]
    B, C, Ho, Wo = v.shape[:4]
    return v.permute(0, 2, 3, 1, 4, 5).reshape(B * Ho * Wo, C * kh * kw)


def _out_size(H: int, W: int, g: ConvGeometry) -> list:
    """[Ho, Wo] of the (already padded) input size H, W."""
    return [(size - d * (k - 1) - 1) // s + 1 for size, k, s, d in zip((H, W), g.kernel, g.stride, g.dilation)]


class _Patches(torch.autograd.Function):
    """:func:`patches` with its input gradient by ``F.fold`` (itself differentiable)."""

    @staticmethod
    def forward(ctx, x: Tensor, g: ConvGeometry) -> Tensor:
        ctx.geometry, ctx.size = g, x.shape
        return _patch_rows(x, g)

    @staticmethod
    def backward(ctx, grad: Tensor):
        g, (B, _, H, W) = ctx.geometry, ctx.size
        Ho, Wo = _out_size(H, W, g)
        cols = grad.reshape(B, Ho * Wo, grad.shape[1]).transpose(1, 2)  # [B, C·kh·kw, Ho·Wo]: unfold's layout
        return F.fold(cols, (H, W), g.kernel, dilation=g.dilation, stride=g.stride), None


def conv_forward(tile: nn.Module, geometry: ConvGeometry, x: Tensor, bias: Optional[Tensor]) -> Tensor:
    """y [B, N, Ho, Wo] = conv(x [B, C, H, W]) through ``tile`` (weights [N, C·kh·kw])."""
    g = geometry
    if any(g.pad):
        mode = "constant" if g.padding_mode == "zeros" else g.padding_mode
        x = F.pad(x, g.pad, mode=mode)
    B, _, H, W = x.shape
    out_hw = _out_size(H, W, g)
    if min(out_hw) < 1:
        raise ValueError(f"input of padded spatial size {(H, W)} is smaller than the dilated kernel "
                         f"{tuple(d * (k - 1) + 1 for k, d in zip(g.kernel, g.dilation))}")
    L = out_hw[0] * out_hw[1]
    y = tile(patches(x, g))  # [B·L, N]
    N = y.shape[1]
    y = y.reshape(B, L, N).transpose(1, 2).reshape(B, N, out_hw[0], out_hw[1])  # [B, N, Ho, Wo]
    if bias is not None:
        y = y + bias.view(1, N, 1, 1)
    return y


class _AnalogConvNd(nn.Module):
    """What AnalogConv1d and AnalogConv2d share: geometry, tile, bias, weights, state checks.

    A subclass sets ``dims`` (1 or 2) and ``digital`` (the torch layer whose initialization it
    copies) and says how its input maps onto the 2-d convolution in ``forward``.
    """

    dims: int
    digital: type

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 config: Optional[AnalogConfig] = None, **tile_kwargs) -> None:
        super().__init__()
        name = type(self).__name__
        _check_channels(name, in_channels, out_channels, groups)
        self.geometry, self.padding = conv_geometry(name, self.dims, kernel_size, stride, padding,
                                                    dilation, padding_mode)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        g, skip = self.geometry, 2 - self.dims  # a 1-d layer reports its sizes without the height 1
        self.kernel_size, self.stride, self.dilation = g.kernel[skip:], g.stride[skip:], g.dilation[skip:]
        self.padding_mode = padding_mode
        self.config = AnalogConfig() if config is None else config
        self.tile = make_tile(out_channels, in_channels * math.prod(self.kernel_size), self.config, **tile_kwargs)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.reset_parameters()

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        check_finite_state(state_dict, prefix)  # the whole layer, before its own parameters are copied
        super()._load_from_state_dict(state_dict, prefix, *args)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The torch layer's initialization, then mapped onto the tile."""
        ref = self.digital(self.in_channels, self.out_channels, self.kernel_size, bias=self.bias is not None)
        self.set_weights(ref.weight, ref.bias)

    def set_weights(self, weight: Tensor, bias: Optional[Tensor] = None) -> None:
        """weight [N, C, *kernel_size], bias [N] (as the torch layer)."""
        name = type(self).__name__
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        if not isinstance(weight, Tensor) or tuple(weight.shape) != shape:
            got = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
            raise ValueError(f"{name}.set_weights: weight must have shape {list(shape)}, got {got}")
        if bias is not None:
            if self.bias is None:
                raise ValueError(f"{name}.set_weights: this layer has no bias (bias=False) but a bias was given")
            if not isinstance(bias, Tensor) or tuple(bias.shape) != (self.out_channels,):
                raise ValueError(f"{name}.set_weights: bias must have shape [{self.out_channels}]")
            if not torch.isfinite(bias).all():
                raise ValueError(f"{name}.set_weights: bias contains NaN or inf")
        self.tile.set_weights(weight.reshape(self.out_channels, -1))
        if bias is not None:
            with torch.no_grad():
                self.bias.copy_(bias)

    def get_weights(self):
        """(weight [N, C, *kernel_size], bias [N] or None) in layer units."""
        weight = self.tile.get_weights().reshape(self.out_channels, self.in_channels, *self.kernel_size)
        return weight, None if self.bias is None else self.bias.detach().clone()

    def _check_shape(self, x: Tensor) -> bool:
        """Check x against [B, C, *spatial] or [C, *spatial]; True when unbatched."""
        check_input(type(self).__name__, x)
        spatial = ("L",) if self.dims == 1 else ("H", "W")
        if x.dim() not in (self.dims + 1, self.dims + 2) or x.shape[-self.dims - 1] != self.in_channels:
            dims = ", ".join(spatial)
            raise ValueError(f"{type(self).__name__} expects inputs [B, {self.in_channels}, {dims}] or "
                             f"[{self.in_channels}, {dims}], got {tuple(x.shape)}")
        return x.dim() == self.dims + 1

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"bias={self.bias is not None}, padding_mode={self.padding_mode!r}")


class AnalogConv1d(_AnalogConvNd):
    """``nn.Conv1d`` on an analog tile: x [B, C, L] (or [C, L]) -> [B, N, Lo] (or [N, Lo])."""

    dims, digital = 1, nn.Conv1d

    def forward(self, x: Tensor) -> Tensor:
        unbatched = self._check_shape(x)
        x4 = (x.unsqueeze(0) if unbatched else x).unsqueeze(2)  # [B, C, 1, L]
        y = conv_forward(self.tile, self.geometry, x4, self.bias).squeeze(2)  # [B, N, Lo]
        return y.squeeze(0) if unbatched else y


class AnalogConv2d(_AnalogConvNd):
    """``nn.Conv2d`` on an analog tile: x [B, C, H, W] (or [C, H, W]) -> [B, N, Ho, Wo]."""

    dims, digital = 2, nn.Conv2d

    def forward(self, x: Tensor) -> Tensor:
        unbatched = self._check_shape(x)
        y = conv_forward(self.tile, self.geometry, x.unsqueeze(0) if unbatched else x, self.bias)
        return y.squeeze(0) if unbatched else y
