"""Post-training input-range calibration (docs/physics.md §3): set the input ranges from sample data.

Every :class:`~aimc_lab.tile.AnalogTile` with an input range (``config.input_range.enable``) holds one
range r_s per K-slice s (``tile.input_range`` [S]; input column j belongs to slice
``tile.slice_index[j]``). :func:`calibrate_input_ranges` runs the model on sample data without
training (eval mode, no gradients), collects each tile's inputs x [M, K] with a forward pre-hook,
and sets, per slice s (X_s: the collected inputs of the slice's columns; rows that are entirely zero,
e.g. conv padding, are dropped first, as in AIHWKIT):

* ``cache_quantile``: r_s = quantile_q(|X_s|) over a cache of at most ``max_samples`` rows (a
  uniformly random subset of all rows seen, re-drawn after every batch);
* ``moving_quantile``: r_s = mean over batches b of quantile_q(|X_s,b|) (no cache, saves memory);
* ``moving_std``: r_s = mean over batches b of α·std(X_s,b) (α = ``std_alpha``; the same statistic as
  the tile's init-from-data);
* ``max``: r_s = max over batches of max|X_s,b|.

By default (``exact_forward=True``) the collection pass runs every tile with exact MVMs
(``forward.is_perfect``), as AIHWKIT does for the cache and max methods, so the ranges do not depend
on one draw of the MVM noise; the input ranges already set still clip during that pass (all tiles are
calibrated in one pass, upstream tiles with their old ranges). Afterwards each tile's on-the-fly
init-from-data is marked done so later training does not overwrite the calibrated values. Deviation
from AIHWKIT: its cache quantile is taken over signed x; here over |x| as docs/physics.md §3 states.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterator, List, Optional

import torch
from torch import Tensor, nn

from aimc_lab.tile import AnalogTile

__all__ = ["CALIBRATION_METHODS", "calibrate_input_ranges"]

CALIBRATION_METHODS = ("cache_quantile", "moving_quantile", "moving_std", "max")

# torch.quantile refuses inputs above 2**24 elements
_QUANTILE_LIMIT = 2 ** 24


def _quantile(values: Tensor, q: float, generator: torch.Generator) -> Tensor:
    values = values.flatten()
    if values.numel() > _QUANTILE_LIMIT:
        keep = torch.randperm(values.numel(), generator=generator)[:_QUANTILE_LIMIT]
        values = values[keep.to(values.device)]
    return torch.quantile(values, q)


class _Collector:
    """Per-tile statistics of one calibration run (one value per K-slice)."""

    def __init__(self, tile: AnalogTile, method: str, quantile: float, std_alpha: float, max_samples: int,
                 generator: torch.Generator) -> None:
        self.tile, self.method, self.q, self.alpha = tile, method, quantile, std_alpha
        self.max_samples, self.generator = max_samples, generator
        self.columns = [torch.nonzero(tile.slice_index == s).flatten() for s in range(tile.n_slices)]
        self.cache: Optional[Tensor] = None
        self.value = torch.zeros(tile.n_slices)
        self.batches = 0

    def _per_slice(self, x: Tensor, fn) -> Tensor:
        return torch.stack([fn(x[:, cols]) for cols in self.columns]).to(self.value)

    def __call__(self, module: nn.Module, args) -> None:
        x = args[0].detach()
        x = x[(x != 0).any(dim=1)]  # drop all-zero rows
        if x.shape[0] == 0:
            return
        if self.method == "cache_quantile":
            rows = x.float().cpu() if self.cache is None else torch.cat([self.cache, x.float().cpu()])
            if rows.shape[0] > self.max_samples:
                rows = rows[torch.randperm(rows.shape[0], generator=self.generator)[:self.max_samples]]
            self.cache = rows
        elif self.method == "max":
            self.value = torch.maximum(self.value, self._per_slice(x, lambda v: v.abs().max()))
        else:
            if self.method == "moving_quantile":
                val = self._per_slice(x, lambda v: _quantile(v.abs(), self.q, self.generator))
            else:  # moving_std
                val = self._per_slice(x, lambda v: self.alpha * v.std(unbiased=v.numel() > 1))
            self.value = self.value * (self.batches / (self.batches + 1)) + val / (self.batches + 1)
        self.batches += 1

    def result(self) -> Optional[Tensor]:
        if self.batches == 0:
            return None
        if self.method == "cache_quantile":
            return self._per_slice(self.cache, lambda v: _quantile(v.abs(), self.q, self.generator))
        return self.value


def _inputs(data, batch_size: int) -> Iterator[Tensor]:
    """Model inputs from a tensor, an ``(x, y)`` tuple of equal-length tensors, or an iterable (e.g. a list
    or DataLoader) of tensors / ``(x, ...)`` batches."""
    if isinstance(data, Tensor):
        yield from data.split(batch_size)
        return
    if (isinstance(data, tuple) and len(data) == 2 and all(isinstance(d, Tensor) for d in data)
            and data[0].dim() > 0 and data[1].dim() > 0 and data[0].shape[0] == data[1].shape[0]):
        yield from data[0].split(batch_size)
        return
    for batch in data:
        if isinstance(batch, Tensor):
            yield batch
        elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
            yield batch[0]
        else:
            raise TypeError("calibration data must be a tensor, an (x, y) pair, or an iterable of tensors or "
                            f"(x, ...) batches; got a batch of type {type(batch).__name__}")


@torch.no_grad()
def calibrate_input_ranges(model: nn.Module, data, method: str = "cache_quantile", quantile: float = 0.99995,
                           std_alpha: float = 3.0, max_batches: Optional[int] = None, max_samples: int = 1000,
                           batch_size: int = 256, exact_forward: bool = True, seed: int = 0) -> Dict[str, Tensor]:
    """Set the input range of every analog tile of ``model`` that has one from sample ``data``.

    ``data``: inputs [n, ...] (split into ``batch_size`` batches), an ``(x, y)`` pair of tensors, or an
    iterable of batches (tensors or ``(x, ...)`` tuples, e.g. a DataLoader); at most ``max_batches``
    batches are used (None: all). ``method`` is one of :data:`CALIBRATION_METHODS` (see the module
    docstring); ``quantile`` q in (0, 1] is used by the quantile methods, ``std_alpha`` by
    ``moving_std``, ``max_samples`` (rows kept per tile) by ``cache_quantile``; ``seed`` drives the
    cache subsampling. Returns ``{tile name: ranges [S]}``.

    Raises ValueError, changing no range, when ``data`` gives no batch or a tile sees no nonzero input
    row (all-zero data: there is nothing to set its range from); non-finite inputs raise in the tiles'
    forward, also before any range is changed.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method = {method!r} is invalid; allowed: " + ", ".join(repr(m) for m in CALIBRATION_METHODS))
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0 < quantile <= 1:
        raise ValueError(f"quantile = {quantile!r} is invalid; allowed: a number in (0, 1]")
    if isinstance(std_alpha, bool) or not isinstance(std_alpha, (int, float)) or not std_alpha > 0:
        raise ValueError(f"std_alpha = {std_alpha!r} is invalid; allowed: a number > 0")
    if max_batches is not None and (isinstance(max_batches, bool) or not isinstance(max_batches, int)
                                    or max_batches < 1):
        raise ValueError(f"max_batches = {max_batches!r} is invalid; allowed: None or an integer >= 1")
    for name, value in (("max_samples", max_samples), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} = {value!r} is invalid; allowed: an integer >= 1")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    named = [(name, m) for name, m in model.named_modules()
             if isinstance(m, AnalogTile) and m.input_range is not None]
    if not named:
        raise ValueError("the model has no analog tile with an input range: enable config.input_range "
                         "(e.g. presets.standard_hwa()) before calibrating")

    generator = torch.Generator().manual_seed(seed)
    collectors: List[_Collector] = []
    handles, saved_configs = [], []
    was_training = model.training
    try:
        for _, tile in named:
            c = _Collector(tile, method, float(quantile), float(std_alpha), max_samples, generator)
            collectors.append(c)
            handles.append(tile.register_forward_pre_hook(c))
            saved_configs.append(tile.config)
            if exact_forward:
                tile.config = dataclasses.replace(
                    tile.config, forward=dataclasses.replace(tile.config.forward, is_perfect=True))
        model.eval()
        n_batches = 0
        for x in _inputs(data, batch_size):
            if max_batches is not None and n_batches >= max_batches:
                break
            model(x)
            n_batches += 1
        if n_batches == 0:
            raise ValueError("calibrate_input_ranges: data gave no batches; allowed: at least one batch of inputs")
    finally:
        for handle in handles:
            handle.remove()
        for (_, tile), config in zip(named, saved_configs):
            tile.config = config
        model.train(was_training)

    results = [c.result() for c in collectors]
    unseen = [name for (name, _), r in zip(named, results) if r is None]
    if unseen:
        raise ValueError(f"calibrate_input_ranges: tile(s) {', '.join(map(repr, unseen))} saw no nonzero input "
                         "row (empty or all-zero data, or a tile the forward does not reach); no range was changed; "
                         "allowed: data that gives every tile a nonzero input")
    out: Dict[str, Tensor] = {}
    for (name, tile), r in zip(named, results):
        r = r.clamp(min=1e-6).to(tile.input_range)
        tile.input_range.copy_(r)
        tile.input_range_batches.fill_(max(tile.config.input_range.init_from_data, int(tile.input_range_batches)))
        out[name] = r.clone()
    return out
