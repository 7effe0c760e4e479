"""Speed of the analog layers on the CPU, against plain torch in the same run.

1. Forward of a 512×512 layer, batch 1024, in ``torch.no_grad``: ``nn.Linear`` (the baseline),
   AnalogLinear with the standard preset (noisy MVM, IR drop, PCM read noise, input range, no bound
   management), without IR drop, and with the library defaults (iterative bound management on).
2. Each preset's floor, measured in the same run on the same input: what the preset cannot avoid
   with torch ops on this CPU: per bound-management pass, the fp32 MAC and one Gaussian per output
   over the rows that pass re-runs (counted from the spec's exponents on this input), plus the
   second-order products the preset needs (Σ|w|x̃² for the PCM read-noise std; Σ|w||x̃| and
   Σw·x̃·position for IR drop, docs/physics.md §1 step 4b) in the fast path's aux dtype. No
   element-wise step is counted, so "vs floor" is what the element-wise work and overheads cost.
   nn.Linear, the layer and its floor are timed in alternation (one load change hits all three).
3. One hardware-aware training step (forward, backward, Adam step, post-step clip/remap) of a
   LeNet-style CNN on 28×28 inputs, batch 64: digital vs converted to analog with the standard preset,
   and the step's floor, timed in alternation. The floor is the digital step in which every layer the
   conversion makes analog also draws one Gaussian per output and forms the preset's second-order
   products (part 2's count) as convolutions or matmuls of |w| in the aux dtype, outside autograd.
4. Small batches, where the cost is per-op overhead, not arithmetic: one call of a 64→256 layer at
   batch 5 (the in-memory training tutorials' size), forward in ``torch.no_grad`` and forward +
   backward, AnalogLinear (standard preset in training mode with weight noise, and library defaults)
   vs ``nn.Linear``, timed in alternation.

Protocol: warm-up, then the median of ``--repeats`` timed runs; ratio = median / same-run baseline.
``--cpu-time`` times with the process's CPU clock instead of the wall clock: on a shared machine
(load above the core count) the wall clock mostly measures the wait for a core, the CPU clock what
the code costs (single-threaded: use it with ``--threads 1``).

    python benchmarks/bench_tile.py [--repeats 30] [--threads 2] [--csv out.csv] [--parts forward train small]
                                    [--cpu-time]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch
from torch import Tensor, nn

from aimc_lab import presets
from aimc_lab.config import replace_path
from aimc_lab.convert import convert_to_analog
from aimc_lab.kernels import backend
from aimc_lab.kernels.analog_mvm import cpu_fast
from aimc_lab.kernels.analog_mvm import reference as mvm_ref
from aimc_lab.nn import AnalogLinear
from aimc_lab.train.hwa import attach_hwa


CLOCK = {"clock": time.perf_counter}  # --cpu-time: time.process_time


def lenet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.Tanh(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.Tanh(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.Tanh(), nn.Linear(128, 10))


def interleaved_ms(fns, repeats: int, warmup: int = 2):
    """Median ms of each function in ``fns``, timed in alternation (a load change hits all alike)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    clock = CLOCK["clock"]
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            start = clock()
            fn()
            ts.append(clock() - start)
    return [1e3 * statistics.median(ts) for ts in times]


def floor_fn(x: Tensor, weight: Tensor, io):
    """What the preset ``io`` cannot avoid on input ``x`` [M, K] (see the module docstring, part 2), as
    one function: per bound-management pass, the fp32 MAC and one Gaussian per output of the rows
    that pass runs (the rows come from the spec's own exponents k on this input), plus the
    second-order products (three with IR drop, one for PCM read noise) in the fast path's aux dtype
    on the first pass. Returns (function, passes, products)."""
    M, K = x.shape
    w = weight.detach().t().contiguous().unsqueeze(0)  # [1, K, N]
    N = w.shape[-1]
    rows = [M]
    if io.bound_management == "iterative":
        _, saved, _ = mvm_ref.mvm_forward(x, weight.detach(), io, None, None, torch.Generator().manual_seed(0))
        alpha = mvm_ref.noise_management(x.unsqueeze(0), io)[0]
        kexp = torch.log2(saved[3][0] / alpha).round()  # [M]
        rows += [int((kexp >= p).sum()) for p in range(1, int(kexp.max()) + 1)]
    n_aux = (2 if io.ir_drop > 0 else 0) + (1 if io.w_noise > 0 and io.w_noise_type == "pcm_read" else 0)
    aux = cpu_fast.default_aux_dtype(x)
    gen = torch.Generator().manual_seed(0)
    parts = [x[:r].unsqueeze(0).contiguous() for r in rows]
    xa, wa = x.unsqueeze(0).to(aux), w.abs().to(aux)

    def run():
        for xr in parts:
            torch.bmm(xr, w)
            torch.randn(1, xr.shape[1], N, generator=gen)
        for _ in range(n_aux):
            torch.bmm(xa, wa)
    return run, len(rows), n_aux


PRESETS = (("standard preset", lambda: presets.standard_hwa()),
           ("standard without IR drop", lambda: replace_path(presets.standard_hwa(), "forward.ir_drop", 0.0)),
           ("library defaults (bound mgmt)", lambda: presets.library_defaults()))


