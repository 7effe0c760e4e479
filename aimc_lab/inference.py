"""Inference over time (docs/physics.md §2 workflow): program once, drift to t, evaluate, repeat.

``program(model)`` applies programming noise once and samples drift exponents for every analog tile;
``drift(model, t)`` starts each tile again from its programmed state and applies drift and fresh read
noise at t seconds (and recomputes drift compensation); ``evaluate_over_time`` runs the whole
experiment and returns a tidy table.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from aimc_lab import _dist
from aimc_lab.devices.base import check_time
from aimc_lab.nn.container import programmable_tiles
from aimc_lab.tile import AnalogTile

__all__ = ["tiles", "program", "drift", "unprogram", "accuracy", "evaluate_over_time", "cell_generator", "TIMES",
           "time_label"]

#: Inference times students look at: 1 s, 1 h, 1 day, 1 month, 1 year.
TIMES = (1.0, 3600.0, 86400.0, 2.592e6, 3.1536e7)


def time_label(t: float) -> str:
    """'1 s', '1 h', '1 day', ... for axis labels and tables."""
    for unit, sec in (("year", 3.1536e7), ("month", 2.592e6), ("day", 86400.0), ("h", 3600.0),
                      ("min", 60.0), ("s", 1.0)):
        if t >= sec:
            v = t / sec
            text = f"{v:.3g}"
            plural = "s" if unit in ("year", "month", "day") and text != "1" else ""
            return f"{text} {unit}{plural}"
    return f"{t:.3g} s"


def tiles(model: nn.Module) -> Iterator[AnalogTile]:
    """Every programmable analog tile in ``model`` (see :func:`aimc_lab.nn.container.programmable_tiles`)."""
    return programmable_tiles(model)


def _all_tiles(model: nn.Module):
    found = list(tiles(model))
    if not found:
        raise ValueError("the model has no analog tiles: convert it first (aimc_lab.convert_to_analog)")
    return found


@torch.no_grad()
def program(model: nn.Module, generator: Optional[torch.Generator] = None) -> nn.Module:
    """Program every analog tile of ``model`` (programming noise, drift exponents)."""
    for tile in _all_tiles(model):
        tile.program(generator)
    return model


@torch.no_grad()
def drift(model: nn.Module, t_inference: float, generator: Optional[torch.Generator] = None) -> nn.Module:
    """Drift every programmed tile to ``t_inference`` seconds after programming."""
    check_time(t_inference)
    for tile in _all_tiles(model):
        tile.drift(t_inference, generator)
    return model


@torch.no_grad()
def unprogram(model: nn.Module) -> nn.Module:
    """Back to the trained weights."""
    for tile in _all_tiles(model):
        tile.unprogram()
    return model


Data = Union[Tuple[Tensor, Tensor], Iterable[Tuple[Tensor, Tensor]]]


_DATA_ALLOWED = "an (x, y) pair of tensors (x [M, ...], y integer class labels [M]) or an iterable of such batches"
_PAIRS_ALLOWED = "an (x, y) pair of tensors (x [M, ...], labels y [M, ...]) or an iterable of such batches"


def _is_pair(data) -> bool:
    return isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Tensor)


def check_batch(batch, name: str = "data", index: Optional[int] = None, integer_labels: bool = True):
    """``(x, y)`` of one batch, after checking it: a pair of tensors with as many labels as inputs
    (x [M, ...], y [M, ...]) and, with ``integer_labels``, integer labels; TypeError/ValueError naming
    ``name`` (and the batch ``index``) otherwise."""
    where = name if index is None else f"{name}: batch {index}"
    allowed = _DATA_ALLOWED if integer_labels else _PAIRS_ALLOWED
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        got = f"a {type(batch).__name__}" + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        raise TypeError(f"{where} must be an (x, y) pair of tensors, got {got}; allowed: {allowed}")
    x, y = batch
    for part, value in (("x", x), ("labels y", y)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{where}: {part} must be a tensor, got a {type(value).__name__}; allowed: {allowed}")
    if x.dim() == 0 or y.dim() == 0 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{where}: labels y of shape {tuple(y.shape)} do not fit inputs x of shape {tuple(x.shape)}: "
                         f"{y.shape[0] if y.dim() else 'a scalar'} labels for "
                         f"{x.shape[0] if x.dim() else 'a scalar'} inputs; allowed: {allowed}")
    if integer_labels and (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool):
        raise TypeError(f"{where}: labels y have dtype {y.dtype}; allowed: integer class labels "
                        "(e.g. y.long())")
    return x, y


def check_data(data, name: str = "data", integer_labels: bool = True):
    """The batches of ``data`` (one ``(x, y)`` pair, or an iterable of pairs), each checked by
    :func:`check_batch` as it is drawn; a materialized list or tuple of batches is checked at once."""
    if _is_pair(data):
        return [check_batch(data, name, None, integer_labels)]
    if isinstance(data, Tensor) or data is None or isinstance(data, (str, bytes, dict)) \
            or not isinstance(data, Iterable):
        allowed = _DATA_ALLOWED if integer_labels else _PAIRS_ALLOWED
        raise TypeError(f"{name} must be {allowed}, got {'None' if data is None else type(data).__name__}")
    if isinstance(data, (tuple, list)):
        return [check_batch(batch, name, i, integer_labels) for i, batch in enumerate(data)]
    return (check_batch(batch, name, i, integer_labels) for i, batch in enumerate(data))


@torch.no_grad()
def accuracy(model: nn.Module, data: Data) -> float:
    """Top-1 accuracy in % of ``model`` on ``(x, y)`` tensors or an iterable of batches.

    ``data`` is checked (:func:`check_data`): not an (x, y) pair or batches of pairs, labels that are
    not integers: TypeError naming ``data``; labels that do not fit the inputs or the predictions:
    ValueError."""
    batches = check_data(data)
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for x, y in batches:
            pred = model(x).argmax(dim=-1)
            if pred.shape != y.shape:
                raise ValueError(f"data: labels y of shape {tuple(y.shape)} do not fit the model's predictions "
                                 f"of shape {tuple(pred.shape)}; allowed: {_DATA_ALLOWED}")
            correct += int((pred == y).sum())
            total += int(y.numel())
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("accuracy: the data has no samples")
    return 100.0 * correct / total


def cell_generator(seed: int, repeat: int, stream: int) -> torch.Generator:
    """The generator of one cell of a seeded drift experiment (docs/physics.md §2's evaluation protocol).

    ``stream`` 0 is the programming of repeat ``repeat``; stream ``1 + i`` drifts it to the i-th time
    and draws that evaluation's read and forward noise. Each (seed, repeat, stream) gets an independent
    stream (numpy's SeedSequence hashing), so any cell can be computed alone: that is what lets
    :func:`evaluate_over_time` split its grid over processes and still give the single-process table.
    """
    words = np.random.SeedSequence([seed & (2 ** 64 - 1), repeat, stream]).generate_state(1, dtype=np.uint64)
    return torch.Generator().manual_seed(int(words[0]) & (2 ** 63 - 1))


@torch.no_grad()
def evaluate_over_time(model: nn.Module, data: Data, times: Sequence[float] = TIMES, repeats: int = 5,
                       reprogram: bool = True, seed: int = 0,
                       metric: Callable[[nn.Module, Data], float] = accuracy,
                       progress: Union[bool, Callable[[int, int], None]] = False,
                       raw: bool = False, distributed: bool = False, group=None) -> pd.DataFrame:
    """Accuracy (or ``metric``) at each time, over ``repeats`` programming/read-noise instances.

    With ``reprogram`` every repeat programs the model anew (a new programming-noise instance);
    otherwise one programming is drifted ``repeats`` times (read noise only). Randomness is seeded
    per cell of the (repeat × time) grid (:func:`cell_generator`), so the table depends on ``seed``
    only. ``progress``: True for a tqdm bar, or a callable ``(done, total)``. Returns a tidy table
    with columns ``time_s, time, mean, std, n`` (or, with ``raw=True``, one row per
    ``time_s, repeat, value``). The model is left unprogrammed. With the default ``metric``, ``data``
    is checked first as by :func:`accuracy`.

    ``distributed=True`` (inside a torch.distributed process group, e.g. under ``torchrun``): every
    rank calls this with the same model, data and arguments; the grid is split into contiguous
    chunks, one per rank, and every rank returns the whole table, identical to the single-process
    table for the same seed. Without a process group (or with one rank) it is the plain call.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats = {repeats!r} is invalid; allowed: an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed = {seed!r} is invalid; allowed: an integer")
    if not isinstance(distributed, bool):
        raise TypeError(f"distributed = {distributed!r} is invalid; allowed: True or False")
    if metric is accuracy:  # another metric decides what its data looks like
        check_data(data)
    times = [check_time(t) for t in times]
    if not times:
        raise ValueError("times is empty; give at least one inference time in seconds")
    all_tiles = _all_tiles(model)
    cells = [(r, i) for r in range(repeats) for i in range(len(times))]
    rank, size = _dist.rank_and_size(group) if distributed else (0, 1)
    start, stop = (len(cells) * rank) // size, (len(cells) * (rank + 1)) // size
    mine = cells[start:stop]
    bar = None
    if progress is True and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(mine), desc="drift")
    rows = []
    saved_generators = [tile.generator for tile in all_tiles]
    programmed_as = None
    try:
        for r, i in mine:
            instance = r if reprogram else 0
            if instance != programmed_as:
                program_stream = cell_generator(seed, instance, 0)
                for tile in all_tiles:
                    tile.generator = program_stream  # the reference read-out of drift compensation too
                    tile.program(program_stream)
                programmed_as = instance
            stream = cell_generator(seed, r, 1 + i)
            for tile in all_tiles:
                tile.generator = stream  # read-out of drift compensation and forward noise: the cell's stream
                tile.drift(times[i], stream)
            rows.append({"time_s": times[i], "repeat": r, "value": float(metric(model, data))})
            if bar is not None:
                bar.update(1)
            elif callable(progress):
                progress(len(rows), len(mine))
    finally:
        if bar is not None:
            bar.close()
        for tile, gen in zip(all_tiles, saved_generators):
            tile.unprogram()
            tile.generator = gen
    if distributed:
        rows = _dist.gather_lists(rows, group)
    table = pd.DataFrame(rows)
    if raw:
        return table
    summary = table.groupby("time_s")["value"].agg(["mean", "std", "count"]).reset_index()
    summary = summary.rename(columns={"count": "n"}).fillna({"std": 0.0})
    summary.insert(1, "time", [time_label(t) for t in summary["time_s"]])
    return summary
