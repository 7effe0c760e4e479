"""The cost of a whole converted network: one row per tile (layer), then totals (docs/cost.md).

The number of MVMs each tile runs per inference comes from a forward pass of a zero input of
``input_shape`` in which every tile's MVM is replaced by zeros of the right shape: no noise is drawn,
no generator advances and no state changes, so the model is left exactly as it was. A Linear layer
on a [B, K] input runs B MVMs, a convolution one per output pixel, a recurrent cell one per time
step on each of its tiles. Without ``input_shape`` every tile counts one MVM.
"""

from __future__ import annotations

import math
import numbers
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor, nn

from aimc_lab.config import IOParameters
from aimc_lab.cost.model import COMPONENTS, MVMCost, mvm_cost
from aimc_lab.cost.params import CostParameters
from aimc_lab.nn.container import named_analog_tiles

__all__ = ["estimate", "count_mvms", "bound_management_passes", "network_totals"]


def _check_shape(input_shape) -> tuple:
    if (not isinstance(input_shape, (tuple, list, torch.Size)) or len(input_shape) == 0
            or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in input_shape)):
        raise ValueError(f"input_shape = {input_shape!r} is invalid; allowed: a tuple of integers >= 1, the shape "
                         "of one model input including its batch dimension, e.g. (1, 64)")
    return tuple(int(d) for d in input_shape)


