"""Cells of notebooks/03_inmemory_training.ipynb (built by build_notebooks.py)."""

CELLS = [
    ("md", r"""
# 03 · Training in memory: pulsed devices and the algorithms that tame them

Notebooks 01 and 02 used the crossbar for **inference**: the weights were trained digitally and then
programmed once. Here the weights are trained **on the array itself**. No weight is ever written as a
number: each device only moves by **pulses**, one small conductance step up or down, and those steps are
noisy, differ from device to device, and depend on where the device is. You will see a device's pulse
response, fit a device model to a measurement, watch a stochastic pulse-train update compute an outer
product, and then train the same small network with plain in-memory SGD and with the algorithms that
were invented to make such devices work: Tiki-Taka v2, chopped TTv2, AGAD and mixed precision.

**Contents.** 1 · pulse response · 2 · the symmetry point · 3 · fitting a device model ·
4 · the pulse-train update · 5 · training with six algorithms · 6 · explore

Set `AIMC_LAB_FAST=1` to shrink training (same code path).
"""),
    ("code", r"""
import dataclasses
import os

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

import aimc_lab as al
from aimc_lab.devices import pulsed
from aimc_lab.devices.fitting import fit_device, simulate_response, synthetic_measurement
from aimc_lab.kernels.pulsed_update import pulsed_update
from aimc_lab.train import AnalogSGD, training_config

FAST = os.environ.get("AIMC_LAB_FAST", "0") == "1"
torch.manual_seed(0)
print("backend:", al.backend.active(), "| fast mode:", FAST)


def new_figure(title, xlabel, ylabel, height=320, width=620):
    fig = go.FigureWidget(layout=dict(title=title, height=height, width=width, template="plotly_white",
                                      margin=dict(l=60, r=20, t=50, b=50)))
    fig.update_xaxes(title_text=xlabel)
    fig.update_yaxes(title_text=ylabel)
    return fig
"""),
    ("md", r"""
## 1 · A device's pulse response

A pulse in direction $d = \pm 1$ moves a device's weight $w$ by a step that depends on the device model.
For the **soft-bounds** model of ReRAM-like devices the step shrinks linearly as the device approaches
its bound:

$$ \Delta w^{+} = \Delta^{+}\,(1 - w/b_{\max}), \qquad \Delta w^{-} = \Delta^{-}\,(1 - w/b_{\min}), $$

where $\Delta^\pm$ are the device's nominal up/down steps ($\mathrm{dw\_min}$ with a device-to-device spread
and the systematic asymmetry `up_down`), and every pulse gets cycle-to-cycle noise
$(1 + \sigma_{c2c}\,\xi)$. Below: 8 devices of the `reram_sb` preset, each with its own steps and bounds,
get 600 up pulses and then 600 down pulses.
"""),
    ("code", r"""
reram = pulsed.reram_sb()
n = 600
pulse_idx, traces = pulsed.pulse_response(reram, n_up=n, n_down=n, traces=8, seed=0)
fig = new_figure("ReRAM soft-bounds devices: 600 up, then 600 down pulses", "pulse number", "device weight w")
for i, trace in enumerate(traces.numpy()):
    fig.add_scatter(x=pulse_idx.numpy(), y=trace, mode="lines", line=dict(width=1), opacity=0.7,
                    name=f"device {i + 1}", showlegend=False)
fig.add_scatter(x=pulse_idx.numpy(), y=traces.mean(0).numpy(), mode="lines", line=dict(width=3, color="black"),
                name="mean")
fig
"""),
    ("code", r"""
mean = traces.mean(0)
first_up, last_up = float(mean[50] - mean[0]) / 50, float(mean[n] - mean[n - 50]) / 50
print(f"mean up step: first 50 pulses {first_up:.5f}, last 50 up pulses {last_up:.5f}; "
      f"mean weight after {n} up pulses {float(mean[n]):.3f} (w_max = {reram.w_max})")
"""),
    ("check", r"""
print("up steps shrink toward the upper bound:", last_up < 0.7 * first_up)
""", "up steps shrink toward the upper bound: True\n"),
    ("md", r"""
**Question.** The curves look like charging a capacitor. Where, along the weight axis, is a device most
"sensitive" to a pulse, and where is it hardest to move?
"""),
    ("md", r"""
## 2 · The symmetry point: why plain SGD struggles

Where the up step equals the down step, a random sequence of up and down pulses leaves the device where
it is on average: the **symmetry point** $w^*$. Everywhere else equal numbers of up and down pulses move
the device *toward* $w^*$. SGD's updates are mostly such zero-mean fluctuations, so on these devices every
weight is pulled toward its device's $w^*$ — like a weight decay toward the wrong place. Below, one device
(nominal parameters) starts at three different weights and receives alternating up/down pulses.
"""),
    ("code", r"""
device = pulsed.SoftBounds(dw_min=0.01, up_down=-0.3, w_max=0.9, w_min=-0.7, dw_min_std=0.0)
alternating = torch.tensor([1.0, -1.0]).repeat(300)
fig = new_figure("Alternating up/down pulses park the device at its symmetry point", "pulse number",
                 "device weight w")
ends = []
for w0 in (-0.6, 0.0, 0.6):
    trace = simulate_response(device, alternating, w0=w0).numpy()
    ends.append(trace[-1])
    fig.add_scatter(y=trace, mode="lines", name=f"start at {w0:+.1f}")
up, down = device.dw_min * (1 + device.up_down), device.dw_min
w_star = (up - down) / (up / device.w_max - down / device.w_min)
fig.add_hline(y=w_star, line=dict(dash="dot", color="gray"), annotation_text="w* (formula)")
print(f"symmetry point from the formula: {w_star:+.3f}; ends of the three traces: " +
      ", ".join(f"{e:+.3f}" for e in ends))
fig
"""),
    ("check", r"""
print("all three starts end near w*:", max(abs(e - w_star) for e in ends) < 0.02)
""", "all three starts end near w*: True\n"),
    ("md", r"""
Tiki-Taka and TTv2 therefore need the symmetry point of their fast array at zero: each device gets a
**reference** device programmed to its $w^*$, and the array reads $w - w_{\mathrm{ref}}$. In hardware the
reference is set by exactly this kind of alternating-pulse experiment, which is only as good as the
number of pulses spent on it (section 5). Chopped TTv2 and AGAD are designed to work without it.
"""),
    ("md", r"""
## 3 · Fitting a device model to a measurement

Real devices are characterized by a pulse experiment: 200 up pulses, 200 down pulses, then 200
alternating pulses, reading the device after each. We cannot download measured data here, so
`synthetic_measurement` produces a **synthetic** one from a hidden device (with cycle-to-cycle noise).
`fit_device` replays the same pulse sequence on the model and fits its parameters by least squares
(`scipy.optimize.least_squares`), then estimates the cycle-to-cycle noise from the residuals.
"""),
    ("code", r"""
hidden = pulsed.SoftBounds(dw_min=0.01, up_down=-0.3, w_max=0.9, w_min=-0.7, dw_min_std=0.3)
directions, measured = synthetic_measurement(hidden, seed=0)
fit = fit_device(pulsed.SoftBounds(), directions, measured)

fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.06)
fig.add_scatter(y=measured.numpy(), mode="markers", marker=dict(size=3, color="gray"), name="measured (synthetic)",
                row=1, col=1)
fig.add_scatter(y=fit.curve, mode="lines", line=dict(color="crimson"), name="fitted model", row=1, col=1)
fig.add_scatter(y=fit.residual, mode="lines", line=dict(color="crimson", width=1), name="residual", row=2, col=1)
fig.update_layout(title="SoftBounds fitted to 200 up / 200 down / 200 alternating pulses", height=440, width=680,
                  template="plotly_white", margin=dict(l=60, r=20, t=50, b=50))
fig.update_xaxes(title_text="pulse number", row=2, col=1)
fig.update_yaxes(title_text="weight", row=1, col=1)
fig.update_yaxes(title_text="model − data", row=2, col=1)
fig = go.FigureWidget(fig)

print(f"{'parameter':<11} {'hidden':>8} {'fitted':>8}")
for name in ("dw_min", "up_down", "w_max", "w_min", "dw_min_std"):
    print(f"{name:<11} {getattr(hidden, name):>8.4f} {getattr(fit.device, name):>8.4f}")
fig
"""),
    ("check", r"""
print("fitted within 10 % of the hidden device:",
      all(abs(fit.params[k] / getattr(hidden, k) - 1) < 0.1 for k in ("dw_min", "up_down", "w_max", "w_min")))
""", "fitted within 10 % of the hidden device: True\n"),
    ("md", r"""
The fit sees one device. A tile has thousands, each a little different: like the benchmark
`benchmarks/training_algorithms.py` we add **assumed** device-to-device spreads (30 % on the step, 10 % on
the bounds) to the fitted model, and that is the device every analog layer below is made of.
"""),
    ("code", r"""
fitted = dataclasses.replace(fit.device, dw_min_dtod=0.3, up_down_dtod=0.01, w_max_dtod=0.1, w_min_dtod=0.1)
fitted
"""),
    ("md", r"""
## 4 · The stochastic pulse-train update

SGD wants $\Delta W = -\eta\,\delta x^\top$ — an outer product, for every weight at once. The crossbar does
it with coincidences: during BL time slots, row $j$ fires a pulse with probability $\propto |x_j|$ and
column $i$ with probability $\propto |\delta_i|$; where both fire in the same slot, the device at their
crossing gets one pulse in direction $-\mathrm{sign}(x_j\delta_i)$. The expected update is the outer
product; each single update is a handful of discrete steps. Below: one update of a 32×32 tile of
constant-step devices, once, and averaged over 300 repetitions.
"""),
    ("code", r"""
const = pulsed.ConstantStep(dw_min=0.001, dw_min_std=0.0, dw_min_dtod=0.0, up_down_dtod=0.0,
                            w_max_dtod=0.0, w_min_dtod=0.0)
tile = pulsed.DeviceArray(const, 32, 32, seed=0)
gen = torch.Generator().manual_seed(0)
x, d, lr = torch.rand(1, 32), torch.randn(1, 32) * 0.5, 0.01
ideal = -lr * d.t() @ x
updates = torch.stack([pulsed_update(tile.w, x, d, lr, const, tile.tensors, generator=gen) - tile.w
                       for _ in range(300)])
mean_update = updates.mean(0)
rel = float((mean_update - ideal).norm() / ideal.norm())
fig = new_figure("Pulse-train update vs the ideal outer product", "ideal −η δ xᵀ", "pulsed update", width=560)
fig.add_scatter(x=ideal.flatten().numpy(), y=updates[0].flatten().numpy(), mode="markers",
                marker=dict(size=3, opacity=0.4), name="one update")
fig.add_scatter(x=ideal.flatten().numpy(), y=mean_update.flatten().numpy(), mode="markers",
                marker=dict(size=3), name="mean of 300")
lim = float(ideal.abs().max())
fig.add_scatter(x=[-lim, lim], y=[-lim, lim], mode="lines", line=dict(dash="dot", color="gray"), name="y = x")
print(f"one update: {int((updates[0] != 0).sum())} of 1024 devices pulsed; "
      f"relative error of the 300-update mean: {100 * rel:.1f} %")
fig
"""),
    ("check", r"""
print("the mean pulsed update is the outer product within 5 %:", rel < 0.05)
print("a single update moves by whole steps:", bool(torch.allclose(updates[0] / const.dw_min,
                                                                     (updates[0] / const.dw_min).round(), atol=1e-3)))
""", "the mean pulsed update is the outer product within 5 %: True\na single update moves by whole steps: True\n"),
    ("md", r"""
**Question.** Each device received at most BL = 31 pulses. Which weights in the scatter are represented
well by one update, and which only on average?
"""),
    ("md", r"""
## 5 · Training one network six ways

A 3-layer MLP (64 → 32 → 32 → 10) learns scikit-learn's 8×8 digits (offline). All weight layers are
`AnalogLinear` layers made of the fitted device; biases stay digital. `training_config(name, device=...)`
chooses the algorithm in one call and `AnalogSGD` steps the model (pulses for the tiles, plain SGD for the
biases). The algorithms (PHYSICS §4):

* **SGD** — the pulse-train update straight into the weights.
* **TTv2** (Tiki-Taka v2) — the gradient goes into a fast array A; columns of A are read now and then,
  accumulated in a digital buffer H, and H's whole steps are written into the weight array C. Needs A's
  symmetry point at zero: here the reference comes from 200 alternating pulses (section 2) — the
  hardware way, slightly unsettled.
* **TTv2, ideal reference** — the same with the simulator's exact $w^*$ (impossible in hardware).
* **c-TTv2** (chopped) — TTv2 with a random sign (chopper) per input that flips now and then; what is
  left of A's offset after the (same, imperfect) reference averages out in H.
* **AGAD** — choppers with a fixed period and a reference estimated on the fly from A's previous reads:
  no reference device at all.
* **Mixed precision** — the gradient accumulates in a digital matrix; only whole device steps are
  written to C.

The learning rates and knobs are the benchmark's tuned values; `AIMC_LAB_FAST=1` trains fewer epochs.
"""),
    ("code", r"""
split = al.data.digits(seed=0)
train_loader, _ = al.data.loaders(split, batch_size=16, seed=0, drop_last=True)
test = (split.x_test, split.y_test)
EPOCHS = 4 if FAST else 12

TTV2 = dict(transfer_columns=8, fast_lr=5.0, transfer_lr=0.1)
ALGORITHMS = {  # label: (algorithm, learning rate, options)
    "SGD": ("sgd", 0.2, {}),
    "TTv2": ("ttv2", 0.2, TTV2),
    "TTv2, ideal reference": ("ttv2", 0.2, TTV2),
    "c-TTv2": ("c-ttv2", 0.2, dict(transfer_columns=8, fast_lr=40.0, transfer_lr=0.1, in_chop_prob=0.05)),
    "AGAD": ("agad", 0.2, dict(transfer_columns=8, fast_lr=10.0, transfer_lr=0.1)),
    "mixed precision": ("mixed-precision", 0.2, {}),
}


def mlp(layer):
    torch.manual_seed(0)
    return nn.Sequential(layer(64, 32), nn.ReLU(), layer(32, 32), nn.ReLU(), layer(32, 10))


def train(label):
    # test accuracy after each epoch
    if label == "floating point":
        model, lr = mlp(nn.Linear), 0.3
        opt = torch.optim.SGD(model.parameters(), lr=lr)
    else:
        algorithm, lr, options = ALGORITHMS[label]
        config = training_config(algorithm, device=fitted, **options)
        model = mlp(lambda i, o: al.AnalogLinear(i, o, config=config))
        if label in ("TTv2", "c-TTv2"):  # A's reference from 200 alternating pulses, as the fitting protocol
            for k, tile in enumerate(al.analog_tiles(model)):
                tile.A.calibrate_reference(n_alternating=200, generator=k)
        opt = AnalogSGD(model, lr=lr)
    curve = []
    for epoch in range(EPOCHS):
        model.train()
        for xb, yb in train_loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
        model.eval()
        curve.append(al.accuracy(model, test))
    return curve


fig = new_figure("Test accuracy while training in memory", "epoch", "test accuracy (%)", height=400, width=720)
fig.update_xaxes(dtick=1)
curves = {}
for label in ["floating point", *ALGORITHMS]:
    curves[label] = train(label)
    style = dict(dash="dot", color="gray") if label == "floating point" else {}
    fig.add_scatter(x=list(range(1, EPOCHS + 1)), y=curves[label], mode="lines+markers", name=label, line=style)
for label, curve in curves.items():
    print(f"{label:<22} {curve[-1]:5.1f} %")
fig
"""),
    ("check", r"""
analog = {k: v[-1] for k, v in curves.items() if k != "floating point"}
print("SGD is the worst analog algorithm:", min(analog, key=analog.get) == "SGD")
print("every other algorithm beats SGD by more than 10 points:",
      all(acc > analog["SGD"] + 10 for name, acc in analog.items() if name != "SGD"))
""", "SGD is the worst analog algorithm: True\nevery other algorithm beats SGD by more than 10 points: True\n"),
    ("md", r"""
This is one seed: between the better algorithms, differences of a point or two are noise (run it with
another `torch.manual_seed` in `mlp`). `python benchmarks/training_algorithms.py` trains every algorithm
on 5 seeds and prints means and spreads (12 epochs: floating point 97.9 ± 0.5 %, SGD 80.8 ± 4.1, TTv2
92.7 ± 1.5, c-TTv2 95.2 ± 0.6, AGAD 95.5 ± 0.4, mixed precision 95.3 ± 0.7): the literature's shape —
SGD clearly worst, mixed precision near floating point, chopped TTv2 and AGAD better than TTv2 with the
same realistically calibrated reference.

**Questions.** (1) Replace `fitted` by `pulsed.idealized()` (constant, symmetric steps) in `train` — how
much does SGD recover, and why? (2) Give TTv2 a better calibration (`n_alternating=1000`): how close does
it come to the ideal reference? (3) Mixed precision keeps a full digital matrix per layer. What does that
cost in a real chip, and which algorithm avoids it?
"""),
    ("md", r"""
## 6 · Explore

The DeviceExplorer shows the pulse response of every device preset. Change the asymmetry and the bounds
and watch the symmetry point move; raise the cycle-to-cycle noise and see the traces fray.
"""),
    ("code", r"""
from aimc_lab.widgets import DeviceExplorer

DeviceExplorer(preset="reram_sb", traces=6, seed=0)
"""),
]
