"""Speed of the analog layers on the CPU, against plain torch in the same run.

1. Forward of a 512×512 layer, batch 1024: ``nn.Linear`` (the floor), AnalogLinear with the standard
   preset (noisy MVM, IR drop, PCM read noise, input range, no bound management) and with the library
   defaults (iterative bound management on), all in ``torch.no_grad``.
2. What the standard preset cannot avoid, measured in the same run: the fp32 MAC, one Gaussian draw
   per output (output noise and PCM read noise are drawn as one), and the three second-order products
   (Σ|w|x̃² for the PCM read-noise std; Σ|w||x̃| and Σw·x̃·position for IR drop, docs/physics.md §1
   step 4b) in the reference's aux dtype. Their sum is a lower bound for any exact implementation built from torch
   ops on this CPU (no element-wise step counted); when it already exceeds a speed target, the target
   cannot be met without approximating the physics or a fused CPU kernel.
3. One hardware-aware training step (forward, backward, Adam step, post-step clip/remap) of a
   LeNet-style CNN on 28×28 inputs, batch 64: digital vs converted to analog with the standard preset.

Protocol: warm-up, then the median of ``--repeats`` timed runs; ratio = median / same-run baseline.

    python benchmarks/bench_tile.py [--repeats 30] [--threads 2] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch
from torch import nn

from aimc_lab import presets
from aimc_lab.config import replace_path
from aimc_lab.convert import convert_to_analog
from aimc_lab.kernels import backend
from aimc_lab.kernels.analog_mvm import reference as mvm_ref
from aimc_lab.nn import AnalogLinear
from aimc_lab.train.hwa import attach_hwa


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def lenet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.Tanh(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.Tanh(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.Tanh(), nn.Linear(128, 10))


def forward_rows(repeats: int):
    """Two input distributions, because iterative bound management costs what the data make it cost:
    post-ReLU-like inputs U[0, 1) drive most output rows of a 512-input tile past the ADC bound
    (2-3 passes), zero-mean N(0, 1) inputs rarely do (about one pass)."""
    torch.manual_seed(0)
    linear = nn.Linear(512, 512)
    rows = []
    with torch.no_grad():
        for dist, x in (("x ~ U[0,1)", torch.rand(1024, 512)), ("x ~ N(0,1)", torch.randn(1024, 512))):
            title = f"forward 512x512, batch 1024, {dist}"
            base = median_ms(lambda: linear(x), repeats)
            rows.append((title, "nn.Linear", base, 1.0))
            for name, cfg in (("AnalogLinear, standard preset", presets.standard_hwa()),
                              ("AnalogLinear, standard without IR drop", replace_path(
                                  presets.standard_hwa(), "forward.ir_drop", 0.0)),
                              ("AnalogLinear, library defaults (bound mgmt)", presets.library_defaults())):
                layer = AnalogLinear(512, 512, config=cfg)
                layer.set_weights(linear.weight, linear.bias)
                layer.eval()
                ms = median_ms(lambda: layer(x), repeats)
                rows.append((title, name, ms, ms / base))
    return rows


def floor_rows(repeats: int):
    """Lower bound of the standard preset's forward (see the module docstring, part 2)."""
    torch.manual_seed(0)
    linear = nn.Linear(512, 512)
    x = torch.rand(1, 1024, 512)
    w = linear.weight.detach().t().contiguous().unsqueeze(0)  # [1, K, N]
    aux = mvm_ref._aux_dtype(x)
    xa, wa = x.to(aux), w.abs().to(aux)
    gen = torch.Generator().manual_seed(0)
    title = "floor of the standard preset, 512x512, batch 1024"
    with torch.no_grad():
        base = median_ms(lambda: linear(x[0]), repeats)
        mac = median_ms(lambda: torch.bmm(x, w), repeats)
        rng = median_ms(lambda: torch.randn(1, 1024, 512, generator=gen), repeats)
        product = median_ms(lambda: torch.bmm(xa, wa), repeats)  # one second-order product
    parts = [("MAC, fp32 bmm", mac), ("one Gaussian per output (torch.randn)", rng),
             (f"3 second-order products ({str(aux).replace('torch.', '')} bmm)", 3 * product),
             ("sum: lower bound with IR drop", mac + rng + 3 * product),
             ("sum: lower bound without IR drop (read noise only)", mac + rng + product)]
    return [(title, "nn.Linear", base, 1.0)] + [(title, name, ms, ms / base) for name, ms in parts]


def training_rows(repeats: int):
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))
    digital = lenet()
    analog = convert_to_analog(lenet(), presets.standard_hwa(modifier_std=0.05))
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

    base = median_ms(stepper(digital, False), repeats)
    rows.append(("train step LeNet, batch 64", "digital", base, 1.0))
    ms = median_ms(stepper(analog, True), repeats)
    rows.append(("train step LeNet, batch 64", "hardware-aware, standard preset", ms, ms / base))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = forward_rows(args.repeats) + floor_rows(args.repeats) + training_rows(args.repeats)
    table = pd.DataFrame(rows, columns=["benchmark", "provider", "median_ms", "ratio"])
    print(f"backend: {backend.active(torch.device('cpu'))}, torch threads: {torch.get_num_threads()}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
