"""``analog_summary``: the tiles of a converted model, with the cost of one inference beside them.

Per tile: layer name and type, logical N x K, tile grid S x T, physical shape, utilisation, and from
:mod:`aimc_lab.cost` (docs/cost.md) the MVMs per inference, energy, latency and TOPS/W; totals at the
bottom. ``print(analog_summary(model, input_shape=(1, 64)))`` shows the table; without
``input_shape`` every tile counts one MVM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from torch import nn

from aimc_lab.cost.estimate import count_mvms, network_totals
from aimc_lab.cost.model import COMPONENTS, mvm_cost
from aimc_lab.cost.params import CostParameters
from aimc_lab.nn.container import named_analog_tiles

__all__ = ["analog_summary", "AnalogSummary", "SummaryRow", "format_si"]

_PREFIXES = ((1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, ""), (1e3, "k"),
             (1e6, "M"), (1e9, "G"))


def format_si(value: float, unit: str) -> str:
    """``value`` with an SI prefix and 3 significant digits: format_si(1.24e-8, "J") == "12.4 nJ"."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    scale, prefix = _PREFIXES[0]
    for s, p in _PREFIXES:
        if abs(value) >= s:
            scale, prefix = s, p
    return f"{value / scale:.3g} {prefix}{unit}"


@dataclass(frozen=True)
class SummaryRow:
    """One tile: logical [N, K] on an S x T grid of max_in x max_out physical tiles, and its cost for
    ``mvms`` MVMs per inference (energy in J, latency in s, area in mm^2, ``breakdown`` J per component)."""

    name: str  # the layer's qualified name ("" for the model itself)
    tile: str  # the tile's attribute in the layer ("tile", "tile_ih", "tile_hh")
    layer_type: str
    out_features: int  # N
    in_features: int  # K
    grid: Tuple[int, int]  # (S along K, T along N)
    max_in: int
    max_out: int
    mvms: int = 1
    ops: float = 0.0
    energy_j: float = 0.0
    latency_s: float = 0.0
    area_mm2: float = 0.0
    breakdown: Tuple[Tuple[str, float], ...] = ()

    @property
    def label(self) -> str:
        """The layer name, with the tile for layers of several tiles."""
        return (self.name or "<model>") + ("" if self.tile in ("tile", "") else f" [{self.tile}]")

    @property
    def physical_shape(self) -> Tuple[int, int]:
        """(S·max_in rows, T·max_out columns)."""
        return self.grid[0] * self.max_in, self.grid[1] * self.max_out

    @property
    def utilisation(self) -> float:
        """N·K / (S·T·max_in·max_out), in [0, 1]."""
        rows, cols = self.physical_shape
        return self.out_features * self.in_features / (rows * cols)

    @property
    def tops_per_w(self) -> float:
        return self.ops / self.energy_j / 1e12 if self.energy_j > 0 else math.inf


