"""Hardware-aware training (docs/physics.md §3) with any torch optimizer.

The forward-time parts of hardware-aware training live in the tile: weight-noise injection
(``config.modifier``, drawn once per forward in training mode, gradients to the clean weights), the
noisy MVM with straight-through gradients, and the learned input range (its gradient relative to the
range and the input gradient straight through the clip, as in the reference toolkit; switch either off
with ``InputRangeParameters.gradient_relative`` / ``straight_through``, docs/physics.md §3). This module
adds the *post-step* parts, applied per tile according to that tile's own config after every optimizer step:

1. **Clipping** (``config.clip``), on the tile weights W (tile units, |w| <= 1 ↔ g_max):
   ``fixed``: W ← clip(W, −c, c) with c = ``fixed_value``;
   ``layer_gaussian``: W ← clip(W, −κ·std(W), κ·std(W)) with κ = ``sigma`` and std over the layer; a
   layer without a spread (one weight, or all weights equal: std undefined or 0) is left unchanged
   rather than clipped to NaN or to 0.
2. **Remapping** (``config.remap``): ``layer``: W ← W / max|W|; ``channelwise``: each output row
   W_i ← W_i / max_j|W_ij|; the factor moves into the digital ``out_scale`` so the logical weights
   ``get_weights()`` = W·out_scale are unchanged (:meth:`aimc_lab.tile.AnalogTile.remap`).

3. **Non-finite values** are refused, not clipped: before the step, a NaN or inf gradient of any
   parameter of the model (typically from a loss that overflowed on huge inputs) raises ``ValueError``
   naming the parameter, and nothing is written (weights and optimizer state as before the step); after
   the step (and before clipping), tile weights or output scales that became NaN or inf (an update that
   overflowed with finite gradients, e.g. an infinite learning rate or Adam's moments) raise
   ``ValueError`` naming them. That second case cannot be undone cheaply, so the layer is left as the
   optimizer wrote it: restore it from a checkpoint (and rebuild the optimizer, whose state is likely
   non-finite too); the error comes from ``optimizer.step()``, before any forward uses the weights.

Clipping runs before remapping (AIHWKIT's order), so after a step the tile weights satisfy
max|W| = 1 (per layer or column) and outliers beyond the clip value are cut first. Note what this
means for the standard preset (fixed clip at 1 plus remapping): the tile weights can never exceed 1,
so the logical weights W·out_scale can only grow through the digital output scales: keep
``mapping.learn_out_scaling = True`` (as ``presets.standard_hwa`` does); remapping then only scales
shrinking weights back up to the full conductance range. The optimizer's state (momenta, Adam
moments) is left in the old tile units after a remap; this matches AIHWKIT and is harmless in
practice because the rescale per step is tiny once training settles.

Usage::

    model = convert_to_analog(net, presets.standard_hwa(modifier_std=0.02))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    attach_hwa(opt, model)          # clip + remap after each opt.step()
    ...                             # or: losses = hwa_train(model, loader, epochs=5)
"""

from __future__ import annotations

import weakref
from typing import Callable, List, Optional

import torch
from torch import Tensor, nn

from aimc_lab.inference import check_data
from aimc_lab.nn.container import programmable_tiles
from aimc_lab.tile import AnalogTile

__all__ = ["attach_hwa", "detach_hwa", "clip_tile", "clip_weights", "remap_weights", "hwa_train"]

# optimizer -> (model, hook handle): one HWA hook per optimizer
_ATTACHED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _tiles(model: nn.Module) -> List[AnalogTile]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return list(programmable_tiles(model))


@torch.no_grad()
def clip_tile(tile: AnalogTile) -> None:
    """Apply ``tile.config.clip`` to the tile weights in place (see the module docstring)."""
    clip = tile.config.clip
    if clip.kind == "none":
        return
    w = tile.weight
    if clip.kind == "fixed":
        bound = torch.as_tensor(clip.fixed_value, dtype=w.dtype, device=w.device)
    else:  # layer_gaussian
        if w.numel() < 2:
            return
        std = w.std()
        if not bool(std > 0):
            return
        bound = clip.sigma * std
    w.copy_(torch.maximum(torch.minimum(w, bound), -bound))


@torch.no_grad()
def clip_weights(model: nn.Module) -> nn.Module:
    """Clip the weights of every analog tile in ``model`` by its config (by hand, e.g. after loading)."""
    for tile in _tiles(model):
        clip_tile(tile)
    return model


@torch.no_grad()
def remap_weights(model: nn.Module) -> nn.Module:
    """Remap every analog tile in ``model`` by its ``config.remap.kind`` (logical weights unchanged)."""
    for tile in _tiles(model):
        tile.remap(tile.config.remap.kind)
    return model


_OVERFLOW_HINT = "likely from an overflowing loss or huge inputs: scale them down, or lower the learning rate"


@torch.no_grad()
def _check_gradients(model: nn.Module) -> None:
    """ValueError naming the first parameter of ``model`` whose gradient has a NaN or inf."""
    named = [(name, p.grad) for name, p in model.named_parameters() if p.grad is not None]
    if not named:
        return
    finite = torch.stack([torch.isfinite(g).all() for _, g in named])
    if bool(finite.all()):
        return
    bad = [name for (name, _), ok in zip(named, finite.tolist()) if not ok]
    raise ValueError(f"attach_hwa: the gradient of {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} "
                     f"contains NaN or inf ({_OVERFLOW_HINT}); the optimizer step was "
                     "refused and nothing was changed")


