"""Hardware-aware training and evaluation over several processes (torch.distributed).

Analog layers are ordinary modules with parameters (weights, learned input ranges, output scales), so
``torch.nn.parallel.DistributedDataParallel`` averages their gradients like any other. Three things
are analog-specific, and :func:`wrap` takes care of them:

* **Noise streams.** Each rank draws its own forward noise (read noise, ADC/DAC noise): tile ``k`` on
  rank ``r`` gets ``torch.Generator().manual_seed(rank_seed(seed, r, k))`` (numpy's SeedSequence of
  ``(seed, r, k)``), so two ranks never share a forward-noise stream. Weight-noise injection is drawn
  once per mini-batch in one process; to keep that, every rank shares the modifier stream of tile
  ``k`` (``rank_seed(seed, 0, k, stream=1)``): a global batch sees one weight-noise draw, split over
  the ranks. A run is reproducible for a given seed and world size.
* **Learned input ranges.** Their first ``init_from_data`` batches set them from the data's spread;
  every rank sees a different shard, so each init step is averaged over the ranks (the tile's
  ``range_group``) and the ranges stay identical on all ranks (later steps are gradient steps, which
  DDP averages).
* **In-memory (pulsed) training is refused at wrap time.** Its tiles change their conductances with
  pulses during ``optimizer.step()`` from each rank's own activations and errors; DDP all-reduces
  gradients, which these tiles do not use, so the ranks' arrays would silently drift apart. A
  correct scheme would all-gather the rank-1 update factors (x, d) and have every rank apply the same
  pulse trains; it is not implemented.

For inference, :func:`program_same_chip` programs every rank's model identically (one chip), and
``aimc_lab.evaluate_over_time(..., distributed=True)`` splits its (repeat × time) grid over the ranks
and returns the single-process table on every rank. ``benchmarks/ddp_hwa.py`` is a runnable example
(``torchrun --nproc_per_node=2 benchmarks/ddp_hwa.py``).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from aimc_lab import _dist, _registry
from aimc_lab.nn.container import analog_tiles, programmable_tiles

__all__ = ["wrap", "rank_seed", "seed_tiles", "program_same_chip", "check_supported"]


def rank_seed(seed: int, rank: int, index: int, stream: int = 0) -> int:
    """The seed of tile ``index``'s noise ``stream`` on ``rank`` (0: forward noise, 1: weight-noise
    injection; see the module docstring)."""
    for name, value in (("seed", seed), ("rank", rank), ("index", index), ("stream", stream)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} = {value!r} is invalid; allowed: an integer >= 0")
    words = np.random.SeedSequence([seed, rank, index, stream]).generate_state(1, dtype=np.uint64)
    return int(words[0]) & (2 ** 63 - 1)


def check_supported(model: nn.Module) -> None:
    """Raise if ``model`` holds tiles that cannot train under DistributedDataParallel (see above)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    pulsed = [name for name, m in model.named_modules() if isinstance(m, _registry.training_tile_classes())]
    if pulsed:
        raise NotImplementedError(
            f"in-memory (pulsed) training under torch.distributed is not supported: {len(pulsed)} tile(s) "
            f"train in memory (first: {pulsed[0]!r}). Their updates are pulses applied from each rank's own "
            "activations, which DistributedDataParallel does not average, so the ranks' arrays would drift "
            "apart. Train in one process, or use hardware-aware training (aimc_lab.presets.standard_hwa()).")


def seed_tiles(model: nn.Module, seed: int = 0, group: Optional[Any] = None) -> None:
    """Give every tile of ``model`` this rank's own forward-noise stream and the weight-noise stream
    all ranks share (:func:`rank_seed`)."""
    rank, _ = _dist.rank_and_size(group)
    for index, tile in enumerate(analog_tiles(model)):
        tile.generator = torch.Generator().manual_seed(rank_seed(seed, rank, index))
        if hasattr(tile, "modifier_generator"):
            tile.modifier_generator = torch.Generator().manual_seed(rank_seed(seed, 0, index, stream=1))


def wrap(model: nn.Module, *, seed: int = 0, group: Optional[Any] = None, **ddp_kwargs) -> nn.Module:
    """``DistributedDataParallel(model, **ddp_kwargs)`` for an analog model, after :func:`check_supported`,
    :func:`seed_tiles` and tying the tiles' input-range init to ``group`` (default: the world).

    Call it in every rank after ``torch.distributed.init_process_group`` and before training; the
    model's parameters must start equal on every rank (build or load them the same way: DDP also
    broadcasts rank 0's parameters and buffers when it wraps).
    """
    check_supported(model)
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("aimc_lab.distributed.wrap needs a process group: call "
                           "torch.distributed.init_process_group first (torchrun sets up its environment)")
    seed_tiles(model, seed, group)
    for tile in programmable_tiles(model):
        tile.range_group = dist.group.WORLD if group is None else group
    return nn.parallel.DistributedDataParallel(model, process_group=group, **ddp_kwargs)


@torch.no_grad()
def program_same_chip(model: nn.Module, seed: int = 0, group: Optional[Any] = None) -> nn.Module:
    """Program every tile on every rank as one chip: the same programming-noise instance (a shared
    seed), then rank 0's programmed state broadcast so the ranks agree bit for bit whatever their
    hardware. Returns ``model`` (unwrap a DDP model first: ``ddp.module``)."""
    generator = torch.Generator().manual_seed(seed)
    tiles = list(programmable_tiles(model))
    if not tiles:
        raise ValueError("the model has no analog tiles to program: convert it first (aimc_lab.convert_to_analog)")
    for tile in tiles:
        tile.program(generator)
        for _, buffer in tile.named_buffers(recurse=False):
            _dist.broadcast_(buffer, 0, group)
    return model
