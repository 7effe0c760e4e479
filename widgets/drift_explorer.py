"""DriftExplorer: a network's test accuracy from 1 second to 1 year after programming PCM tiles.

Curves (mean ± std over programming/read-noise repeats, log time axis): the digital floating-point
network, the same network converted to analog without hardware-aware training (input ranges
calibrated), the hardware-aware (HWA) trained network with global drift compensation, and the HWA
network without drift compensation.

Python owns the state: ``config`` is the evaluation :class:`~aimc_lab.config.AnalogConfig` (standard HWA
preset by default); the "drift ×" control writes ``noise_model.drift_scale`` and "repeats" the number
of noise instances, and each change re-runs :func:`aimc_lab.evaluate_over_time` with its ``progress``
callback driving an ``IntProgress`` bar. Models come from the caller, or are the pretrained pair
shipped with the package (``digit_models.pt``, made by :func:`save_digit_models`: the full protocol of
:func:`train_digit_models` with seed 0), or are trained here on the offline digits data (``pretrained=
False``; about a minute on a laptop CPU, more on a shared one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

import ipywidgets as W
import plotly.graph_objects as go
import torch
from torch import Tensor, nn

from aimc_lab import data as al_data
from aimc_lab import presets
from aimc_lab.config import replace_path
from aimc_lab.convert import convert_to_analog
from aimc_lab.inference import TIMES, accuracy, evaluate_over_time, tiles, time_label
from aimc_lab.train import calibrate_input_ranges, hwa_train
from aimc_lab.widgets._figure import Figure
from aimc_lab.widgets._util import SLIDER_LAYOUT, SLIDER_STYLE, backend_badge

__all__ = ["DriftExplorer", "train_digit_models", "load_digit_models", "save_digit_models"]

CURVES = ("floating point (digital)", "converted, no HWA", "HWA, drift compensation", "HWA, no compensation")
COLORS = ("#7f7f7f", "#d62728", "#2ca02c", "#ff7f0e")
PRETRAINED = Path(__file__).with_name("digit_models.pt")
MODIFIER_STD = 0.1


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Linear(16, 10))


def train_digit_models(seed: int = 0, fast: bool = False, modifier_std: float = MODIFIER_STD):
    """Train a narrow MLP (64-16-16-16-10) on the clean :func:`aimc_lab.data.digits` digitally (Adam,
    60 epochs; 20 when ``fast``), then fine-tune an analog copy hardware-aware (standard HWA preset with
    additive weight noise ``modifier_std``·max|W|, input ranges calibrated first, 30 epochs; 8 when
    ``fast``) — the protocol of ``benchmarks/drift_experiment.py``.

    Why a narrow network: wide networks average the device noise out, so plain conversion would lose
    only a point or two and every curve would sit inside the repeat-to-repeat spread. A narrow one
    depends on precise weights, so programming noise and the spread of drift exponents show, as they do
    for the large networks of the paper.

    Returns ``(fp_model, hwa_model, (x_train, y_train), (x_test, y_test))``.
    """
    split = al_data.digits(seed=seed)
    train_loader, _ = al_data.loaders(split, batch_size=32, seed=seed)
    fp = _mlp(seed)
    opt = torch.optim.Adam(fp.parameters(), lr=1e-3)
    for _ in range(20 if fast else 60):
        for x, y in train_loader:
            opt.zero_grad()
            nn.functional.cross_entropy(fp(x), y).backward()
            opt.step()
    fp.eval()
    torch.manual_seed(seed + 1)
    hwa = convert_to_analog(fp, presets.standard_hwa(modifier_std=modifier_std))
    calibrate_input_ranges(hwa, split.x_train, seed=seed)
    hwa_train(hwa, train_loader, epochs=8 if fast else 30, lr=3e-3)
    return fp, hwa, (split.x_train, split.y_train), (split.x_test, split.y_test)


def save_digit_models(path=PRETRAINED, seed: int = 0, modifier_std: float = MODIFIER_STD) -> None:
    """Train the pair with the full protocol of :func:`train_digit_models` and store both state dicts
    (and how they were made) at ``path``: how the shipped ``digit_models.pt`` is made."""
    fp, hwa, _, _ = train_digit_models(seed, fast=False, modifier_std=modifier_std)
    torch.save({"seed": seed, "modifier_std": modifier_std, "protocol": "train_digit_models(fast=False)",
                "torch": str(torch.__version__), "fp": fp.state_dict(), "hwa": _trained_state(hwa)}, path)


def _trained_state(hwa: nn.Module) -> Dict[str, Tensor]:
    """The state an unprogrammed analog model holds (weights, biases, output scales, input ranges): what
    training produced, without programmed-device buffers (the explorer programs its own copies)."""
    assert not any(bool(tile.programmed) for tile in tiles(hwa)), "save the model before programming it"
    return {key: value for key, value in hwa.state_dict().items() if key.rsplit(".", 1)[-1] in _UNPROGRAMMED_KEYS}


_UNPROGRAMMED_KEYS = ("weight", "bias", "out_scale", "input_range", "input_range_batches", "programmed",
                      "t_inference", "map_scale", "drift_ref", "drift_alpha")


def load_digit_models(path=PRETRAINED):
    """The pair stored by :func:`save_digit_models` (no training): ``(fp_model, hwa_model, (x_train,
    y_train), (x_test, y_test))`` like :func:`train_digit_models`, on the digits split of its seed."""
    stored = torch.load(path, weights_only=True)
    seed = int(stored["seed"])
    fp = _mlp(seed)
    fp.load_state_dict(stored["fp"])
    fp.eval()
    hwa = convert_to_analog(fp, presets.standard_hwa(modifier_std=float(stored["modifier_std"])))
    hwa.load_state_dict(stored["hwa"])
    hwa.eval()
    split = al_data.digits(seed=seed)
    return fp, hwa, (split.x_train, split.y_train), (split.x_test, split.y_test)


class DriftExplorer(W.VBox):
    """Accuracy vs drift time for digital, converted, and hardware-aware models.

    ``DriftExplorer(fp_model=None, hwa_model=None, train_data=None, test_data=None, fast=False, seed=0,
    repeats=None, run=True, pretrained=True)``: without models, loads the shipped pretrained pair
    (seed 0) or, with ``pretrained=False`` or another seed, trains them on digits (``fast`` shrinks
    the epochs; it also shrinks the default repeats); ``hwa_model`` must be an analog model converted
    from ``fp_model``'s architecture;
    ``train_data`` (x, y) calibrates the input ranges of the converted model. ``run=False`` builds the
    view only; call :meth:`run` later (e.g. in the next notebook cell, so that the progress bar is
    visible while it computes). After a run, ``results`` maps each curve name to the table of
    :func:`aimc_lab.evaluate_over_time` (columns time_s, time, mean, std, n).
    """

    def __init__(self, fp_model: Optional[nn.Module] = None, hwa_model: Optional[nn.Module] = None,
                 train_data: Optional[Tuple[Tensor, Tensor]] = None, test_data: Optional[Tuple[Tensor, Tensor]] = None,
                 fast: bool = False, seed: int = 0, repeats: Optional[int] = None, times=TIMES,
                 run: bool = True, pretrained: bool = True) -> None:
        self.fast, self.seed, self.times = bool(fast), int(seed), tuple(float(t) for t in times)
        self.pretrained = bool(pretrained) and self.seed == 0 and PRETRAINED.exists()
        self.fp_model, self.hwa_model = fp_model, hwa_model
        self.train_data, self.test_data = train_data, test_data
        self.results: Dict[str, object] = {}
        self.progress = W.IntProgress(value=0, min=0, max=1, description="", bar_style="info",
                                      layout=W.Layout(width="380px"))
        self.status = W.HTML("<small>not run yet</small>")
        self.controls = {
            "repeats": W.IntSlider(value=repeats or (2 if fast else 5), min=1, max=10,
                                   description="noise repeats", continuous_update=False, style=SLIDER_STYLE,
                                   layout=SLIDER_LAYOUT),
            "drift_scale": W.FloatSlider(value=1.0, min=0.0, max=3.0, step=0.25, description="drift exponent ×",
                                         continuous_update=False, style=SLIDER_STYLE, layout=SLIDER_LAYOUT),
        }
        self.config = presets.standard_hwa()
        self.controls["drift_scale"].observe(self._on_drift_scale, names="value")
        self.controls["repeats"].observe(lambda change: self.run(), names="value")
        self.figure = self._make_figure()
        controls = W.VBox([self.controls["drift_scale"], self.controls["repeats"],
                           W.HBox([self.progress, self.status])])
        super().__init__([W.HTML("<h3 style='margin:4px 0'>Drift explorer</h3>"), backend_badge(), controls,
                          self.figure])
        if run:
            self.run()

    def _on_drift_scale(self, change) -> None:
        self.config = replace_path(self.config, "noise_model.drift_scale", float(change["new"]))
        self.run()

    def _ensure_models(self) -> None:
        if (self.fp_model is None or self.hwa_model is None) and self.pretrained:
            self.fp_model, self.hwa_model, self.train_data, self.test_data = load_digit_models()
        elif self.fp_model is None or self.hwa_model is None:
            self.status.value = "<small>training the models on digits…</small>"
            self.fp_model, self.hwa_model, self.train_data, self.test_data = train_digit_models(
                self.seed, self.fast)
        if self.test_data is None:
            raise ValueError("test_data (x, y) is needed when models are passed in")

    def analog_models(self) -> Dict[str, nn.Module]:
        """The three analog models of the plot, built for the current ``config`` (public API only:
        convert, then load the trained analog state)."""
        hwa_config = next(iter(tiles(self.hwa_model))).config
        models = {}
        converted = convert_to_analog(self.fp_model, self.config)
        if self.train_data is not None:
            calibrate_input_ranges(converted, self.train_data[0], method="cache_quantile", quantile=0.9995,
                                   seed=self.seed)
        models[CURVES[1]] = converted
        for name, comp in ((CURVES[2], self.config.drift_compensation.kind), (CURVES[3], "none")):
            cfg = replace_path(replace_path(hwa_config, "noise_model", self.config.noise_model),
                               "drift_compensation.kind", comp)
            model = convert_to_analog(self.fp_model, cfg)
            model.load_state_dict(self.hwa_model.state_dict())
            models[name] = model.eval()
        return models

    def run(self) -> None:
        """Evaluate every curve over ``times`` (with the progress bar) and update the figure in place."""
        self._ensure_models()
        repeats = int(self.controls["repeats"].value)
        models = self.analog_models()
        per_model = repeats * len(self.times)
        self.progress.max = per_model * len(models)
        self.progress.value = 0
        self.progress.bar_style = "info"
        self.status.value = "<small>evaluating…</small>"
        fp_acc = accuracy(self.fp_model, self.test_data)
        for k, (name, model) in enumerate(models.items()):
            def step(done: int, total: int, k=k) -> None:
                self.progress.value = k * per_model + done

            self.results[name] = evaluate_over_time(model, self.test_data, times=self.times, repeats=repeats,
                                                    seed=self.seed, progress=step)
        values = [fp_acc] + [v for name in CURVES[1:] for v in self.results[name]["mean"]]
        # a fixed span of at least 20 points, so noise-level wiggles do not look like trends
        lo = max(0.0, min(min(values) - 5.0, max(values) - 20.0))
        hi = min(100.0, max(max(values) + 5.0, lo + 20.0))
        with self.figure.batch_update():
            self.figure.layout.yaxis.range = [lo, hi]
            self.figure.data[0].x = list(self.times)
            self.figure.data[0].y = [fp_acc] * len(self.times)
            for i, name in enumerate(CURVES[1:], start=1):
                table = self.results[name]
                self.figure.data[i].x = table["time_s"].to_numpy()
                self.figure.data[i].y = table["mean"].to_numpy()
                self.figure.data[i].error_y = dict(type="data", array=table["std"].to_numpy(), visible=True)
        self.results[CURVES[0]] = fp_acc
        self.progress.bar_style = "success"
        hwa_year = self.results[CURVES[2]]["mean"].to_numpy()[-1]
        self.status.value = (f"<small>done · digital {fp_acc:.1f} % · HWA at {time_label(self.times[-1])}: "
                             f"{hwa_year:.1f} %</small>")

    def _make_figure(self) -> Figure:
        fig = go.Figure()
        for name, color in zip(CURVES, COLORS):
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name=name,
                                     line=dict(color=color, dash="dot" if name == CURVES[0] else "solid")))
        fig.update_xaxes(type="log", title_text="time after programming", tickvals=list(self.times),
                         ticktext=[time_label(t) for t in self.times])
        fig.update_yaxes(title_text="test accuracy (%)")
        fig.update_layout(height=440, width=900, margin=dict(l=60, r=20, t=40, b=50), template="plotly_white",
                          title="Test accuracy over drift time (mean ± std over noise instances)",
                          legend=dict(orientation="h", y=-0.2))
        return Figure(fig)
