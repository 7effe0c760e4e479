"""ConductanceExplorer: how weights become PCM conductances, and how those conductances move in time.

Top: heatmaps of a small tile's programmed conductances G⁺ and G⁻ (one differential pair per weight,
docs/physics.md §2) and of the programming error of each weight in µS, (G⁺_P − G⁻_P) − (G⁺_T − G⁻_T).
Bottom: conductance vs time (1 s … 10 years, log axis) for a few target states, the mean over many
devices with a ±1 std band: programming noise, drift and accumulated read noise together.

Python owns the state (``config``: the :class:`~aimc_lab.config.NoiseModelParameters` of the PCM
model); sliders write its fields and the widget recomputes through the public API
(:class:`~aimc_lab.tile.AnalogTile` ``program`` / ``conductances`` and
:class:`~aimc_lab.devices.pcm.PCMLikeNoise`).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Sequence

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from aimc_lab.config import AnalogConfig, NoiseModelParameters
from aimc_lab.devices.pcm import PCMLikeNoise
from aimc_lab.inference import TIMES, time_label
from aimc_lab.tile import AnalogTile
from aimc_lab.widgets._figure import Figure
from aimc_lab.widgets._util import SLIDER_LAYOUT, SLIDER_STYLE, TEN_YEARS, backend_badge
from aimc_lab.widgets.tile_explorer import reference_data

__all__ = ["ConductanceExplorer", "conductance_over_time"]

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


@torch.no_grad()
def conductance_over_time(params: NoiseModelParameters, targets: Sequence[float], times: np.ndarray,
                          n_devices: int = 500, seed: int = 0):
    """Mean and std [len(targets), len(times)] of the read conductance of ``n_devices`` devices per
    target (µS): programmed once (programming noise, drift exponents), then read at each time."""
    model = PCMLikeNoise(params)
    g = torch.Generator().manual_seed(seed)
    g_target = torch.tensor(targets, dtype=torch.float32).unsqueeze(1).expand(len(targets), n_devices)
    g_prog = model.programming_noise(g_target, g)
    nu = model.drift_exponents(g_target, g)
    mean = np.empty((len(targets), len(times)))
    std = np.empty_like(mean)
    for j, t in enumerate(times):
        g_t = model.at_time(g_prog, nu, g_target, float(t), g)
        mean[:, j] = g_t.mean(dim=1).numpy()
        std[:, j] = g_t.std(dim=1).numpy()
    return mean, std


class ConductanceExplorer(W.VBox):
    """Programmed conductances of a small tile and PCM conductance vs time for a few target states.

    ``ConductanceExplorer(size=32, targets=(5, 10, 15, 20, 25), n_devices=500, seed=0)``. State:
    ``config`` (PCM ``NoiseModelParameters``); after each update ``conductances`` (the dict of
    ``AnalogTile.conductances()``), ``curve_mean``/``curve_std`` [targets, times]; figures
    ``heatmaps`` (traces G⁺, G⁻, error) and ``curves`` (per target: band, mean line).
    """

    def __init__(self, size: int = 32, targets: Sequence[float] = (5.0, 10.0, 15.0, 20.0, 25.0),
                 n_devices: int = 500, n_times: int = 41, seed: int = 0) -> None:
        self.size, self.targets, self.n_devices, self.seed = int(size), tuple(targets), int(n_devices), int(seed)
        self.times = np.logspace(0.0, np.log10(TEN_YEARS), n_times)
        self.config = NoiseModelParameters(kind="pcm")
        kw = dict(style=SLIDER_STYLE, layout=SLIDER_LAYOUT, continuous_update=False, step=0.05, min=0.0)
        self.controls: Dict[str, W.Widget] = {
            "prog_noise_scale": W.FloatSlider(value=1.0, max=3.0, description="programming noise ×", **kw),
            "drift_scale": W.FloatSlider(value=1.0, max=3.0, description="drift exponent ×", **kw),
            "read_noise_scale": W.FloatSlider(value=1.0, max=3.0, description="read noise ×", **kw),
            "weight_std": W.FloatSlider(value=0.246, min=0.02, max=0.6, step=0.002, readout_format=".3f",
                                        description="weight std", style=SLIDER_STYLE, layout=SLIDER_LAYOUT,
                                        continuous_update=False),
        }
        for name in ("prog_noise_scale", "drift_scale", "read_noise_scale"):
            self.controls[name].observe(lambda change, name=name: self._on_param(name, change["new"]),
                                        names="value")
        self.controls["weight_std"].observe(lambda change: self.update_heatmaps(), names="value")
        self.heatmaps = self._make_heatmaps()
        self.curves = self._make_curves()
        self.summary = W.HTML()
        controls = W.VBox([W.HTML("<b>PCM model</b>"), self.controls["prog_noise_scale"],
                           self.controls["drift_scale"], self.controls["read_noise_scale"],
                           W.HTML("<b>Weights</b>"), self.controls["weight_std"], self.summary],
                          layout=W.Layout(width="400px", min_width="400px", flex="0 0 auto"))
        # the controls keep their width; in a column narrower than controls + curves the curves wrap below
        super().__init__([W.HTML("<h3 style='margin:4px 0'>Conductance explorer</h3>"), backend_badge(),
                          W.HBox([controls, self.curves], layout=W.Layout(flex_flow="row wrap")), self.heatmaps])
        self.update()

    def _on_param(self, name: str, value: float) -> None:
        self.config = dataclasses.replace(self.config, **{name: float(value)})
        self.update()

    def update(self) -> None:
        self.update_heatmaps()
        self.update_curves()

    @torch.no_grad()
    def update_heatmaps(self) -> None:
        """Program a fresh tile with the current model and show G⁺, G⁻ and the programming error."""
        w, _ = reference_data(self.size, 1, float(self.controls["weight_std"].value), 0.0, self.seed)
        tile = AnalogTile(self.size, self.size, AnalogConfig(noise_model=self.config))
        tile.set_weights(w)
        tile.program(torch.Generator().manual_seed(self.seed + 1))
        g = tile.conductances()
        self.conductances = g
        error = (g["prog_pos"] - g["prog_neg"]) - (g["target_pos"] - g["target_neg"])
        lim = max(float(error.abs().max()), 1e-3)
        with self.heatmaps.batch_update():
            self.heatmaps.data[0].z = g["prog_pos"].numpy()
            self.heatmaps.data[1].z = g["prog_neg"].numpy()
            self.heatmaps.data[2].z = error.numpy()
            self.heatmaps.layout.coloraxis2.cmin = -lim
            self.heatmaps.layout.coloraxis2.cmax = lim
        self.summary.value = (f"<small>programming error: std {float(error.std()):.2f} µS "
                              f"(g_max = {self.config.g_max:g} µS)</small>")

    def update_curves(self) -> None:
        mean, std = conductance_over_time(self.config, self.targets, self.times, self.n_devices, self.seed)
        self.curve_mean, self.curve_std = mean, std
        x_band = np.concatenate([self.times, self.times[::-1]])
        with self.curves.batch_update():
            for i in range(len(self.targets)):
                self.curves.data[2 * i].x = x_band
                self.curves.data[2 * i].y = np.concatenate([mean[i] + std[i], (mean[i] - std[i])[::-1]])
                self.curves.data[2 * i + 1].x = self.times
                self.curves.data[2 * i + 1].y = mean[i]

    def _make_heatmaps(self) -> Figure:
        fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.09,
                            subplot_titles=("programmed G⁺ (µS)", "programmed G⁻ (µS)",
                                            "programming error of G⁺ − G⁻ (µS)"))
        for col in (1, 2):
            fig.add_trace(go.Heatmap(z=[[0.0]], coloraxis="coloraxis", name=f"G{'+-'[col - 1]}"), row=1, col=col)
        fig.add_trace(go.Heatmap(z=[[0.0]], coloraxis="coloraxis2", name="error"), row=1, col=3)
        g_max = self.config.g_max
        fig.update_layout(
            coloraxis=dict(colorscale="Viridis", cmin=0.0, cmax=g_max * 1.1,
                           colorbar=dict(x=0.63, len=0.9, thickness=12, title="µS")),
            coloraxis2=dict(colorscale="RdBu", cmid=0.0, colorbar=dict(x=1.0, len=0.9, thickness=12, title="µS")),
            height=340, width=880, margin=dict(l=60, r=20, t=40, b=50), template="plotly_white")
        fig.update_yaxes(autorange="reversed", scaleanchor=None)
        fig.update_xaxes(title_text="input j (crossbar row)")
        fig.update_yaxes(title_text="output i (crossbar column)", row=1, col=1)
        return Figure(fig)

    def _make_curves(self) -> Figure:
        fig = go.Figure()
        for i, target in enumerate(self.targets):
            color = COLORS[i % len(COLORS)]
            fig.add_trace(go.Scatter(x=[], y=[], fill="toself", fillcolor=color, opacity=0.2, mode="none",
                                     hoverinfo="skip", showlegend=False, name=f"±1 std {target:g} µS"))
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(color=color, width=2),
                                     name=f"target {target:g} µS"))
        fig.update_xaxes(type="log", title_text="time after programming",
                         tickvals=list(TIMES) + [TEN_YEARS], ticktext=[time_label(t) for t in TIMES] + ["10 years"])
        fig.update_yaxes(title_text="conductance (µS)", rangemode="tozero")
        fig.update_layout(title="PCM conductance vs time (mean ± std over devices)", height=380, width=760,
                          margin=dict(l=60, r=20, t=50, b=50), template="plotly_white")
        return Figure(fig)
