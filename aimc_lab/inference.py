"""Inference over time (PHYSICS §2 workflow): program once, drift to t, evaluate, repeat.

``program(model)`` applies programming noise once and samples drift exponents for every analog tile;
``drift(model, t)`` starts each tile again from its programmed state and applies drift and fresh read
noise at t seconds (and recomputes drift compensation); ``evaluate_over_time`` runs the whole
experiment and returns a tidy table.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator, Optional, Sequence, Tuple, Union

import pandas as pd
import torch
from torch import Tensor, nn

from aimc_lab.devices.base import check_time
from aimc_lab.tile import AnalogTile

__all__ = ["tiles", "program", "drift", "unprogram", "accuracy", "evaluate_over_time", "TIMES", "time_label"]

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
    """Every programmable analog tile in ``model``."""
    for module in model.modules():
        if isinstance(module, AnalogTile):
            yield module


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


@torch.no_grad()
def accuracy(model: nn.Module, data: Data) -> float:
    """Top-1 accuracy in % of ``model`` on ``(x, y)`` tensors or an iterable of batches."""
    batches = [data] if isinstance(data, tuple) and isinstance(data[0], Tensor) else data
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for x, y in batches:
            pred = model(x).argmax(dim=-1)
            correct += int((pred == y).sum())
            total += int(y.numel())
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("accuracy: the data has no samples")
    return 100.0 * correct / total


@torch.no_grad()
def evaluate_over_time(model: nn.Module, data: Data, times: Sequence[float] = TIMES, repeats: int = 5,
                       reprogram: bool = True, seed: int = 0,
                       metric: Callable[[nn.Module, Data], float] = accuracy,
                       progress: Union[bool, Callable[[int, int], None]] = False,
                       raw: bool = False) -> pd.DataFrame:
    """Accuracy (or ``metric``) at each time, over ``repeats`` programming/read-noise instances.

    With ``reprogram`` every repeat programs the model anew (a new programming-noise instance);
    otherwise one programming is drifted ``repeats`` times (read noise only). Randomness comes from
    one generator seeded with ``seed``. ``progress``: True for a tqdm bar, or a callable
    ``(done, total)``. Returns a tidy table with columns ``time_s, time, mean, std, n`` (or, with
    ``raw=True``, one row per ``time_s, repeat, value``). The model is left unprogrammed.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats = {repeats!r} is invalid; allowed: an integer >= 1")
    times = [check_time(t) for t in times]
    if not times:
        raise ValueError("times is empty; give at least one inference time in seconds")
    all_tiles = _all_tiles(model)
    generator = torch.Generator().manual_seed(seed)
    total = repeats * len(times)
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="drift")
    rows = []
    saved_generators = [tile.generator for tile in all_tiles]
    for tile in all_tiles:
        tile.generator = generator  # forward noise from the same seeded stream
    try:
        for r in range(repeats):
            if reprogram or r == 0:
                for tile in all_tiles:
                    tile.program(generator)
            for t in times:
                for tile in all_tiles:
                    tile.drift(t, generator)
                rows.append({"time_s": t, "repeat": r, "value": float(metric(model, data))})
                if bar is not None:
                    bar.update(1)
                elif callable(progress):
                    progress(len(rows), total)
    finally:
        if bar is not None:
            bar.close()
        for tile, gen in zip(all_tiles, saved_generators):
            tile.unprogram()
            tile.generator = gen
    table = pd.DataFrame(rows)
    if raw:
        return table
    summary = table.groupby("time_s")["value"].agg(["mean", "std", "count"]).reset_index()
    summary = summary.rename(columns={"count": "n"}).fillna({"std": 0.0})
    summary.insert(1, "time", [time_label(t) for t in summary["time_s"]])
    return summary
