"""TileExplorer: one crossbar tile, every MVM nonideality on a control, analog vs ideal outputs live.

Python owns the state: ``explorer.config`` is a frozen :class:`~aimc_lab.config.AnalogConfig`; each
control writes one field of it (a new config through :func:`aimc_lab.config.replace_path`) and the
widget recomputes through the public API (an :class:`~aimc_lab.tile.AnalogTile` with ``set_weights``,
``program``, ``drift`` and its forward) and updates its plotly figure (:class:`~aimc_lab.widgets.Figure`)
in place.

Randomness is seeded: the same settings always give the same picture, so moving a slider and moving
it back restores the plot. Separate seeded streams feed programming noise, drift/read noise and the
forward noise, so changing e.g. the ADC resolution keeps the same programmed devices.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Optional

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from aimc_lab import presets
from aimc_lab.config import AnalogConfig, replace_path
from aimc_lab.cost import MVMCost, mvm_cost
from aimc_lab.inference import time_label
from aimc_lab.tile import AnalogTile
from aimc_lab.widgets._figure import Figure
from aimc_lab.widgets._util import (SLIDER_LAYOUT, SLIDER_STYLE, Quiet, backend_badge, bits_to_res, res_to_bits,
                                    time_readout, time_slider)

__all__ = ["TileExplorer", "tile_config", "reference_data", "nice_ceil"]

N_SCATTER = 1000  # points drawn of the M x N outputs: the cloud looks the same as with 3000, draws 3x faster
N_BINS = 61
FIGURE_WIDTH = 760  # px: controls (400) + figure fit a 1280 px page; in a narrower column the figure wraps
_NICE_STEPS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def nice_ceil(x: float) -> float:
    """The smallest number of the form m · 10^k with m in 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8 that is >= x
    (x > 0; 1e-12 for x <= 0). Axis ranges rounded up this way change only when the data outgrow
    them, so most updates redraw the data without new axes and tick labels."""
    if not x > 0 or not math.isfinite(x):
        return 1e-12 if not x > 0 else x
    k = math.floor(math.log10(x))
    for m in _NICE_STEPS:
        value = m * 10.0 ** k
        if value >= x * (1 - 1e-12):
            return value
    return 10.0 ** (k + 1)


def tile_config(preset: str) -> AnalogConfig:
    """The preset as a single tile sees it: inputs arrive already scaled to [-1, 1], so the learned
    input range of the HWA presets is switched off (its job is done by the data here)."""
    config = presets.by_name(preset)
    return replace_path(config, "input_range.enable", False)


def reference_data(size: int, n_inputs: int, weight_std: float, sparsity: float, seed: int):
    """The reference experiment of docs/physics.md §1: W ~ N(0, std²) clipped to [-1, 1] [size, size]; inputs
    uniform in [-1, 1] [n_inputs, size] with a fraction ``sparsity`` set to 0."""
    g = torch.Generator().manual_seed(seed)
    w = (torch.randn(size, size, generator=g) * weight_std).clamp(-1.0, 1.0)  # [N, K]
    x = torch.rand(n_inputs, size, generator=g) * 2 - 1  # [M, K]
    x = torch.where(torch.rand(n_inputs, size, generator=g) < sparsity, torch.zeros_like(x), x)
    return w, x


class TileExplorer(W.VBox):
    """Analog vs ideal outputs of one tile; every control writes one config field and recomputes.

    ``TileExplorer(preset="standard HWA", size=512, n_inputs=256, seed=0)``. Attributes after each
    update: ``config``, ``relative_error`` (‖y − Wx‖/‖Wx‖), ``outputs`` and ``ideal`` ([M, N] tensors),
    ``cost`` (:func:`aimc_lab.cost.mvm_cost` of one MVM of the tile under ``config``: energy, TOPS/W), ``figure`` (the :class:`~aimc_lab.widgets.Figure`: trace 0 the scatter, 1 the y = x line, 2 the error
    histogram) and
    ``controls`` (name -> ipywidget).
    """

    IO_CONTROLS = ("dac_bits", "adc_bits", "out_bound", "out_noise", "w_noise", "ir_drop", "noise_management",
                   "bound_management")

    def __init__(self, preset: str = "standard HWA", size: int = 512, n_inputs: int = 256, seed: int = 0,
                 drift_time: float = 1.0) -> None:
        self.size, self.n_inputs, self.seed = int(size), int(n_inputs), int(seed)
        self.config = tile_config(preset)
        self.relative_error = math.nan
        self.cost: Optional[MVMCost] = None
        self._ranges = None
        self.outputs: Optional[torch.Tensor] = None
        self.ideal: Optional[torch.Tensor] = None
        self._quiet = Quiet()
        self._data_key = None
        self._device_key_programmed = None
        self._drift_time: Optional[float] = None
        self._tile: Optional[AnalogTile] = None
        self._scatter_index = torch.randperm(self.size * n_inputs, generator=torch.Generator().manual_seed(seed))[
            :N_SCATTER]

        self.controls: Dict[str, W.Widget] = self._make_controls(preset, drift_time)
        self.figure = self._make_figure()
        self.error_label = W.HTML()
        c = self.controls
        groups = W.VBox([
            c["preset"],
            W.HTML("<b>Converters</b>"), c["dac_bits"], c["adc_bits"], c["out_bound"],
            W.HTML("<b>Noise and IR drop</b>"), c["out_noise"], c["w_noise"], c["ir_drop"],
            W.HTML("<b>Periphery</b>"), c["noise_management"], c["bound_management"],
            W.HTML("<b>PCM devices</b>"), c["pcm"], time_readout(c["drift_time"]), c["compensation"],
            W.HTML("<b>Data</b>"), c["weight_std"], c["sparsity"],
        ], layout=W.Layout(width="400px", min_width="400px", flex="0 0 auto"))
        right = W.VBox([self.error_label, self.figure], layout=W.Layout(flex="1 1 auto", min_width="0"))
        super().__init__([W.HTML("<h3 style='margin:4px 0'>Tile explorer</h3>"), backend_badge(),
                          W.HBox([groups, right], layout=W.Layout(flex_flow="row wrap"))])
        self._sync_controls()
        self.update()

    # ---------------------------------------------------------------------------------------------
    # controls
    # ---------------------------------------------------------------------------------------------

    def _make_controls(self, preset: str, drift_time: float) -> Dict[str, W.Widget]:
        kw = dict(style=SLIDER_STYLE, layout=SLIDER_LAYOUT, continuous_update=False)
        c = {
            "preset": W.Dropdown(options=list(presets.PRESETS), value=preset, description="preset",
                                 style=SLIDER_STYLE, layout=SLIDER_LAYOUT),
            "dac_bits": W.IntSlider(value=7, min=2, max=14, description="DAC bits", **kw),
            "adc_bits": W.IntSlider(value=9, min=2, max=14, description="ADC bits", **kw),
            "out_bound": W.FloatSlider(value=12.0, min=1.0, max=40.0, step=0.5, description="output bound",
                                       **kw),
            "out_noise": W.FloatSlider(value=0.06, min=0.0, max=0.3, step=0.005, readout_format=".3f",
                                       description="output noise", **kw),
            "w_noise": W.FloatSlider(value=0.0, min=0.0, max=0.1, step=0.0025, readout_format=".4f",
                                     description="weight read noise", **kw),
            "ir_drop": W.FloatSlider(value=0.0, min=0.0, max=5.0, step=0.1, description="IR drop", **kw),
            "noise_management": W.Dropdown(options=["abs_max", "max", "constant", "none"],
                                           description="noise management", style=SLIDER_STYLE,
                                           layout=SLIDER_LAYOUT),
            "bound_management": W.Dropdown(options=["none", "iterative"], description="bound management",
                                           style=SLIDER_STYLE, layout=SLIDER_LAYOUT),
            "pcm": W.Checkbox(value=False, description="PCM noise (programming, drift, read)", indent=False),
            "drift_time": time_slider("drift time", drift_time),
            "compensation": W.Checkbox(value=False, description="global drift compensation", indent=False),
            "weight_std": W.FloatSlider(value=0.246, min=0.02, max=0.6, step=0.002, readout_format=".3f",
                                        description="weight std", **kw),
            "sparsity": W.FloatSlider(value=0.5, min=0.0, max=0.95, step=0.05, description="input sparsity",
                                      **kw),
        }
        c["preset"].observe(self._on_preset, names="value")
        for name in ("dac_bits", "adc_bits", "out_bound", "out_noise", "w_noise", "ir_drop", "noise_management",
                     "bound_management", "pcm", "compensation"):
            c[name].observe(lambda change, name=name: self._on_config_control(name, change["new"]), names="value")
        for name in ("drift_time", "weight_std", "sparsity"):
            c[name].observe(self._on_state_control, names="value")
        return c

    def _on_preset(self, change) -> None:
        if self._quiet.on:
            return
        self.config = tile_config(change["new"])
        self._sync_controls()
        self.update()

    def _on_config_control(self, name: str, value) -> None:
        if self._quiet.on:
            return
        self.config = self._with_control(self.config, name, value)
        self._sync_controls()
        self.update()

    def _on_state_control(self, change) -> None:
        if not self._quiet.on:
            self.update()

    @staticmethod
    def _with_control(config: AnalogConfig, name: str, value) -> AnalogConfig:
        """The config with the field behind control ``name`` set (a new frozen config)."""
        fwd = config.forward
        if name == "dac_bits":
            return replace_path(config, "forward.inp_res", bits_to_res(value))
        if name == "adc_bits":
            return replace_path(config, "forward.out_res", bits_to_res(value))
        if name in ("out_bound", "out_noise", "ir_drop", "bound_management"):
            return replace_path(config, f"forward.{name}", value)
        if name == "w_noise":
            kind = "none" if value == 0 else (fwd.w_noise_type if fwd.w_noise_type != "none" else "pcm_read")
            return replace_path(config, "forward", dataclasses.replace(fwd, w_noise=float(value), w_noise_type=kind))
        if name == "noise_management":
            thres = fwd.nm_thres if (value != "constant" or fwd.nm_thres > 0) else 1.0
            return replace_path(config, "forward",
                                dataclasses.replace(fwd, noise_management=value, nm_thres=thres))
        if name == "pcm":
            return replace_path(config, "noise_model.kind", "pcm" if value else "none")
        if name == "compensation":
            return replace_path(config, "drift_compensation.kind", "global" if value else "none")
        raise ValueError(f"unknown control {name!r}")

    def _sync_controls(self) -> None:
        """Show the config's values on the controls (without triggering recomputation)."""
        fwd, c = self.config.forward, self.controls
        with self._quiet():
            c["dac_bits"].value = max(2, res_to_bits(fwd.inp_res)) if fwd.inp_res > 0 else c["dac_bits"].max
            c["adc_bits"].value = max(2, res_to_bits(fwd.out_res)) if fwd.out_res > 0 else c["adc_bits"].max
            c["out_bound"].value = fwd.out_bound
            c["out_noise"].value = fwd.out_noise
            c["w_noise"].value = fwd.w_noise
            c["ir_drop"].value = fwd.ir_drop
            c["noise_management"].value = fwd.noise_management
            c["bound_management"].value = fwd.bound_management
            c["pcm"].value = self.config.noise_model.kind != "none"
            c["compensation"].value = self.config.drift_compensation.kind != "none"
        for name in self.IO_CONTROLS:
            c[name].disabled = fwd.is_perfect
        c["drift_time"].disabled = not c["pcm"].value
        c["compensation"].disabled = not c["pcm"].value

    # ---------------------------------------------------------------------------------------------
    # computation (public API only) and the view
    # ---------------------------------------------------------------------------------------------

    def _data(self):
        c = self.controls
        key = (round(c["weight_std"].value, 6), round(c["sparsity"].value, 6))
        if key != self._data_key:
            self._w, self._x = reference_data(self.size, self.n_inputs, key[0], key[1], self.seed)
            self.ideal = self._x @ self._w.T  # [M, N]
            self._data_key = key
        return self._w, self._x

    def _device_key(self, config: AnalogConfig):
        """What the programmed devices depend on: the weights (their std; the inputs' sparsity does not
        change them) and every config field except the forward periphery (``config.forward``)."""
        rest = tuple((f.name, getattr(config, f.name)) for f in dataclasses.fields(config) if f.name != "forward")
        return self._data_key[0], rest

    @torch.no_grad()
    def compute(self) -> torch.Tensor:
        """The tile's analog outputs [M, N] for the current config and controls.

        Always the same as programming a fresh tile under ``config`` (noise streams seeded from ``seed``:
        programming ``seed + 1``, drift and read noise ``seed + 2``, compensation read-outs ``seed + 3``,
        forward ``seed + 4``), but only the steps that the changed control affects run again: the devices
        are programmed when the weights or the device model change; a periphery control (converters,
        noise, IR drop, management) keeps them and re-measures only the drift compensation's reference
        and factor through the new periphery (docs/physics.md §2); the drift time re-reads the devices;
        the input sparsity only runs the forward."""
        w, x = self._data()
        config, pcm = self.config, self.config.noise_model.kind != "none"
        t = float(self.controls["drift_time"].value) if pcm else None
        device_key = self._device_key(config)
        tile = self._tile
        if tile is None or device_key != self._device_key_programmed:
            tile = AnalogTile(self.size, self.size, config)
            tile.set_weights(w)
            tile.eval()
            if pcm:
                tile.generator = torch.Generator().manual_seed(self.seed + 3)
                tile.program(torch.Generator().manual_seed(self.seed + 1))
            self._device_key_programmed, self._drift_time = device_key, None
        elif config.forward != tile.config.forward:
            # the same devices behind another periphery: only config.forward differs, which the tile reads
            # at each forward and read-out (the device model, compensation and mapping it was built from
            # are unchanged), so the programmed tile takes the new config as it is
            tile.config = config
            if pcm:  # the compensation through the new periphery, each read-out from a fresh seed + 3
                tile.remeasure_compensation(torch.Generator().manual_seed(self.seed + 3),
                                            torch.Generator().manual_seed(self.seed + 3))
        self._tile = tile
        if pcm and t != self._drift_time:
            tile.generator = torch.Generator().manual_seed(self.seed + 3)
            tile.drift(t, torch.Generator().manual_seed(self.seed + 2))
            self._drift_time = t
        tile.generator = torch.Generator().manual_seed(self.seed + 4)
        return tile(x)

    def update(self) -> None:
        """Recompute and update the figure in place: one message with the data, plus the axis ranges
        when the data outgrew them or fill less than half of them (ranges rounded up with
        :func:`nice_ceil`)."""
        y = self.compute()
        ideal = self.ideal
        err = y - ideal
        self.outputs = y
        self.relative_error = float(err.norm() / ideal.norm().clamp(min=1e-12))
        self.cost = mvm_cost(self.config, self.size, self.size)
        flat_ideal = ideal.reshape(-1)[self._scatter_index].numpy()
        flat_y = y.reshape(-1)[self._scatter_index].numpy()
        e = err.reshape(-1).numpy()
        old = self._ranges or (None, None, None)
        half = _range(old[1], float(np.quantile(np.abs(e), 0.999)))
        counts, edges = np.histogram(e, bins=N_BINS, range=(-half, half))
        lim = _range(old[0], float(max(np.abs(flat_ideal).max(), np.abs(flat_y).max())) * 1.05)
        ranges = (lim, half, _range(old[2], 1.05 * float(counts.max())))
        with self.figure.batch_update():
            self.figure.data[0].x = flat_ideal
            self.figure.data[0].y = flat_y
            self.figure.data[2].x = 0.5 * (edges[:-1] + edges[1:])
            self.figure.data[2].y = counts
            if ranges != self._ranges:
                self.figure.data[1].x = [-lim, lim]
                self.figure.data[1].y = [-lim, lim]
                self.figure.data[2].width = float(edges[1] - edges[0])
                self.figure.layout.xaxis.range = self.figure.layout.yaxis.range = [-lim, lim]
                self.figure.layout.xaxis2.range = [-half, half]
                self.figure.layout.yaxis2.range = [0, ranges[2]]
                self._ranges = ranges
        self.error_label.value = self._error_html()

    def _error_html(self) -> str:
        cfg, cost = self.config, self.cost
        where = (f"PCM at t = {time_label(self.controls['drift_time'].value)}"
                 + (", compensated" if cfg.drift_compensation.kind != "none" else ", not compensated")
                 if cfg.noise_model.kind != "none" else "no device noise model")
        return (f"<div style='font-size:1.15em'>relative error ‖y − Wx‖ / ‖Wx‖ = "
                f"<b>{100 * self.relative_error:.2f} %</b> · energy per MVM <b>{_joules(cost.energy_j)}</b> · "
                f"<b>{cost.tops_per_w:.3g} TOPS/W</b></div>"
                f"<small>{self.size}×{self.size} tile, {self.n_inputs} inputs, {where}; energy from the cost "
                f"model (aimc_lab.cost.mvm_cost, {cost.adc_bits:g}-bit ADC)</small>")

    def _make_figure(self) -> Figure:
        fig = make_subplots(rows=1, cols=2, subplot_titles=("analog vs ideal output", "error y − Wx"),
                            horizontal_spacing=0.12)
        fig.add_trace(go.Scattergl(x=[], y=[], mode="markers", name="outputs",
                                   marker=dict(size=3, opacity=0.45, color="#1f77b4")), row=1, col=1)
        fig.add_trace(go.Scattergl(x=[], y=[], mode="lines", name="y = Wx",
                                   line=dict(color="#d62728", dash="dash", width=1)), row=1, col=1)
        fig.add_trace(go.Bar(x=[], y=[], name="error", marker_color="#ff7f0e"), row=1, col=2)
        fig.update_xaxes(title_text="ideal Wx", row=1, col=1)
        fig.update_yaxes(title_text="analog y", row=1, col=1)
        fig.update_xaxes(title_text="y − Wx", row=1, col=2)
        fig.update_yaxes(title_text="count", row=1, col=2)
        # every update redraws the axes. "allow" skips measuring each tick label against the page's edge
        # (plotly's default, "hide past div", reads every label's box back from the page each time; no
        # label of these fixed-size plots comes near the edge), a fixed angle the overlap test of "auto"
        fig.update_xaxes(ticklabeloverflow="allow", tickangle=0)
        fig.update_yaxes(ticklabeloverflow="allow")
        fig.update_layout(height=400, width=FIGURE_WIDTH, showlegend=False, margin=dict(l=60, r=20, t=40, b=50),
                          bargap=0.0, template="plotly_white")
        return Figure(fig)


def _range(current: Optional[float], needed: float) -> float:
    """An axis extent for data reaching ``needed``: the current one while the data fill between half of
    it and all of it (no new axes when a slider moves back and forth), else ``nice_ceil(needed)``."""
    if current is not None and 0.5 * current <= needed <= current:
        return current
    return nice_ceil(needed)


def _joules(energy: float) -> str:
    """An energy with an SI prefix: 3.2e-9 -> '3.2 nJ'."""
    for factor, unit in ((1e-15, "fJ"), (1e-12, "pJ"), (1e-9, "nJ"), (1e-6, "µJ"), (1e-3, "mJ")):
        if energy < 1000 * factor:
            return f"{energy / factor:.3g} {unit}"
    return f"{energy:.3g} J"
