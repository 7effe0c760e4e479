"""Cells of notebooks/01_analog_mvm.ipynb (built by build_notebooks.py)."""

CELLS = [
    ("md", r"""
# 01 · The analog matrix-vector multiply

An **analog in-memory computing (AIMC) tile** stores a weight matrix $W \in \mathbb{R}^{N\times K}$ in
the conductances of a crossbar of memory devices. To compute $y = Wx$ it applies a voltage
$V_j \propto x_j$ to each row $j$; each device passes a current $G_{ij} V_j$ (Ohm's law) and the
currents add up along each column (Kirchhoff's current law):

$$ I_i = \sum_{j=1}^{K} G_{ij}\, V_j . $$

The whole matrix-vector product happens in one step, where the weights are — no weight is ever moved.
The price: every step of this is analog and therefore imperfect. In this notebook you turn the
nonidealities on **one at a time**, see what each one does to the result, and then play with all of
them together.

**Contents.** 1 · a crossbar · 2 · the reference experiment · 3 · DAC · 4 · ADC and output bound ·
5 · output noise · 6 · weight read noise · 7 · IR drop · 8 · noise and bound management ·
9 · PCM devices · 10 · everything together · 11 · the paper's number

Set `AIMC_LAB_FAST=1` in the environment to run everything on smaller sizes (same code).
"""),
    ("code", r"""
import os
from dataclasses import replace

import numpy as np
import plotly.graph_objects as go
import torch

import aimc_lab as al
from aimc_lab.devices.base import weights_to_conductances

FAST = os.environ.get("AIMC_LAB_FAST", "0") == "1"
torch.manual_seed(0)
N = K = 256 if FAST else 512   # tile size (outputs x inputs)
M = 128 if FAST else 1000      # number of input vectors
print("backend:", al.backend.active(), "| fast mode:", FAST)


def small_plot(x, ys, xlabel, title, log_x=False, ylabel="relative error (%)"):
    # one small figure: a line per entry of ys = {name: values}
    fig = go.FigureWidget(layout=dict(title=title, height=300, width=560, template="plotly_white",
                                      margin=dict(l=60, r=20, t=50, b=50)))
    for name, y in ys.items():
        fig.add_scatter(x=list(x), y=list(y), mode="lines+markers", name=name)
    fig.update_xaxes(title_text=xlabel, type="log" if log_x else "linear")
    fig.update_yaxes(title_text=ylabel)
    return fig
"""),
    ("md", r"""
## 1 · What a crossbar computes

Conductances are positive, weights are not. Each weight uses a **differential pair** of devices,
$w_{ij} \propto G^+_{ij} - G^-_{ij}$: with the scale $s = g_{\max}/\max|W|$ (here $g_{\max} = 25\,\mu S$),
a positive weight goes to $G^+ = s\,w$ and a negative one to $G^- = -s\,w$. Subtracting the two column
currents gives back $Wx$ (times $s$ and the read voltage).
"""),
    ("code", r"""
W_small = torch.tensor([[0.5, -1.0, 0.25, 0.0],
                        [-0.3, 0.8, 0.0, 1.0],
                        [0.9, 0.1, -0.6, -0.2]])        # [N=3, K=4]
x_small = torch.tensor([0.2, -0.4, 1.0, 0.5])         # [K]
g_plus, g_minus, s = weights_to_conductances(W_small, g_max=25.0)
v_read = 0.2                                           # volts for |x| = 1
currents = (g_plus - g_minus) @ (v_read * x_small)     # µS · V = µA
print("G+ (µS):\n", g_plus + 0.0, "\nG- (µS):\n", g_minus + 0.0)   # + 0.0 turns -0 into 0
print("column currents (µA):", currents)
print("W x               :", W_small @ x_small)
"""),
    ("check", r"""
print("currents / (s * v_read) equal W x:", torch.allclose(currents / (s * v_read), W_small @ x_small))
""", "currents / (s * v_read) equal W x: True\n"),
    ("md", r"""
**Question.** Why does the crossbar need *two* devices per weight? What would a single device with an
offset conductance (weight 0 at $g_{\max}/2$) cost in range, and what would it cost in noise?
"""),
    ("md", r"""
## 2 · The reference experiment

Throughout, we follow the tile experiment of the AIHWKIT paper (Le Gallo et al. 2023): weights
$W_{ij} \sim \mathcal{N}(0, 0.246^2)$ clipped to $[-1, 1]$, inputs uniform in $[-1, 1]$ with half of them
set to zero, and the **relative error**

$$ \varepsilon = \frac{\lVert y - Wx \rVert_2}{\lVert Wx \rVert_2} . $$

`clean` is a tile with every nonideality off: no quantization, no noise, no clipping.
"""),
    ("code", r"""
g = torch.Generator().manual_seed(0)
w = (torch.randn(N, K, generator=g) * 0.246).clamp(-1, 1)     # [N, K]
x = torch.rand(M, K, generator=g) * 2 - 1                      # [M, K]
x[torch.rand(M, K, generator=g) < 0.5] = 0.0
ideal = x @ w.T                                                # [M, N]


def rel_error(y):
    return float((y - ideal).norm() / ideal.norm())


def analog(io, inputs=x):
    # one noisy analog MVM with a fixed noise seed, so every figure is reproducible
    return al.analog_mvm(inputs, w, io, generator=torch.Generator().manual_seed(1))


clean = al.IOParameters(inp_res=0, out_res=0, out_noise=0.0, out_bound=1e6, bound_management="none")
print(clean)
"""),
    ("check", r"""
print("clean tile reproduces W x:", rel_error(analog(clean)) < 1e-5)
""", "clean tile reproduces W x: True\n"),
    ("md", r"""
## 3 · The DAC: input quantization

Digital inputs become voltages through a digital-to-analog converter with $b$ bits. After scaling the
input row by $1/\alpha$ (noise management, section 8), each input is rounded to the step
$\Delta_{in} = 2\,b_{in}/(2^b - 2)$ and clipped to $\pm b_{in}$:

$$ \tilde x_j = \mathrm{clip}\big(\Delta_{in}\,\mathrm{round}(x_j/(\alpha\,\Delta_{in})),\ -b_{in},\ b_{in}\big). $$
"""),
    ("code", r"""
bits = list(range(2, 11))
err_dac = [100 * rel_error(analog(replace(clean, inp_res=1 / (2 ** b - 2)))) for b in bits]
small_plot(bits, {"DAC only": err_dac}, "DAC bits", "Input quantization")
"""),
    ("md", r"""
**Question.** Each extra bit should halve the error. Does the plot agree? (Read off two neighbouring
points.)
"""),
    ("md", r"""
## 4 · The ADC: output quantization and the output bound

Column currents are read by an analog-to-digital converter with range $\pm b_{out}$ and step
$\Delta_{out} = 2\,b_{out}/(2^b - 2)$: $y_i = \mathrm{clip}(Q(z_i; \Delta_{out}), -b_{out}, b_{out})$.
A **small** bound clips large outputs; a **large** bound wastes resolution on values that never occur.
"""),
    ("code", r"""
adc_bits = list(range(4, 13))
curves = {}
for bound in (2.0, 12.0, 60.0):
    curves[f"bound ±{bound:g}"] = [100 * rel_error(analog(replace(clean, out_res=1 / (2 ** b - 2), out_bound=bound)))
                                   for b in adc_bits]
small_plot(adc_bits, curves, "ADC bits", "Output quantization and clipping", ylabel="relative error (%)")
"""),
    ("code", r"""
print("largest |Wx| in this experiment:", float(ideal.abs().max()))
"""),
    ("md", r"""
**Exercise.** From the largest $|Wx|$ printed above, which output bound would you choose for an 8-bit
ADC? Try it: change one bound in the cell above.
"""),
    ("md", r"""
## 5 · Output noise

The analog read-out adds noise to every column: $z_i \leftarrow z_i + \sigma_{out}\,\xi_i$ with
$\xi_i \sim \mathcal{N}(0, 1)$, in the normalized units where $|w| \le 1$ and $|x| \le 1$.
"""),
    ("code", r"""
sigmas = [0.0, 0.02, 0.04, 0.06, 0.1, 0.15, 0.2]
err_out = [100 * rel_error(analog(replace(clean, out_noise=s_))) for s_ in sigmas]
small_plot(sigmas, {"output noise": err_out}, "output noise σ_out", "Output noise")
"""),
    ("md", r"""
**Question.** The error grows linearly in $\sigma_{out}$. Why linearly, and why would it be smaller
for a tile with more active inputs (less sparsity)?
"""),
    ("md", r"""
## 6 · Weight read noise

Reading a device gives a slightly different conductance every time (short-term, 1/f-like noise). The
PCM-read model adds, per output, noise that grows with the weights and inputs that take part:

$$ z_i \leftarrow z_i + \sigma_w \sqrt{\textstyle\sum_j |w_{ij}|\,\tilde x_j^2}\ \xi_i . $$
"""),
    ("code", r"""
w_sigmas = [0.0, 0.01, 0.0175, 0.03, 0.05, 0.08]
err_w = [100 * rel_error(analog(replace(clean, w_noise=s_, w_noise_type="pcm_read" if s_ > 0 else "none")))
         for s_ in w_sigmas]
small_plot(w_sigmas, {"PCM read noise": err_w}, "weight read noise σ_w", "Weight read noise")
"""),
    ("md", r"""
**Question.** The standard setting uses $\sigma_w = 0.0175$. How large is the error it causes alone?
"""),
    ("md", r"""
## 7 · IR drop

The wires have resistance, so the voltage along a column drops, more so far from the output and when
many large currents flow. The model reduces each output by a factor that grows with the column's total
current $a_i = \frac{K}{G_r}\sum_j |w_{ij}\,\tilde x_j|$ and with the distance of row $j$ from the output:

$$ z_i \leftarrow z_i - \rho\, c(a_i) \sum_j w_{ij}\,\tilde x_j \left(1 - (1 - j/K)^2\right),
\quad c(a) = a(0.5 - 0.2a + 0.05a^2). $$
"""),
    ("code", r"""
rhos = [0.0, 0.5, 1.0, 2.0, 4.0, 8.0]
err_ir = [100 * rel_error(analog(replace(clean, ir_drop=r))) for r in rhos]
small_plot(rhos, {"IR drop": err_ir}, "IR drop strength ρ", "IR drop")
"""),
    ("md", r"""
**Question.** IR drop is a *systematic* error, not noise. Would averaging many reads of the same
input reduce it? Which of the previous nonidealities would averaging reduce?
"""),
    ("md", r"""
## 8 · Noise management and bound management

The DAC only covers $\pm b_{in}$. **Noise management** divides each input row by
$\alpha = \max_j |x_j|$ (abs-max) before the DAC and multiplies the outputs by $\alpha$ afterwards, so
small inputs use the full DAC range instead of drowning in output noise. **Bound management** retries
a row with the inputs halved ($2^k$) whenever an output hits the ADC bound. Below, the whole input
batch is scaled by a factor: tiny and huge inputs show what each one is for.
"""),
    ("code", r"""
default = al.IOParameters()          # library defaults: 7-bit DAC, 9-bit ADC (±12), σ_out = 0.06
scales = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
cases = {"abs-max + iterative (default)": default,
         "abs-max, no bound management": replace(default, bound_management="none", out_bound=4.0),
         "no noise management": replace(default, noise_management="none", bound_management="none")}
curves = {name: [] for name in cases}
for scale in scales:
    ideal_scaled = (scale * x) @ w.T
    for name, io in cases.items():
        y = analog(io, scale * x)
        curves[name].append(100 * float((y - ideal_scaled).norm() / ideal_scaled.norm()))
fig = small_plot(scales, curves, "input scale", "Noise and bound management", log_x=True)
fig.update_yaxes(type="log")
fig
"""),
    ("md", r"""
**Question.** Without noise management, why does the error explode for small inputs, and why does it
grow again for large ones? (Hint: what does the DAC do with an input of 3?)
"""),
    ("md", r"""
## 9 · PCM devices: programming noise, drift and read noise

Real devices are not programmed exactly, and phase-change memory (PCM) conductances **drift** down
after programming, $G(t) = G_P\,(t/t_0)^{-\nu}$ with a device-dependent exponent $\nu \approx 0.05$.
`program()` applies programming noise and draws $\nu$ once; `drift(t)` computes the conductances
$t$ seconds later (plus fresh read noise). **Global drift compensation** measures the average
read-out after programming and at time $t$ and rescales the outputs by their ratio. Notebook 02 goes
into the device model in detail.
"""),
    ("code", r"""
def tile_error(config, times):
    tile = al.AnalogTile(N, K, config)
    tile.set_weights(w)
    tile.eval()
    tile.generator = torch.Generator().manual_seed(2)
    tile.program(torch.Generator().manual_seed(3))
    errors = []
    with torch.no_grad():
        for t in times:
            tile.drift(t, torch.Generator().manual_seed(4))
            errors.append(100 * rel_error(tile(x)))
    return errors


pcm_clean = al.AnalogConfig(forward=clean, noise_model=al.NoiseModelParameters(kind="pcm"))
times = list(al.inference.TIMES)
curves = {"PCM only, no compensation": tile_error(pcm_clean, times),
          "PCM only, global compensation": tile_error(
              al.config.replace_path(pcm_clean, "drift_compensation.kind", "global"), times)}
fig = small_plot(times, curves, "time after programming", "PCM devices over time", log_x=True)
fig.update_xaxes(tickvals=times, ticktext=[al.inference.time_label(t) for t in times])
fig
"""),
    ("md", r"""
**Question.** Drift compensation multiplies the outputs by one number per tile. Which part of the
drift error can it remove, and which part can it not?
"""),
    ("md", r"""
## 10 · Everything together

The **TileExplorer** puts all these knobs on one panel (a 512×512 tile in the full run). Pick a preset,
then move one control at a time and watch the scatter of analog vs ideal outputs, the error histogram
and the relative error. The drift time slider is active when PCM noise is on.
"""),
    ("code", r"""
from aimc_lab.widgets import TileExplorer

explorer = TileExplorer(preset="standard HWA", size=N, n_inputs=min(M, 256), seed=0)
explorer
"""),
    ("md", r"""
**Exercise.** Starting from the "standard HWA" preset at 1 s, which *single* control change reduces
the error the most? Which change hurts the most when you move it by one step?
"""),
    ("md", r"""
## 11 · The paper's number

Le Gallo et al. (2023, Fig. 5b) report about **13 %** relative error for a 512×512 tile with the
"commonly used" hardware settings (8-bit DAC and ADC, output noise 0.04, PCM read noise 0.0175,
IR drop, no bound management) **plus** the PCM model at 1 s after programming, with drift
compensation. We compute it, over many input vectors:
"""),
    ("code", r"""
config = al.config.replace_path(al.presets.standard_hwa(), "input_range.enable", False)  # inputs already in [-1, 1]
n_vec = 256 if FAST else 1000
g = torch.Generator().manual_seed(10)
w_512 = (torch.randn(512, 512, generator=g) * 0.246).clamp(-1, 1)
x_512 = torch.rand(n_vec, 512, generator=g) * 2 - 1
x_512[torch.rand(n_vec, 512, generator=g) < 0.5] = 0.0
ideal_512 = x_512 @ w_512.T

tile = al.AnalogTile(512, 512, config)
tile.set_weights(w_512)
tile.eval()
tile.generator = torch.Generator().manual_seed(11)
tile.program(torch.Generator().manual_seed(12))
tile.drift(1.0, torch.Generator().manual_seed(13))
with torch.no_grad():
    paper_error = float((tile(x_512) - ideal_512).norm() / ideal_512.norm())
    mvm_only = float((al.analog_mvm(x_512, w_512, config.forward, generator=torch.Generator().manual_seed(14))
                      - ideal_512).norm() / ideal_512.norm())
print(f"standard preset, MVM nonidealities only: {100 * mvm_only:.1f} %")
print(f"standard preset + PCM at 1 s           : {100 * paper_error:.1f} %")
"""),
    ("check", r"""
print("about 13 % (between 10 % and 16 %):", 0.10 < paper_error < 0.16)
print("PCM adds most of it:", paper_error > 2 * mvm_only)
""", "about 13 % (between 10 % and 16 %): True\nPCM adds most of it: True\n"),
    ("md", r"""
**Final question.** The MVM nonidealities alone give a few percent; the PCM devices more than double it
at just 1 s. Where does the extra error come from — programming noise, drift, or read noise? Use the
`al.NoiseModelParameters` fields `prog_noise_scale`, `drift_scale` and `read_noise_scale` (set one at a
time to 0) to find out.
"""),
]
