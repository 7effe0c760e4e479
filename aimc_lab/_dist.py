"""The few torch.distributed calls the library makes, in one place (plain tensors and lists).

Everything here is a no-op in a single process (no process group, or a group of one), so library code
calls it unconditionally where a distributed run must agree across ranks. The user-facing helpers
(wrapping a model in DistributedDataParallel, one chip for all ranks) are in
:mod:`aimc_lab.distributed`.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import torch
import torch.distributed as dist

__all__ = ["active", "rank_and_size", "average_", "gather_lists", "broadcast_"]


def active(group: Optional[Any] = None) -> bool:
    """True when a process group is initialized and has more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def rank_and_size(group: Optional[Any] = None) -> Tuple[int, int]:
    """(rank, world size) of this process in ``group``; (0, 1) in a single process."""
    if not active(group):
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def average_(tensor: torch.Tensor, group: Optional[Any] = None) -> torch.Tensor:
    """Replace ``tensor`` by its mean over the ranks of ``group``, in place; returns it."""
    if active(group):
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
        tensor.div_(dist.get_world_size(group))
    return tensor


def broadcast_(tensor: torch.Tensor, src: int = 0, group: Optional[Any] = None) -> torch.Tensor:
    """Overwrite ``tensor`` with rank ``src``'s, in place; returns it."""
    if active(group):
        dist.broadcast(tensor, src=src, group=group)
    return tensor


def gather_lists(items: List[Any], group: Optional[Any] = None) -> List[Any]:
    """Every rank's ``items`` (picklable), concatenated in rank order, on every rank."""
    if not active(group):
        return list(items)
    parts: List[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(parts, list(items), group=group)
    return [item for part in parts for item in part]