@dataclass(frozen=True)
class AnalogSummary:
    """The tiles of a model and the cost of one inference; ``str()`` gives a table with totals."""

    rows: Tuple[SummaryRow, ...]
    input_shape: Optional[Tuple[int, ...]] = None

    @property
    def n_layers(self) -> int:
        return len({r.name for r in self.rows})

    @property
    def n_physical_tiles(self) -> int:
        return sum(r.grid[0] * r.grid[1] for r in self.rows)

    @property
    def n_weights(self) -> int:
        return sum(r.out_features * r.in_features for r in self.rows)

    @property
    def n_cells(self) -> int:
        """Physical cross-points (weight pairs) available on all tiles."""
        return sum(math.prod(r.physical_shape) for r in self.rows)

    @property
    def utilisation(self) -> float:
        return self.n_weights / self.n_cells if self.n_cells else 0.0

    @property
    def totals(self) -> dict:
        """Energy (J), ops, latency (s), area (mm^2), TOPS/W, TOPS/mm^2 and breakdown (J) of one inference."""
        return network_totals([_as_cost_dict(r) for r in self.rows])

    @property
    def energy_j(self) -> float:
        return self.totals["energy_j"]

    @property
    def latency_s(self) -> float:
        return self.totals["latency_s"]

    @property
    def area_mm2(self) -> float:
        return self.totals["area_mm2"]

    @property
    def tops_per_w(self) -> float:
        return self.totals["tops_per_w"]

    @property
    def tops_per_mm2(self) -> float:
        return self.totals["tops_per_mm2"]

    def __str__(self) -> str:
        header = ("layer", "type", "logical N x K", "tiles S x T", "physical in x out", "utilisation", "MVMs",
                  "energy", "latency", "TOPS/W")
        lines = [(r.label, r.layer_type, f"{r.out_features} x {r.in_features}", f"{r.grid[0]} x {r.grid[1]}",
                  f"{r.physical_shape[0]} x {r.physical_shape[1]}", f"{100 * r.utilisation:.1f} %", str(r.mvms),
                  format_si(r.energy_j, "J"), format_si(r.latency_s, "s"), f"{r.tops_per_w:.3g}")
                 for r in self.rows]
        t = self.totals
        total = ("total", f"{self.n_layers} layers", f"{self.n_weights} weights",
                 f"{self.n_physical_tiles} tiles", f"{self.n_cells} cells", f"{100 * self.utilisation:.1f} %",
                 str(sum(r.mvms for r in self.rows)), format_si(t["energy_j"], "J"), format_si(t["latency_s"], "s"),
                 f"{t['tops_per_w']:.3g}")
        widths = [max(len(row[i]) for row in [header, total, *lines]) for i in range(len(header))]

        def fmt(row):
            return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

        rule = "-" * len(fmt(header))
        per = (f"per forward pass of an input of shape {self.input_shape}" if self.input_shape is not None
               else "one MVM per tile (give input_shape for a whole inference)")
        note = (f"cost ({per}; docs/cost.md): area {t['area_mm2']:.3g} mm², "
                f"{t['tops_per_mm2']:.3g} TOPS/mm²; energy " + ", ".join(
                    f"{k} {100 * v / t['energy_j']:.0f} %" for k, v in t["breakdown"].items()) if t["energy_j"] > 0
                else "")
        return "\n".join([fmt(header), rule, *map(fmt, lines), rule, fmt(total), note]).rstrip()

    def __repr__(self) -> str:
        return str(self)


def _as_cost_dict(r: SummaryRow) -> dict:
    out = {"energy_j": r.energy_j, "ops": r.ops, "latency_s": r.latency_s, "area_mm2": r.area_mm2}
    parts = dict(r.breakdown)
    for k in COMPONENTS:
        out[f"energy_{k}_j"] = parts.get(k, 0.0)
    return out


def analog_summary(model: nn.Module, input_shape: Optional[Sequence[int]] = None,
                   params: Optional[CostParameters] = None, *, passes: Optional[float] = None) -> AnalogSummary:
    """Per tile: layer name (with ``[tile_ih]``/``[tile_hh]`` for recurrent cells) and type, logical
    shape N x K, tile grid S x T, physical shape S·max_in x T·max_out, utilisation, and the cost of one
    inference (:mod:`aimc_lab.cost`, docs/cost.md): MVMs, energy, latency, TOPS/W; totals at the bottom.

    Args:
        model: a converted model (left unchanged).
        input_shape: shape of one input including its batch dimension, e.g. (1, 64); None counts one MVM
            per tile.
        params: the cost model's numbers (default ``CostParameters()``).
        passes: mean bound-management passes per MVM (see :func:`aimc_lab.cost.mvm_cost`).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    params = CostParameters() if params is None else params
    if not isinstance(params, CostParameters):
        raise TypeError(f"analog_summary: params must be a CostParameters or None, got {type(params).__name__}")
    counts = count_mvms(model, input_shape) if input_shape is not None else None
    rows = []
    for name, tile in named_analog_tiles(model):
        layer_name, _, attr = name.rpartition(".")
        layer = model.get_submodule(layer_name) if layer_name else model
        mapping = tile.config.mapping  # the grid of tile.physical_grid, for every tile type
        S = math.ceil(tile.in_features / mapping.max_input_size)
        T = math.ceil(tile.out_features / mapping.max_output_size)
        mvms = counts[name] if counts is not None else 1
        cost = mvm_cost(tile.config, tile.in_features, tile.out_features, params, passes=passes).times(mvms)
        rows.append(SummaryRow(layer_name, attr, type(layer).__name__, tile.out_features, tile.in_features, (S, T),
                               mapping.max_input_size, mapping.max_output_size, mvms, cost.ops, cost.energy_j,
                               cost.latency_s, cost.area_mm2, tuple(cost.breakdown.items())))
    return AnalogSummary(tuple(rows), tuple(input_shape) if input_shape is not None else None)