@torch.no_grad()
def _check_tiles(model: nn.Module) -> None:
    """ValueError naming the tile tensors the optimizer step left with a NaN or inf."""
    names = {id(m): n for n, m in model.named_modules()}
    for tile in _tiles(model):
        for attr in ("weight", "out_scale", "input_range"):
            value = getattr(tile, attr)
            if value is not None and not bool(torch.isfinite(value).all()):
                where = names.get(id(tile), "")
                raise ValueError(f"attach_hwa: {where + '.' if where else ''}{attr} became NaN or inf after "
                                 f"the optimizer step ({_OVERFLOW_HINT}); the layer now "
                                 "holds these values: restore it from a checkpoint and rebuild the optimizer")


def _post_step(model: nn.Module) -> None:
    _check_tiles(model)
    for tile in _tiles(model):
        clip_tile(tile)
        tile.remap(tile.config.remap.kind)


class _Handles:
    """The pre-step (gradient check) and post-step (clip, remap) hook handles of :func:`attach_hwa`."""

    def __init__(self, *handles) -> None:
        self.handles = handles

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def attach_hwa(optimizer: torch.optim.Optimizer, model: nn.Module):
    """Register step hooks on ``optimizer`` that refuse non-finite gradients before, and clip, then
    remap, every analog tile of ``model`` after each ``optimizer.step()`` (non-finite values: see the
    module docstring). Attaching twice to the same optimizer replaces the
    earlier hook. Returns the hook handle (``handle.remove()`` or :func:`detach_hwa` to undo)."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not _tiles(model):
        raise ValueError("the model has no analog tiles: convert it first (aimc_lab.convert_to_analog)")
    detach_hwa(optimizer)
    model_ref = weakref.ref(model)

    def pre_hook(opt, args, kwargs) -> None:
        m = model_ref()
        if m is not None:
            _check_gradients(m)

    def hook(opt, args, kwargs) -> None:
        m = model_ref()
        if m is not None:
            _post_step(m)

    handle = _Handles(optimizer.register_step_pre_hook(pre_hook), optimizer.register_step_post_hook(hook))
    _ATTACHED[optimizer] = handle
    return handle


def detach_hwa(optimizer: torch.optim.Optimizer) -> bool:
    """Remove the HWA hook of ``optimizer``; True if there was one."""
    handle = _ATTACHED.pop(optimizer, None)
    if handle is None:
        return False
    handle.remove()
    return True


def _check_class_labels(y: Tensor) -> None:
    """TypeError unless ``y`` is a cross-entropy target: class indices, or class probabilities [M, C]."""
    if y.is_floating_point() and y.dim() >= 2 and bool(torch.isfinite(y).all()):
        return
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"loader: labels y have dtype {y.dtype} and shape {tuple(y.shape)}"
                        f"{'' if y.is_complex() or bool(torch.isfinite(y).all()) else ' with NaN or inf'}; allowed "
                        "with the default cross-entropy loss: integer class indices [M] (e.g. y.long()) or finite "
                        "class probabilities [M, C]")


def hwa_train(model: nn.Module, loader, epochs: int = 1, optimizer: Optional[torch.optim.Optimizer] = None,
              lr: float = 1e-3, loss: Optional[Callable[[Tensor, Tensor], Tensor]] = None,
              progress: bool = False) -> List[float]:
    """Train ``model`` hardware-aware for ``epochs`` passes over ``loader`` (batches ``(x, y)``, or one
    ``(x, y)`` pair); returns the mean training loss per epoch.

    ``loader`` is checked before anything changes (not an iterable of ``(x, y)`` pairs: TypeError naming
    it) and every batch before its step (not a pair of tensors, or not as many labels as inputs; with the
    default loss, labels that are neither integer class indices nor class probabilities [M, C]: TypeError).

    ``optimizer`` defaults to ``torch.optim.Adam(model.parameters(), lr)``; the HWA post-step hook
    (:func:`attach_hwa`) is attached for the run if the optimizer has none, and removed afterwards.
    ``loss`` defaults to cross-entropy. The model is left in eval mode.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs = {epochs!r} is invalid; allowed: an integer >= 1")
    check_data(loader, "loader", integer_labels=False)  # before anything changes
    if optimizer is None:
        if not lr > 0:
            raise ValueError(f"lr = {lr!r} is invalid; allowed: > 0")
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = loss or nn.functional.cross_entropy
    attached_here = optimizer not in _ATTACHED
    if attached_here:
        attach_hwa(optimizer, model)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc="HWA training")
    losses = []
    try:
        for _ in range(epochs):
            model.train()
            total, count = 0.0, 0
            for x, y in check_data(loader, "loader", integer_labels=False):
                if loss is None:
                    _check_class_labels(y)
                optimizer.zero_grad()
                value = loss_fn(model(x), y)
                value.backward()
                optimizer.step()
                total += float(value.detach()) * len(y)
                count += len(y)
            if count == 0:
                raise ValueError("hwa_train: the loader gave no batches")
            losses.append(total / count)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=losses[-1])
    finally:
        if bar is not None:
            bar.close()
        if attached_here:
            detach_hwa(optimizer)
        model.eval()
    return losses