@torch.no_grad()
def count_mvms(model: nn.Module, input_shape: Sequence[int]) -> Dict[str, int]:
    """MVMs (input rows) each tile of ``model`` runs for one forward pass of a ``input_shape`` input,
    keyed by the tile's qualified name. The tiles' MVMs are skipped (zeros come out), so the count costs
    little and leaves the model unchanged (train mode, generators, input ranges)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    shape = _check_shape(input_shape)
    tiles = list(named_analog_tiles(model))
    counts = {name: 0 for name, _ in tiles}
    ref = next(iter(model.parameters()), None)
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.get_default_dtype()
    device = ref.device if ref is not None else torch.device("cpu")
    modes = {m: m.training for m in model.modules()}

    def skipped(name: str, n_out: int):
        def forward(x: Tensor) -> Tensor:
            counts[name] += x.numel() // max(x.shape[-1], 1)
            return x.new_zeros(*x.shape[:-1], n_out)

        return forward

    try:
        for name, tile in tiles:
            tile.forward = skipped(name, tile.out_features)
        model.eval()
        model(torch.zeros(shape, dtype=dtype, device=device))
    finally:
        for _, tile in tiles:
            tile.__dict__.pop("forward", None)
        for m, mode in modes.items():
            m.training = mode
    return counts


def _scale(io: IOParameters, x: Tensor) -> Tensor:
    """The noise-management scale α per row (docs/physics.md §1 step 1); 1 where α <= 0."""
    if io.noise_management == "abs_max":
        a = x.abs().amax(dim=-1)
        if io.nm_thres > 0:
            a = a.clamp(max=io.nm_thres)
    elif io.noise_management == "max":
        a = x.amax(dim=-1)
        a = torch.where(a > 0, a, x.abs().amax(dim=-1))
    elif io.noise_management == "constant":
        a = torch.full(x.shape[:-1], io.nm_thres, dtype=x.dtype)
    else:
        a = torch.ones(x.shape[:-1], dtype=x.dtype)
    return torch.where(a > 0, a, torch.ones_like(a))


@torch.no_grad()
def bound_management_passes(x: Tensor, w: Tensor, io: IOParameters, in_size: Optional[int] = None) -> float:
    """Mean passes per MVM that iterative bound management needs for inputs ``x`` [M, K] on weights
    ``w`` [N, K] (normalized, |w| <= 1), without noise: pass k (k = 0, 1, ...) scales the inputs by
    1/(α·2^k), quantizes and clips them, and is the last one when no quantized output of the row reaches
    ±out_bound or 2^k hits the loop's limit (docs/physics.md §1 steps 2-8). Each input tile of ``in_size``
    rows decides for itself, as the simulator does; the mean is over rows and input tiles. 1.0 when
    bound management is off."""
    if not isinstance(io, IOParameters):
        raise TypeError(f"bound_management_passes: io must be an IOParameters, got {type(io).__name__}")
    if not (isinstance(x, Tensor) and isinstance(w, Tensor) and x.dim() == 2 and w.dim() == 2
            and x.shape[1] == w.shape[1]):
        raise ValueError("bound_management_passes: x must be a tensor [M, K] and w a tensor [N, K], got "
                         f"{tuple(getattr(x, 'shape', ()))} and {tuple(getattr(w, 'shape', ()))}")
    if io.bound_management != "iterative" or io.is_perfect:
        return 1.0
    K = x.shape[1]
    size = K if in_size is None else int(in_size)
    if size < 1:
        raise ValueError(f"bound_management_passes: in_size = {in_size!r} is invalid; allowed: an integer >= 1")
    k_max = 0  # largest k with 2^k <= max_bm_factor and 2^k·Δ_in <= max_bm_res, as the simulator
    while 2 ** (k_max + 1) <= io.max_bm_factor and (io.inp_step <= 0
                                                    or 2 ** (k_max + 1) * io.inp_step <= io.max_bm_res):
        k_max += 1
    in_step, out_step = io.inp_step, io.out_step
    x, w = x.double(), w.double()
    total, count = 0.0, 0
    for start in range(0, K, size):
        xs, ws = x[:, start:start + size], w[:, start:start + size]
        alpha = _scale(io, xs)  # [M]
        passes = torch.ones(xs.shape[0], dtype=torch.float64)
        pending = xs.abs().amax(dim=-1) > 0
        for k in range(k_max + 1):
            u = xs / (alpha * 2 ** k).unsqueeze(-1)
            if in_step > 0:
                u = torch.sign(u) * torch.floor(u.abs() / in_step + 0.5) * in_step
            z = u.clamp(-io.inp_bound, io.inp_bound) @ ws.T
            if out_step > 0:
                z = torch.sign(z) * torch.floor(z.abs() / out_step + 0.5) * out_step
            saturated = (z.clamp(-io.out_bound, io.out_bound).abs() >= io.out_bound).any(dim=-1)
            passes = torch.where(pending, torch.full_like(passes, k + 1.0), passes)
            pending = pending & saturated
            if not bool(pending.any()):
                break
        total += float(passes.sum())
        count += xs.shape[0]
    return total / count if count else 1.0


def _row(name: str, attr: str, layer_type: str, tile: nn.Module, mvms: int, cost: MVMCost) -> dict:
    total = cost.times(mvms)
    row = {"layer": name or "<model>", "tile": attr, "type": layer_type, "out_features": tile.out_features,
           "in_features": tile.in_features, "tiles": cost.n_tiles, "grid": f"{cost.grid[0]} x {cost.grid[1]}",
           "adc_bits": cost.adc_bits, "dac_bits": cost.dac_bits, "passes": cost.passes, "mvms": mvms,
           "ops": total.ops, "energy_j": total.energy_j, "latency_s": total.latency_s,
           "area_mm2": total.area_mm2}
    for k in COMPONENTS:
        row[f"energy_{k}_j"] = total.breakdown[k]
    row["tops_per_w"] = total.tops_per_w
    row["tops_per_mm2"] = total.tops_per_mm2
    return row


def network_totals(rows) -> dict:
    """Totals over per-tile rows (dicts as :func:`estimate` makes): energy, ops and area add; layers run
    one after the other for one inference, so latencies add too."""
    energy = sum(r["energy_j"] for r in rows)
    ops = sum(r["ops"] for r in rows)
    latency = sum(r["latency_s"] for r in rows)
    area = sum(r["area_mm2"] for r in rows)
    out = {"energy_j": energy, "ops": ops, "latency_s": latency, "area_mm2": area,
           "tops_per_w": ops / energy / 1e12 if energy > 0 else math.inf,
           "tops_per_mm2": ops / latency / 1e12 / area if latency > 0 and area > 0 else math.inf,
           "breakdown": {k: sum(r[f"energy_{k}_j"] for r in rows) for k in COMPONENTS}}
    return out


def estimate(model: nn.Module, input_shape: Optional[Sequence[int]] = None, params: Optional[CostParameters] = None,
             *, passes: Optional[float] = None, mvms: Optional[Dict[str, int]] = None):
    """Cost of one inference of a converted network, as a pandas DataFrame.

    One row per tile (Linear, Conv, and each of a recurrent cell's ``tile_ih``/``tile_hh``), with the
    same tiling as the simulator, then a row ``layer == "total"``. Columns: layer, tile, type,
    out_features, in_features, tiles (physical), grid (S x T), adc_bits, dac_bits, passes, mvms (per
    inference), ops, energy_j, latency_s, area_mm2, energy_<component>_j for dac, array, adc, digital,
    sram, tops_per_w and tops_per_mm2. ``df.attrs["totals"]`` holds the totals as a dict (with
    ``breakdown``).

    Args:
        model: a model converted with :func:`aimc_lab.convert_to_analog` (left unchanged).
        input_shape: shape of one input including the batch dimension, e.g. (1, 64) or (1, 1, 8, 8); the
            costs are per forward pass of it. None: one MVM per tile.
        params: the cost model's numbers (default ``CostParameters()``).
        passes: mean bound-management passes per MVM for every tile (see :func:`mvm_cost`).
        mvms: MVMs per tile as :func:`count_mvms` returns them, to skip counting again (e.g. when only
            ``params`` change); ``input_shape`` is then not used.
    """
    import pandas as pd

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    params = CostParameters() if params is None else params
    if not isinstance(params, CostParameters):
        raise TypeError(f"estimate: params must be a CostParameters or None, got {type(params).__name__}")
    tiles = list(named_analog_tiles(model))
    if mvms is not None:
        if not isinstance(mvms, dict) or set(mvms) != {name for name, _ in tiles}:
            raise ValueError("estimate: mvms must be a dict with an entry per tile of the model, as count_mvms "
                             f"returns; got {mvms!r:.200}")
        counts = mvms
    elif input_shape is not None:
        counts = count_mvms(model, input_shape)
    else:
        counts = {name: 1 for name, _ in tiles}
    rows = []
    for name, tile in tiles:
        layer_name, _, attr = name.rpartition(".")
        layer = model.get_submodule(layer_name) if layer_name else model
        cost = mvm_cost(tile.config, tile.in_features, tile.out_features, params, passes=passes)
        rows.append(_row(layer_name, attr, type(layer).__name__, tile, counts[name], cost))
    totals = network_totals(rows)
    total_row = {"layer": "total", "tile": "", "type": "", "out_features": None, "in_features": None,
                 "tiles": sum(r["tiles"] for r in rows), "grid": "", "adc_bits": None, "dac_bits": None,
                 "passes": None, "mvms": sum(r["mvms"] for r in rows), "ops": totals["ops"],
                 "energy_j": totals["energy_j"], "latency_s": totals["latency_s"], "area_mm2": totals["area_mm2"],
                 **{f"energy_{k}_j": v for k, v in totals["breakdown"].items()},
                 "tops_per_w": totals["tops_per_w"], "tops_per_mm2": totals["tops_per_mm2"]}
    df = pd.DataFrame(rows + [total_row])
    df.attrs["totals"] = totals
    return df
