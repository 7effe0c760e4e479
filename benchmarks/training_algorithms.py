"""In-memory training algorithms on the offline digits data (3-layer MLP 64-32-32-10).

Protocol: a hidden, asymmetric ReRAM-like soft-bounds device produces a SYNTHETIC pulse-response
measurement (200 up, 200 down, 200 alternating; ``aimc_lab.devices.fitting.synthetic_measurement``);
SoftBounds is fitted to it and the fitted device (plus assumed device-to-device spreads) is used for
every analog layer. Each algorithm trains the same MLP (analog tiles, digital biases, ReLU) for
``--epochs`` epochs (12) with batch 16; floating point is the same MLP with nn.Linear layers and plain
SGD. Test accuracy is the mean (± std) over ``--seeds`` seeds; wall time is per run (mean). Forward
MVM: library defaults; backward: defaults with bound management off; the transfer read of A
(``transfer_io``): library defaults (out_noise 0.06, i.e. about 6 steps of this device per read).

Hyper-parameters are tuned per algorithm, as in the literature (small grid on the learning rate and
the algorithm's own knobs, same network, device, epochs and batch for every analog algorithm); the
``lr`` and the overrides are printed in the table. The buffered transfers (ttv2, c-ttv2, agad) need a
small ``transfer_lr``: H must average the read noise (and, for c-ttv2, the chopped symmetry-point
offset of A, which has no reference device) over many reads before a pulse reaches C. c-ttv2 and agad
need a large ``fast_lr`` so that A's signal stands above the read noise. ``--lr`` overrides every
learning rate (for experiments).

    python benchmarks/training_algorithms.py [--epochs 12] [--lr LR] [--seeds 3] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import statistics
import time

import torch
from torch import nn

from aimc_lab.data import digits, loaders
from aimc_lab.devices import pulsed as P
from aimc_lab.devices.fitting import fit_device, synthetic_measurement
from aimc_lab.train.analog_sgd import AnalogSGD
from aimc_lab.train.inmemory import InMemoryTile, training_config

SIZES = (64, 32, 32, 10)
HIDDEN_DEVICE = P.SoftBounds(dw_min=0.01, up_down=-0.3, w_max=0.9, w_min=-0.7, dw_min_std=0.3)
FP_LR = 0.2
ALGOS = {  # name -> (algorithm, lr, overrides); the same settings for every seed (tuned, see the doc)
    "SGD": ("sgd", 0.1, {}),
    "Tiki-Taka": ("tiki-taka", 0.2, dict(transfer_columns=8)),
    "TTv2": ("ttv2", 0.2, dict(transfer_columns=8, fast_lr=2.0, transfer_lr=0.05)),
    "c-TTv2": ("c-ttv2", 0.2, dict(transfer_columns=8, fast_lr=20.0, transfer_lr=0.05)),
    "AGAD": ("agad", 0.2, dict(transfer_columns=8, fast_lr=5.0, transfer_lr=0.05)),
    "mixed precision": ("mixed-precision", 0.15, {}),
}


def fitted_device() -> P.SoftBounds:
    directions, measured = synthetic_measurement(HIDDEN_DEVICE, seed=0)
    fit = fit_device(P.SoftBounds(), directions, measured)
    # assumed device-to-device spreads (not observable from one device), as in PHYSICS §4
    return dataclasses.replace(fit.device, dw_min_dtod=0.3, up_down_dtod=0.01, w_max_dtod=0.1, w_min_dtod=0.1)


class AnalogMLP(nn.Module):
    def __init__(self, config, seed):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.tiles = nn.ModuleList(InMemoryTile(o, i, config, seed=gen) for i, o in zip(SIZES[:-1], SIZES[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(o)) for o in SIZES[1:])

    def forward(self, x):
        for k, (tile, bias) in enumerate(zip(self.tiles, self.biases)):
            x = tile(x) + bias
            if k < len(self.tiles) - 1:
                x = torch.relu(x)
        return x


def digital_mlp(seed):
    torch.manual_seed(seed)
    layers = []
    for k, (i, o) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(nn.Linear(i, o))
        if k < len(SIZES) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def run(name, device, seed, epochs, lr):
    split = digits(seed=0)
    train, test = loaders(split, batch_size=16, seed=seed)
    if name == "floating point":
        model = digital_mlp(seed)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
    else:
        algo, _, overrides = ALGOS[name]
        model = AnalogMLP(training_config(algo, device=device, **overrides), seed)
        opt = AnalogSGD(model, lr=lr)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for xb, yb in train:
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    wall = time.perf_counter() - start
    model.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in test:
            correct += (model(xb).argmax(dim=1) == yb).sum().item()
    return 100.0 * correct / len(split.y_test), wall


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--lr", type=float, default=None, help="one learning rate for all (default: tuned)")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = fitted_device()
    print(f"fitted device: dw_min={device.dw_min:.4g} up_down={device.up_down:.3g} w_max={device.w_max:.3g} "
          f"w_min={device.w_min:.3g} dw_min_std={device.dw_min_std:.3g} (hidden: {HIDDEN_DEVICE.dw_min}, "
          f"{HIDDEN_DEVICE.up_down}, {HIDDEN_DEVICE.w_max}, {HIDDEN_DEVICE.w_min}, {HIDDEN_DEVICE.dw_min_std})")
    print(f"MLP {'-'.join(map(str, SIZES))}, digits, {args.epochs} epochs, batch 16, {args.seeds} seeds, 1 thread")
    rows = []
    print(f"{'algorithm':<16} {'test acc %':>16} {'wall s/run':>11}  {'lr':>5}  settings")
    start = time.perf_counter()
    for name in ["floating point", *ALGOS]:
        lr = args.lr if args.lr is not None else (FP_LR if name == "floating point" else ALGOS[name][1])
        settings = "" if name == "floating point" else ", ".join(f"{k}={v}" for k, v in ALGOS[name][2].items())
        results = [run(name, device, seed, args.epochs, lr) for seed in range(args.seeds)]
        accs = [r[0] for r in results]
        walls = [r[1] for r in results]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        rows.append(dict(algorithm=name, acc_mean=statistics.mean(accs), acc_std=std,
                         wall_s=statistics.mean(walls), accs=" ".join(f"{a:.1f}" for a in accs), lr=lr,
                         settings=settings))
        print(f"{name:<16} {statistics.mean(accs):>9.1f} ± {std:>4.1f} {statistics.mean(walls):>11.1f}  {lr:>5}  "
              f"{settings or '-'}", flush=True)
    print(f"total wall time {time.perf_counter() - start:.0f} s")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