def forward_rows(repeats: int):
    """Two input distributions, because iterative bound management costs what the data make it cost:
    post-ReLU-like inputs U[0, 1) drive most output rows of a 512-input tile past the ADC bound
    (2-3 passes), zero-mean N(0, 1) inputs rarely do (about one pass). Each preset's floor is
    measured on the same input, right after the preset, and nn.Linear again before each preset."""
    torch.manual_seed(0)
    linear = nn.Linear(512, 512)
    rows = []
    aux = str(cpu_fast.default_aux_dtype(torch.zeros(1))).replace("torch.", "")
    with torch.no_grad():
        for dist, x in (("x ~ U[0,1)", torch.rand(1024, 512)), ("x ~ N(0,1)", torch.randn(1024, 512))):
            title = f"forward 512x512, batch 1024, {dist}"
            bases = []
            for name, make in PRESETS:
                cfg = make()
                layer = AnalogLinear(512, 512, config=cfg)
                layer.set_weights(linear.weight, linear.bias)
                layer.eval()
                floor, passes, n_aux = floor_fn(x, layer.tile.weight, cfg.forward)
                base, ms, floor_ms = interleaved_ms([lambda: linear(x), lambda: layer(x), floor], repeats)
                bases.append(base)
                rows.append((title, f"AnalogLinear, {name}", ms, ms / base, ms / floor_ms))
                rows.append((title, f"  its floor: {passes} pass(es) of MAC + Gaussian, {n_aux} {aux} products",
                             floor_ms, floor_ms / base, 1.0))
            rows.insert(len(rows) - 2 * len(PRESETS), (title, "nn.Linear (median over the presets' runs)",
                                                      statistics.median(bases), 1.0, float("nan")))
    return rows


class _FloorLayer(nn.Module):
    """A digital conv or linear layer plus what its analog twin cannot avoid (module doc, part 3)."""

    def __init__(self, layer: nn.Module, products: int, aux: torch.dtype) -> None:
        super().__init__()
        self.layer, self.products, self.aux = layer, products, aux
        self.generator = torch.Generator().manual_seed(0)

    def forward(self, x: Tensor) -> Tensor:
        y = self.layer(x)
        with torch.no_grad():
            xa, wa = x.detach().to(self.aux), self.layer.weight.detach().abs().to(self.aux)
            conv = isinstance(self.layer, nn.Conv2d)
            for _ in range(self.products):
                nn.functional.conv2d(xa, wa) if conv else nn.functional.linear(xa, wa)
            noise = torch.randn(y.shape, generator=self.generator)
        return y + noise.mul_(0.0)


def hwa_floor(model: nn.Sequential, io) -> nn.Sequential:
    """``model`` with each conv/linear layer a :class:`_FloorLayer` for the preset ``io``."""
    products = (2 if io.ir_drop > 0 else 0) + (1 if io.w_noise > 0 and io.w_noise_type == "pcm_read" else 0)
    aux = cpu_fast.default_aux_dtype(torch.zeros(1))
    return nn.Sequential(*[_FloorLayer(m, products, aux) if isinstance(m, (nn.Conv2d, nn.Linear)) else m
                           for m in model])


def training_rows(repeats: int):
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))
    digital = lenet()
    config = presets.standard_hwa(modifier_std=0.05)
    analog = convert_to_analog(lenet(), config)
    floor = hwa_floor(lenet(), config.forward)
    loss_fn = nn.CrossEntropyLoss()
    rows = []

    def stepper(model, hwa):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        if hwa:
            attach_hwa(opt, model)

        def step():
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        return step

    base, ms, floor_ms = interleaved_ms([stepper(digital, False), stepper(analog, True), stepper(floor, False)],
                                        repeats, warmup=3)
    title = "train step LeNet, batch 64"
    rows.append((title, "digital", base, 1.0, float("nan")))
    rows.append((title, "hardware-aware, standard preset", ms, ms / base, ms / floor_ms))
    rows.append((title, "  its floor: digital + Gaussian per output + products", floor_ms, floor_ms / base, 1.0))
    return rows


def small_batch_rows(repeats: int):
    """Per-call cost at batch 5 (part 4 of the module docstring); each row its own median over 20x
    ``repeats`` calls, the analog layer and nn.Linear timed in alternation."""
    torch.manual_seed(0)
    x = torch.rand(5, 64, requires_grad=True)
    linear = nn.Linear(64, 256)
    rows = []
    for name, cfg in (("standard preset, training, weight noise", presets.standard_hwa(modifier_std=0.05)),
                      ("library defaults, training", presets.library_defaults())):
        layer = AnalogLinear(64, 256, config=cfg)
        layer.train()

        def forward(module):
            def run():
                with torch.no_grad():
                    module(x)
            return run

        def forward_backward(module):
            def run():
                module(x).sum().backward()
            return run
        for label, make in (("forward", forward), ("forward + backward", forward_backward)):
            base, ms = interleaved_ms([make(linear), make(layer)], 20 * repeats, warmup=110)
            title = f"64->256, batch 5, {label}"
            rows.append((title, "nn.Linear", base, 1.0, float("nan")))
            rows.append((title, f"AnalogLinear, {name}", ms, ms / base, float("nan")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--csv", default=None)
    parser.add_argument("--parts", nargs="+", default=["forward", "train", "small"],
                        choices=["forward", "train", "small"])
    parser.add_argument("--cpu-time", action="store_true", help="time with the process CPU clock")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.cpu_time:
        CLOCK["clock"] = time.process_time
    parts = {"forward": forward_rows, "train": training_rows, "small": small_batch_rows}
    rows = [row for part in args.parts for row in parts[part](args.repeats)]
    table = pd.DataFrame(rows, columns=["benchmark", "provider", "median_ms", "ratio", "vs floor"])
    clock = "process CPU time" if args.cpu_time else "wall clock"
    print(f"backend: {backend.active(torch.device('cpu'))}, torch threads: {torch.get_num_threads()}, {clock}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
