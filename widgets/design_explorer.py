"""DesignExplorer (the Design lab): accuracy after drift against energy per inference, over a sweep of
ADC bits x DAC bits x tile size, with the Pareto front and a per-layer energy breakdown.

The network is the Drift lab's hardware-aware digits MLP (64-16-16-16-10, the pretrained pair shipped
as ``digit_models.pt``; see :mod:`aimc_lab.widgets.drift_explorer`). For each design point the trained
analog state is loaded into a model converted with that point's config (the HWA config with the
point's ``forward.inp_res``/``out_res`` and ``mapping`` tile size), programmed, drifted to
``t_eval`` (1 day) and evaluated with :func:`aimc_lab.evaluate_over_time`; its energy per inference
comes from :func:`aimc_lab.cost.estimate` (docs/cost.md). Accuracies arrive one point at a time
(progress bar, the plot grows as it sweeps); energies are analytic, so the "ADC energy ×" control
(which scales the ADC's figure of merit and floor) moves every point at once without re-simulating.
The "inspect" menu picks a point; the right plot shows its energy per layer and component.

The accuracies of the default sweep on the shipped models are shipped too (``design_sweep.pt``, made by
:func:`save_design_sweep` with this module's own code), so the first render takes a second or two;
points not in it (another grid, seed, time or number of repeats, or other models) are simulated live.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor, nn

from aimc_lab.config import AnalogConfig, replace_path
from aimc_lab.convert import convert_to_analog
from aimc_lab.cost import COMPONENTS, CostParameters, estimate
from aimc_lab.inference import accuracy, evaluate_over_time, tiles, time_label
from aimc_lab.nn.container import named_analog_tiles
from aimc_lab.widgets._figure import Figure
from aimc_lab.widgets._util import SLIDER_LAYOUT, SLIDER_STYLE, backend_badge, bits_to_res
from aimc_lab.widgets.drift_explorer import load_digit_models

__all__ = ["DesignExplorer", "DesignPoint", "pareto_front", "save_design_sweep", "load_design_sweep"]

ONE_DAY = 86400.0
SWEEP = Path(__file__).with_name("design_sweep.pt")
FULL_GRID = {"adc_bits": (4, 5, 6, 8, 10), "dac_bits": (4, 6, 8), "tile_sizes": (16, 32, 64)}
FAST_GRID = {"adc_bits": (4, 6, 8), "dac_bits": (4, 8), "tile_sizes": (16, 64)}
DEFAULT_REPEATS = 3
COMPONENT_COLORS = {"dac": "#9467bd", "array": "#8c564b", "adc": "#d62728", "digital": "#1f77b4",
                    "sram": "#7f7f7f"}
TILE_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross")


@dataclasses.dataclass
class DesignPoint:
    """One design: converter bits and tile size, its accuracy (mean, std over repeats) and cost table."""

    adc_bits: int
    dac_bits: int
    tile_size: int
    accuracy: float = float("nan")
    accuracy_std: float = float("nan")
    table: Optional[object] = None  # the pandas DataFrame of aimc_lab.cost.estimate

    @property
    def label(self) -> str:
        return f"ADC {self.adc_bits} b · DAC {self.dac_bits} b · tile {self.tile_size}"

    @property
    def energy_j(self) -> float:
        return float(self.table.attrs["totals"]["energy_j"]) if self.table is not None else float("nan")


def pareto_front(energy: Sequence[float], accuracy: Sequence[float]) -> List[int]:
    """Indices of the points no other point beats (less or equal energy and higher accuracy, or less
    energy and equal accuracy), ordered by energy; NaN points are left out."""
    order = sorted((i for i in range(len(energy)) if np.isfinite(energy[i]) and np.isfinite(accuracy[i])),
                   key=lambda i: (energy[i], -accuracy[i]))
    front, best = [], -np.inf
    for i in order:
        if accuracy[i] > best:
            front.append(i)
            best = accuracy[i]
    return front


def _key(adc_bits: int, dac_bits: int, tile_size: int, repeats: int, seed: int, t_eval: float) -> str:
    return f"adc{adc_bits}-dac{dac_bits}-tile{tile_size}-r{repeats}-s{seed}-t{t_eval:g}"


def load_design_sweep(path=SWEEP) -> Dict[str, Tuple[float, float]]:
    """The shipped accuracies: key (see ``_key``) -> (mean %, std %); empty if the file is missing."""
    path = Path(path)
    if not path.exists():
        return {}
    stored = torch.load(path, weights_only=True)
    return {k: (float(v[0]), float(v[1])) for k, v in stored["accuracy"].items()}


def save_design_sweep(path=SWEEP, repeats: int = DEFAULT_REPEATS, seed: int = 0, t_eval: float = ONE_DAY) -> None:
    """Run the full default sweep on the shipped digits models live and store its accuracies at ``path``:
    how the shipped ``design_sweep.pt`` is made."""
    explorer = DesignExplorer(**FULL_GRID, repeats=repeats, seed=seed, t_eval=t_eval, run=False, cached=False)
    explorer.run()
    accuracy = {_key(p.adc_bits, p.dac_bits, p.tile_size, repeats, seed, t_eval): [p.accuracy, p.accuracy_std]
                for p in explorer.points}
    torch.save({"protocol": "DesignExplorer(**FULL_GRID, cached=False).run() on load_digit_models()",
                "accuracy": accuracy}, path)


def _design_config(base: AnalogConfig, adc_bits: int, dac_bits: int, tile_size: int) -> AnalogConfig:
    config = replace_path(base, "forward.out_res", bits_to_res(adc_bits))
    config = replace_path(config, "forward.inp_res", bits_to_res(dac_bits))
    config = replace_path(config, "mapping.max_input_size", tile_size)
    return replace_path(config, "mapping.max_output_size", tile_size)


def _load_trained(model: nn.Module, state: Dict[str, Tensor]) -> nn.Module:
    """Load the trained analog state into ``model``, whose tiles may be cut differently: a learned input
    range per input tile takes the trained value of the tile it came from (one range per layer in the
    shipped model); map/drift buffers are recomputed at programming."""
    own = model.state_dict()
    adapted = {}
    for key, value in state.items():
        if key not in own:
            continue
        if own[key].shape == value.shape:
            adapted[key] = value
        elif key.endswith("input_range") and value.numel() >= 1:
            slices = own[key].numel()
            index = torch.arange(slices) * value.numel() // slices
            adapted[key] = value.reshape(-1)[index]
    missing = {k: v for k, v in own.items() if k not in adapted}
    adapted.update(missing)
    model.load_state_dict(adapted)
    return model


class DesignExplorer(W.VBox):
    """Design lab: sweep ADC bits x DAC bits x tile size; accuracy after ``t_eval`` vs energy per inference.

    ``DesignExplorer(adc_bits=None, dac_bits=None, tile_sizes=None, repeats=None, t_eval=86400, seed=0,
    fast=None, run=True, models=None, cached=True)``: the defaults sweep 5 x 3 x 3 points (``fast`` or
    ``AIMC_LAB_FAST=1``: 3 x 2 x 2) with 3 noise repeats each; ``models`` = ``(fp_model, hwa_model, test_data)`` to use
    another network than the shipped digits pair (an analog ``hwa_model`` converted from ``fp_model``'s
    architecture). ``run=False`` builds the view only; call :meth:`run` later (e.g. in the next notebook
    cell, so the progress bar shows). ``cached``: take the accuracies of points in the shipped sweep from
    it (shipped models only). ``points`` holds every :class:`DesignPoint` after a run.
    """

    def __init__(self, adc_bits: Optional[Sequence[int]] = None, dac_bits: Optional[Sequence[int]] = None,
                 tile_sizes: Optional[Sequence[int]] = None, repeats: Optional[int] = None, t_eval: float = ONE_DAY,
                 seed: int = 0, fast: Optional[bool] = None, run: bool = True,
                 models: Optional[Tuple[nn.Module, nn.Module, Tuple[Tensor, Tensor]]] = None,
                 cached: bool = True) -> None:
        self.fast = os.environ.get("AIMC_LAB_FAST", "0") == "1" if fast is None else bool(fast)
        grid = FAST_GRID if self.fast else FULL_GRID
        self.adc_bits = tuple(adc_bits or grid["adc_bits"])
        self.dac_bits = tuple(dac_bits or grid["dac_bits"])
        self.tile_sizes = tuple(tile_sizes or grid["tile_sizes"])
        for name, values, lo, hi in (("adc_bits", self.adc_bits, 2, 16), ("dac_bits", self.dac_bits, 2, 16),
                                     ("tile_sizes", self.tile_sizes, 1, 1 << 20)):
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi for v in values):
                raise ValueError(f"DesignExplorer: {name} = {values!r} is invalid; allowed: integers in [{lo}, {hi}]")
        self.t_eval, self.seed = float(t_eval), int(seed)
        self.models = models
        self._built: Dict[Tuple[int, int, int], nn.Module] = {}
        self.fp_accuracy: Optional[float] = None
        self.cache = load_design_sweep() if cached and models is None else {}
        self.points: List[DesignPoint] = [DesignPoint(a, d, t) for t in self.tile_sizes for d in self.dac_bits
                                          for a in self.adc_bits]
        self.params = CostParameters()
        self.progress = W.IntProgress(value=0, min=0, max=len(self.points), description="",
                                      bar_style="info", layout=W.Layout(width="380px"))
        self.status = W.HTML("<small>not run yet</small>")
        self.controls = {
            "adc_scale": W.FloatLogSlider(value=1.0, base=2, min=-3, max=3, step=0.5, description="ADC energy ×",
                                          continuous_update=False, style=SLIDER_STYLE, layout=SLIDER_LAYOUT),
            "repeats": W.IntSlider(value=repeats or DEFAULT_REPEATS, min=1, max=10,
                                   description="noise repeats", continuous_update=False, style=SLIDER_STYLE,
                                   layout=SLIDER_LAYOUT),
            "inspect": W.Dropdown(options=[(p.label, i) for i, p in enumerate(self.points)], value=0,
                                  description="inspect", style=SLIDER_STYLE, layout=W.Layout(width="420px")),
        }
        self.controls["adc_scale"].observe(self._on_adc_scale, names="value")
        self.controls["repeats"].observe(lambda change: self.run(), names="value")
        self.controls["inspect"].observe(lambda change: self._draw_selection(), names="value")
        self.figure = self._make_scatter()
        self.breakdown = self._make_breakdown()
        controls = W.VBox([W.HBox([self.controls["adc_scale"], self.controls["repeats"]]),
                           W.HBox([self.controls["inspect"], self.progress, self.status])])
        intro = W.HTML(f"<small>digits MLP 64-16-16-16-10, hardware-aware trained, PCM drift to "
                       f"{time_label(self.t_eval)} with global drift compensation; energy from the cost model "
                       "of docs/cost.md</small>")
        super().__init__([W.HTML("<h3 style='margin:4px 0'>Design lab</h3>"), backend_badge(), intro, controls,
                          W.HBox([self.figure, self.breakdown])])
        if run:
            self.run()

    # -- computation ------------------------------------------------------------------------------

    def _ensure_models(self) -> None:
        if self.models is None:
            fp, hwa, _, test = load_digit_models()
            self.models = (fp, hwa, test)

    def _cost_params(self) -> CostParameters:
        k = float(self.controls["adc_scale"].value)
        base = CostParameters()
        return dataclasses.replace(base, adc_fom=base.adc_fom * k, adc_energy_floor=base.adc_energy_floor * k)

    def _build(self, point: DesignPoint) -> nn.Module:
        """The analog model of ``point`` (built once, kept for re-estimating its cost)."""
        key = (point.adc_bits, point.dac_bits, point.tile_size)
        if key in self._built:
            return self._built[key]
        fp, hwa, _ = self.models
        config = _design_config(next(iter(tiles(hwa))).config, point.adc_bits, point.dac_bits, point.tile_size)
        self._built[key] = _load_trained(convert_to_analog(fp, config), hwa.state_dict()).eval()
        return self._built[key]

    def run(self) -> None:
        """Evaluate every design point (progress bar; the plot grows point by point)."""
        self._ensure_models()
        fp, _, test = self.models
        self.fp_accuracy = accuracy(fp, test)
        repeats = int(self.controls["repeats"].value)
        self.params = self._cost_params()
        for p in self.points:
            p.accuracy = p.accuracy_std = float("nan")
        self.progress.max, self.progress.value, self.progress.bar_style = len(self.points), 0, "info"
        self.status.value = "<small>sweeping…</small>"
        shape = (1,) + tuple(test[0].shape[1:])
        for i, point in enumerate(self.points):
            model = self._build(point)
            point.table = estimate(model, shape, self.params)
            key = _key(point.adc_bits, point.dac_bits, point.tile_size, repeats, self.seed, self.t_eval)
            if key in self.cache:
                point.accuracy, point.accuracy_std = self.cache[key]
            else:
                table = evaluate_over_time(model, test, times=[self.t_eval], repeats=repeats, seed=self.seed)
                point.accuracy, point.accuracy_std = float(table["mean"].iloc[0]), float(table["std"].iloc[0])
                self._draw_points()  # live points appear one by one
            self.progress.value = i + 1
        self._draw_points()
        self.progress.bar_style = "success"
        self.controls["inspect"].value = self.suggested()
        self._draw_selection()
        front = self.front()
        self.status.value = (f"<small>done · {len(self.points)} designs · Pareto front: {len(front)} · "
                             f"best {max(p.accuracy for p in self.points):.1f} %</small>")

    def _on_adc_scale(self, change) -> None:
        self.params = self._cost_params()
        if self.models is None:
            return
        for point in self.points:
            if point.table is not None:  # the MVM counts stay; only the cost parameters change
                mvms = {name: int(n) for name, n in zip(self._tile_names(point), point.table["mvms"].iloc[:-1])}
                point.table = estimate(self._build(point), params=self.params, mvms=mvms)
        self._draw_points()
        self._draw_selection()

    def _tile_names(self, point: DesignPoint) -> List[str]:
        return [name for name, _ in named_analog_tiles(self._build(point))]

    def front(self) -> List[int]:
        """Indices of the Pareto-optimal points (accuracy up, energy down), by energy."""
        return pareto_front([p.energy_j for p in self.points], [p.accuracy for p in self.points])

    def suggested(self) -> int:
        """The cheapest Pareto point within one accuracy point of the best (the default to inspect)."""
        front = self.front()
        if not front:
            return 0
        best = max(self.points[i].accuracy for i in front)
        return next(i for i in front if self.points[i].accuracy >= best - 1.0)

    # -- views ------------------------------------------------------------------------------------

    def _make_scatter(self) -> Figure:
        fig = go.Figure()
        for k, size in enumerate(self.tile_sizes):
            fig.add_trace(go.Scatter(
                x=[], y=[], mode="markers", name=f"tile {size}×{size}",
                marker=dict(symbol=TILE_SYMBOLS[k % len(TILE_SYMBOLS)], size=11, color=[], cmin=min(self.adc_bits),
                            cmax=max(self.adc_bits), colorscale="Viridis", line=dict(width=1, color="#333"),
                            showscale=k == 0, colorbar=dict(title=dict(text="ADC bits"), x=1.02, len=0.8)),
                hovertemplate="%{text}<br>%{x:.3s}J · %{y:.1f} %<extra></extra>", text=[]))
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="floating point (digital)", hoverinfo="skip",
                                 line=dict(color="#7f7f7f", width=1.5, dash="dot")))
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="Pareto front",
                                 line=dict(color="#d62728", width=2, dash="dash", shape="hv")))
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="inspected", hoverinfo="skip",
                                 marker=dict(size=22, color="rgba(0,0,0,0)", line=dict(width=3, color="#d62728"))))
        fig.update_xaxes(type="log", title_text="energy per inference (J)", exponentformat="SI")
        fig.update_yaxes(title_text=f"accuracy after {time_label(self.t_eval)} (%)")
        fig.update_layout(height=460, width=640, margin=dict(l=60, r=20, t=40, b=50), template="plotly_white",
                          title=f"Accuracy after {time_label(self.t_eval)} vs energy per inference",
                          legend=dict(orientation="h", y=-0.2))
        return Figure(fig)

    def _make_breakdown(self) -> Figure:
        fig = go.Figure()
        for name in COMPONENTS:
            fig.add_trace(go.Bar(x=[], y=[], name=name, orientation="h", marker_color=COMPONENT_COLORS[name]))
        fig.update_xaxes(title_text="energy per inference (nJ)")
        fig.update_yaxes(title_text="layer", autorange="reversed")
        fig.update_layout(barmode="stack", height=460, width=480, margin=dict(l=60, r=20, t=60, b=50),
                          template="plotly_white", title="Energy per layer", legend=dict(orientation="h", y=-0.2))
        return Figure(fig)

    def _draw_points(self) -> None:
        front = self.front()
        with self.figure.batch_update():
            for k, size in enumerate(self.tile_sizes):
                pts = [p for p in self.points if p.tile_size == size and np.isfinite(p.accuracy)]
                trace = self.figure.data[k]
                trace.x = [p.energy_j for p in pts]
                trace.y = [p.accuracy for p in pts]
                trace.text = [p.label for p in pts]
                trace.marker.color = [p.adc_bits for p in pts]
            self.figure.data[-2].x = [self.points[i].energy_j for i in front]
            self.figure.data[-2].y = [self.points[i].accuracy for i in front]
            energies = [p.energy_j for p in self.points if np.isfinite(p.accuracy)]
            if energies and self.fp_accuracy is not None:
                self.figure.data[-3].x = [min(energies) / 1.2, max(energies) * 1.2]
                self.figure.data[-3].y = [self.fp_accuracy] * 2

    def _draw_selection(self) -> None:
        point = self.points[int(self.controls["inspect"].value)]
        if point.table is None:
            return
        layers = point.table.iloc[:-1]
        labels = [f"{row.layer} ({int(row.out_features)}×{int(row.in_features)})" for row in layers.itertuples()]
        totals = point.table.attrs["totals"]
        with self.figure.batch_update():
            self.figure.data[-1].x = [point.energy_j] if np.isfinite(point.accuracy) else []
            self.figure.data[-1].y = [point.accuracy] if np.isfinite(point.accuracy) else []
        with self.breakdown.batch_update():
            for k, name in enumerate(COMPONENTS):
                self.breakdown.data[k].x = (layers[f"energy_{name}_j"].to_numpy() * 1e9).tolist()
                self.breakdown.data[k].y = labels
            self.breakdown.layout.title.text = (
                f"{point.label}<br><sup>{totals['energy_j'] * 1e9:.3g} nJ · {totals['tops_per_w']:.3g} TOPS/W · "
                f"{totals['latency_s'] * 1e6:.3g} µs · {point.accuracy:.1f} % after {time_label(self.t_eval)}</sup>")
