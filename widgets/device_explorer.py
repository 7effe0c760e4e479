"""DeviceExplorer: how a pulsed device (in-memory training, docs/physics.md §4) responds to trains of pulses.

A few devices of the chosen preset get ``n`` up pulses, then ``n`` down pulses
(:func:`aimc_lab.devices.pulsed.pulse_response`); the plot shows the hidden weight of each device vs
pulse number (thin lines: device-to-device variation; thick: their mean). Python owns the state:
``device`` is the preset's frozen parameter set; sliders write its fields (step size ``dw_min``,
asymmetry ``up_down``, bounds ``w_min``/``w_max``, cycle-to-cycle ``dw_min_std`` and device-to-device
``dw_min_dtod`` noise) through ``dataclasses.replace`` and the figure updates in place.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go

from aimc_lab.devices import pulsed
from aimc_lab.widgets._figure import Figure
from aimc_lab.widgets._util import SLIDER_LAYOUT, SLIDER_STYLE, Quiet, backend_badge

__all__ = ["DeviceExplorer"]


class DeviceExplorer(W.VBox):
    """Pulse-response curves of the pulsed-device presets.

    ``DeviceExplorer(preset="reram_sb", traces=6, seed=0)``. State: ``device`` (a
    :class:`~aimc_lab.devices.pulsed.PulsedDevice`); after each update ``pulses`` [P + 1] and ``weights``
    [traces, P + 1]; ``figure`` traces 0..traces−1 are single devices, the last one their mean.
    """

    FIELDS = ("dw_min", "up_down", "bounds", "dw_min_std", "dw_min_dtod")

    def __init__(self, preset: str = "reram_sb", traces: int = 6, seed: int = 0) -> None:
        self.traces, self.seed = int(traces), int(seed)
        self.device = pulsed.PRESETS[preset]()
        self._quiet = Quiet()
        kw = dict(style=SLIDER_STYLE, layout=SLIDER_LAYOUT, continuous_update=False)
        self.controls: Dict[str, W.Widget] = {
            "preset": W.Dropdown(options=list(pulsed.PRESETS), value=preset, description="device preset",
                                 style=SLIDER_STYLE, layout=SLIDER_LAYOUT),
            "dw_min": W.FloatLogSlider(value=self.device.dw_min, base=10, min=-4, max=-1, step=0.05,
                                       readout_format=".1e", description="step size dw_min", **kw),
            "up_down": W.FloatSlider(value=0.0, min=-0.9, max=0.9, step=0.01, description="asymmetry up_down",
                                     **kw),
            "bounds": W.FloatRangeSlider(value=(-0.6, 0.6), min=-2.0, max=2.0, step=0.05,
                                         description="bounds w_min, w_max", **kw),
            "dw_min_std": W.FloatSlider(value=0.3, min=0.0, max=6.0, step=0.05, description="cycle-to-cycle noise",
                                        **kw),
            "dw_min_dtod": W.FloatSlider(value=0.3, min=0.0, max=1.0, step=0.05,
                                         description="device-to-device", **kw),
            "pulses": W.IntSlider(value=400, min=10, max=2000, step=10, description="pulses up, then down", **kw),
        }
        self.controls["preset"].observe(self._on_preset, names="value")
        for name in self.FIELDS:
            self.controls[name].observe(lambda change, name=name: self._on_field(name, change["new"]), names="value")
        self.controls["pulses"].observe(lambda change: None if self._quiet.on else self.update(), names="value")
        self.figure = self._make_figure()
        self.info = W.HTML()
        left = W.VBox([self.controls[k] for k in ("preset", "dw_min", "up_down", "bounds", "dw_min_std",
                                                   "dw_min_dtod", "pulses")] + [self.info],
                      layout=W.Layout(width="420px", min_width="420px", flex="0 0 auto"))
        # the controls keep their width; in a column narrower than controls + plot the plot wraps below
        super().__init__([W.HTML("<h3 style='margin:4px 0'>Device explorer</h3>"), backend_badge(),
                          W.HBox([left, self.figure], layout=W.Layout(flex_flow="row wrap"))])
        self._sync_controls(set_pulses=True)
        self.update()

    def _on_preset(self, change) -> None:
        if self._quiet.on:
            return
        self.device = pulsed.PRESETS[change["new"]]()
        self._sync_controls(set_pulses=True)
        self.update()

    def _on_field(self, name: str, value) -> None:
        if self._quiet.on:
            return
        if name == "bounds":
            lo, hi = value
            if hi - lo < 1e-6:
                return
            self.device = dataclasses.replace(self.device, w_min=float(lo), w_max=float(hi))
        else:
            self.device = dataclasses.replace(self.device, **{name: float(value)})
        self.update()

    def _sync_controls(self, set_pulses: bool = False) -> None:
        d, c = self.device, self.controls
        with self._quiet():
            c["dw_min"].value = d.dw_min
            c["up_down"].value = d.up_down
            c["bounds"].value = (d.w_min, d.w_max)
            c["dw_min_std"].value = d.dw_min_std
            c["dw_min_dtod"].value = d.dw_min_dtod
            if set_pulses:  # enough pulses to cross the range once and then some
                n = int(math.ceil(1.5 * (d.w_max - d.w_min) / d.dw_min / 10.0) * 10)
                c["pulses"].value = max(c["pulses"].min, min(c["pulses"].max, n))

    def update(self) -> None:
        n = int(self.controls["pulses"].value)
        pulses, weights = pulsed.pulse_response(self.device, n_up=n, n_down=n, traces=self.traces, seed=self.seed)
        self.pulses, self.weights = pulses, weights
        x = pulses.numpy()
        w = weights.numpy()
        with self.figure.batch_update():
            for i in range(self.traces):
                self.figure.data[i].x = x
                self.figure.data[i].y = w[i]
            self.figure.data[self.traces].x = x
            self.figure.data[self.traces].y = w.mean(axis=0)
            self.figure.layout.shapes = [dict(type="line", x0=n, x1=n, xref="x", y0=0, y1=1, yref="paper",
                                              line=dict(color="gray", dash="dot", width=1))]
        d = self.device
        states = (d.w_max - d.w_min) / d.dw_min
        self.info.value = (f"<small>{type(d).__name__} model · about {states:.0f} steps from w_min to w_max · "
                           f"final mean weight {float(np.mean(w[:, -1])):+.3f}</small>")

    def _make_figure(self) -> Figure:
        fig = go.Figure()
        for i in range(self.traces):
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(width=1), opacity=0.6,
                                     name=f"device {i + 1}", showlegend=False))
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", line=dict(width=3, color="black"), name="mean"))
        fig.update_xaxes(title_text="pulse number (up pulses, then down pulses)")
        fig.update_yaxes(title_text="device weight w")
        fig.update_layout(title="Pulse response", height=420, width=720, template="plotly_white",
                          margin=dict(l=60, r=20, t=50, b=50))
        return Figure(fig)
