"""Cells of notebooks/02_pcm_drift_inference.ipynb (built by build_notebooks.py)."""

CELLS = [
    ("md", r"""
# 02 · PCM devices, drift, and a network over a year

Notebook 01 treated the tile as a noisy matrix. Here we look inside: the **phase-change memory (PCM)**
devices that hold the weights. You will see how a weight becomes a pair of conductances, how precisely
they can be programmed, how they **drift** after programming, how noisy each read is, and how **drift
compensation** corrects part of it. Then we put a small trained network on PCM tiles and follow its
accuracy for a year — trained normally, and trained **hardware-aware**.

**Contents.** 1 · conductances and programming noise · 2 · drift · 3 · read noise ·
4 · drift compensation · 5 · a network on PCM tiles · 6 · hardware-aware training · 7 · explore

Set `AIMC_LAB_FAST=1` to shrink training and repeats (same code path).
"""),
    ("code", r"""
import os

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

import aimc_lab as al
from aimc_lab.convert import convert_to_analog
from aimc_lab.devices import pcm
from aimc_lab.train import calibrate_input_ranges, hwa_train

FAST = os.environ.get("AIMC_LAB_FAST", "0") == "1"
torch.manual_seed(0)
params = al.NoiseModelParameters(kind="pcm")       # the PCM model with its published defaults
g_max = params.g_max                               # 25 µS
print("backend:", al.backend.active(), "| fast mode:", FAST)


def small_plot(x, ys, xlabel, ylabel, title, log_x=False):
    fig = go.FigureWidget(layout=dict(title=title, height=300, width=560, template="plotly_white",
                                      margin=dict(l=60, r=20, t=50, b=50)))
    for name, y in ys.items():
        fig.add_scatter(x=list(x), y=list(y), mode="lines", name=name)
    fig.update_xaxes(title_text=xlabel, type="log" if log_x else "linear")
    fig.update_yaxes(title_text=ylabel)
    return fig
"""),
    ("md", r"""
## 1 · From weights to conductances, and programming noise

Each weight maps to a differential pair with the scale $s = g_{\max}/\max|W|$:
$G^+ = \mathrm{clip}(s\,w, 0, g_{\max})$, $G^- = \mathrm{clip}(-s\,w, 0, g_{\max})$. Programming a device
to a target $G_T$ is iterative and never exact; what is left is Gaussian with a standard deviation that
depends on the target ($\hat g = G_T/g_{\max}$):

$$ G_P = \max\big(0,\ G_T + \sigma_P(G_T)\,\xi\big), \qquad
   \sigma_P = c_0 + c_1 \hat g + c_2 \hat g^2 ,\quad (c_0, c_1, c_2) = (0.263, 1.965, -1.173)\ \mu S. $$
"""),
    ("code", r"""
g_t = torch.linspace(0, g_max, 101)
sigma_p = pcm.programming_noise_std(g_t, params)
small_plot(g_t.numpy(), {"σ_P": sigma_p.numpy()}, "target conductance G_T (µS)", "σ_P (µS)",
           "Programming noise vs target")
"""),
    ("check", r"""
print(f"sigma_P at g_max: {float(pcm.programming_noise_std(torch.tensor(g_max), params)):.3f} uS")
""", "sigma_P at g_max: 1.055 uS\n"),
    ("md", r"""
**Question.** Relative to the target, is programming more precise for large or for small conductances?
What does that mean for small weights?
"""),
    ("md", r"""
## 2 · Drift

After programming, the amorphous phase of a PCM cell relaxes and its conductance decays as a power law,

$$ G_D(t) = G_P \left(\frac{t + t_0}{t_0}\right)^{-\nu}, \qquad t_0 = 20\ \text{s}, $$

with a drift exponent $\nu$ drawn once per device: $\nu = |\mu_\nu + \sigma_\nu \xi|$, where $\mu_\nu$ and
$\sigma_\nu$ grow for smaller conductances ($\mu_\nu = \mathrm{clip}(-0.0155 \ln \hat g + 0.0244,\ 0.049,\ 0.1)$).
"""),
    ("code", r"""
mu_nu, sigma_nu = pcm.drift_exponent_stats(g_t[1:], params)
fig = small_plot(g_t[1:].numpy(), {"mean ν": mu_nu.numpy(), "std ν": sigma_nu.numpy()},
                 "target conductance G_T (µS)", "drift exponent", "Drift exponent statistics")
fig
"""),
    ("code", r"""
times = np.logspace(0, np.log10(3.1536e7), 60)
remaining = {f"ν = {nu}": ((times + 20.0) / 20.0) ** (-nu) for nu in (0.03, 0.05, 0.1)}
small_plot(times, remaining, "time after programming (s)", "G(t) / G_P", "Power-law drift", log_x=True)
"""),
    ("check", r"""
nu_gmax = float(pcm.drift_exponent_stats(torch.tensor(g_max), params)[0])
print(f"a device at g_max keeps {100 * ((3600 + 20) / 20) ** -nu_gmax:.0f} % after 1 hour "
      f"and {100 * ((3.1536e7 + 20) / 20) ** -nu_gmax:.0f} % after 1 year")
""", "a device at g_max keeps 78 % after 1 hour and 50 % after 1 year\n"),
    ("md", r"""
**Question.** Drift halves the conductance in a year, but differently for every device (each has its own
$\nu$). Which of the two effects — the common decay or the spread — can a single correction factor
undo?
"""),
    ("md", r"""
## 3 · Read noise

Every read of a device fluctuates (1/f noise), and the accumulated noise grows slowly with time:

$$ \sigma_R = |G_D|\, Q_s \sqrt{\ln\frac{t + t_{read}}{2\,t_{read}}}, \qquad
   Q_s = \min\!\big(0.0088 / (|G_P|/g_{\max})^{0.65},\ 0.2\big), \quad t_{read} = 250\ \text{ns}. $$
"""),
    ("code", r"""
curves = {}
for target in (2.5, 10.0, 25.0):
    g_p = torch.tensor([target])
    relative = []
    for t in times:
        g_d = g_p * ((t + 20.0) / 20.0) ** (-0.05)                      # drift with ν = 0.05
        relative.append(100 * float(pcm.read_noise_std(g_p, g_d, t + 20.0, params) / g_d))
    curves[f"G_P = {target:g} µS"] = relative
small_plot(times, curves, "time after programming (s)", "σ_R / G_D (%)", "Relative read noise", log_x=True)
"""),
    ("md", r"""
**Question.** Which devices are relatively the noisiest to read, and why does that make small weights
hard to use?

**Play.** The ConductanceExplorer shows everything so far for many devices at once: programmed
conductances of a small tile, the programming error, and conductance vs time for five target states.
Scale each noise source with its slider.
"""),
    ("code", r"""
from aimc_lab.widgets import ConductanceExplorer

ConductanceExplorer(size=32, n_devices=200 if FAST else 500, seed=0)
"""),
    ("md", r"""
## 4 · Drift compensation

Drift shrinks all outputs of a tile by roughly the same factor. **Global drift compensation** measures
that factor: right after programming the tile reads its own weights with one-hot inputs $X = I$
and stores $\mathrm{ref} = \mathrm{mean}|F(W_P; I)|$; at time $t$ it reads again and multiplies every
output by

$$ \alpha(t) = \frac{\mathrm{ref}}{\mathrm{mean}|F(W(t); I)|}. $$
"""),
    ("code", r"""
n = 128
g = torch.Generator().manual_seed(0)
w = (torch.randn(n, n, generator=g) * 0.246).clamp(-1, 1)
x = torch.rand(256, n, generator=g) * 2 - 1
ideal = x @ w.T
t_axis = list(al.inference.TIMES)
curves = {}
for kind in ("none", "global"):
    config = al.AnalogConfig(noise_model=params, drift_compensation=al.DriftCompensationParameters(kind=kind))
    tile = al.AnalogTile(n, n, config)
    tile.set_weights(w)
    tile.eval()
    tile.generator = torch.Generator().manual_seed(1)
    tile.program(torch.Generator().manual_seed(2))
    ratio = []
    with torch.no_grad():
        for t in t_axis:
            tile.drift(t, torch.Generator().manual_seed(3))
            ratio.append(float(tile(x).abs().mean() / ideal.abs().mean()))
    curves[f"compensation: {kind}"] = ratio
fig = small_plot(t_axis, curves, "time after programming", "mean |y| / mean |Wx|", "Output magnitude over time",
                 log_x=True)
fig.update_xaxes(tickvals=t_axis, ticktext=[al.inference.time_label(t) for t in t_axis])
fig
"""),
    ("check", r"""
print("without compensation the outputs shrink:", curves["compensation: none"][-1] < 0.8 * curves["compensation: none"][0])
print("with compensation they keep their size:", abs(curves["compensation: global"][-1] - 1) < 0.1)
""", "without compensation the outputs shrink: True\nwith compensation they keep their size: True\n"),
    ("md", r"""
**Question.** A classifier picks the largest output. If all outputs of the *last* layer shrink by the
same factor, does the prediction change? Why can it still matter in a deeper network (think of the
digital bias and of the ADC)?
"""),
    ("md", r"""
## 5 · A network on PCM tiles

We train a narrow multilayer perceptron (64 → 16 → 16 → 16 → 10) on scikit-learn's 8×8 handwritten
digits (`aimc_lab.data.digits`, offline), digitally, in floating point. It is narrow on purpose: a wide
network averages the device noise out over many weights, a narrow one depends on each weight, as the
large networks of the paper do. Then `convert_to_analog` puts each `nn.Linear` on analog tiles with
the paper's standard hardware settings (PCM model, global drift compensation) and we calibrate each
tile's input range on training data.
"""),
    ("code", r"""
split = al.data.digits(seed=0)
train_loader, _ = al.data.loaders(split, batch_size=32, seed=0)
test = (split.x_test, split.y_test)

torch.manual_seed(0)
fp_model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Linear(16, 10))
opt = torch.optim.Adam(fp_model.parameters(), lr=1e-3)
for epoch in range(20 if FAST else 60):
    for xb, yb in train_loader:
        opt.zero_grad()
        nn.functional.cross_entropy(fp_model(xb), yb).backward()
        opt.step()
fp_model.eval()
fp_acc = al.accuracy(fp_model, test)

config = al.presets.standard_hwa()
analog_model = convert_to_analog(fp_model, config)
calibrate_input_ranges(analog_model, split.x_train, quantile=0.9995)
print(f"digital test accuracy: {fp_acc:.1f} %")
print(analog_model)
"""),
    ("code", r"""
repeats = 2 if FAST else 5
plain = al.evaluate_over_time(analog_model, test, times=al.inference.TIMES, repeats=repeats, seed=0)
plain
"""),
    ("check", r"""
print("the digital network learned the task (> 50 %):", fp_acc > 50)
print("the analog copy is never better than digital + 5 points:", bool((plain["mean"] < fp_acc + 5).all()))
""", "the digital network learned the task (> 50 %): True\nthe analog copy is never better than digital + 5 points: True\n"),
    ("md", r"""
**Question.** How many points does the converted network lose at 1 s, and how many more after a year?
Which of sections 1–3 explains the loss at 1 s?
"""),
    ("md", r"""
## 6 · Hardware-aware training

**Hardware-aware (HWA) training** fine-tunes the network *with the analog forward pass in the loop*
and with extra Gaussian weight noise $W + \sigma\,\max|W|\,\xi$ injected at every mini-batch, so it
learns weights that tolerate noise; after each step the weights are clipped and remapped to the full
conductance range (`aimc_lab.train.hwa_train`).
"""),
    ("code", r"""
torch.manual_seed(1)
hwa_model = convert_to_analog(fp_model, al.presets.standard_hwa(modifier_std=0.1))
calibrate_input_ranges(hwa_model, split.x_train)   # a good start; hwa_train then learns the ranges
losses = hwa_train(hwa_model, train_loader, epochs=8 if FAST else 30, lr=3e-3)
hwa = al.evaluate_over_time(hwa_model, test, times=al.inference.TIMES, repeats=repeats, seed=0)

fig = go.FigureWidget(layout=dict(title="Test accuracy over a year of drift", height=380, width=700,
                                  template="plotly_white", margin=dict(l=60, r=20, t=50, b=50)))
fig.add_scatter(x=list(al.inference.TIMES), y=[fp_acc] * len(al.inference.TIMES), name="digital",
                line=dict(dash="dot", color="gray"))
for name, table in (("converted, no HWA", plain), ("hardware-aware", hwa)):
    fig.add_scatter(x=table["time_s"], y=table["mean"], error_y=dict(array=table["std"]), name=name,
                    mode="lines+markers")
fig.update_xaxes(type="log", tickvals=list(al.inference.TIMES),
                 ticktext=[al.inference.time_label(t) for t in al.inference.TIMES], title_text="time after programming")
fig.update_yaxes(title_text="test accuracy (%)")
fig
"""),
    ("check", r"""
print("HWA training loss went down:", losses[-1] < losses[0] or len(losses) == 1)
""", "HWA training loss went down: True\n"),
    ("md", r"""
**Question.** The paper reports that HWA-trained networks stay within 2–3 points of floating point
for a year while plainly converted ones can lose much more. Do you see the same here? Try a larger
`modifier_std` (0.2) — what do you gain and what do you lose?
"""),
    ("md", r"""
## 7 · Explore

The DriftExplorer compares the same two models plus the HWA model *without* drift compensation. Make
the devices drift faster with the "drift exponent ×" slider and watch which curve falls first.
"""),
    ("code", r"""
from aimc_lab.widgets import DriftExplorer

DriftExplorer(fp_model=fp_model, hwa_model=hwa_model, train_data=(split.x_train, split.y_train), test_data=test,
              repeats=repeats, seed=0)
"""),
    ("md", r"""
**Final exercise.** Replace `al.presets.standard_hwa()` in section 5 by `al.presets.pcm_inference()`
(library-default converters with dynamic noise management instead of input ranges) and rerun. Which
preset keeps the accuracy better over a year, and which of its settings would you credit?
"""),
]
