"""In-memory training algorithms on the offline digits data (3-layer MLP 64-32-32-10).

Protocol: a hidden, asymmetric ReRAM-like soft-bounds device produces a SYNTHETIC pulse-response
measurement (200 up, 200 down, 200 alternating; ``aimc_lab.devices.fitting.synthetic_measurement``);
SoftBounds is fitted to it and the fitted device (plus assumed device-to-device spreads) is used for
every analog layer. Each algorithm trains the same MLP (analog tiles, digital biases, ReLU) for
``--epochs`` epochs (12) with batch 16, leaving out each epoch's partial last batch (4 samples, which a
mean loss would weigh 4x per sample: one outsized pulsed update per epoch that made mixed precision's
result depend on the seed); floating point is the same MLP with nn.Linear layers and plain SGD. Test
accuracy is the mean (± std) over ``--seeds`` seeds; wall time is per run (mean; runs go in ``--jobs``
processes of one thread each). Forward MVM: library defaults; backward: defaults with bound management
off; the transfer read of A (``transfer_io``): library defaults (out_noise 0.06, about 6 steps of this
device per read).

Hyper-parameters were tuned per algorithm on seeds 0-4 (5 seeds per grid point) with the same grid
for every algorithm of the TTv2 family (fast_lr 2-40, transfer_lr 0.05/0.1/0.2; c-TTv2 also
in_chop_prob 0.02-0.2), the learning rate for SGD, mixed precision and floating point; the table
reports seeds 100.. (``--first-seed``), which the tuning never saw. The buffered transfers (ttv2,
c-ttv2, agad) need a small ``transfer_lr``: H must average the read noise over many reads before a
pulse reaches C. c-ttv2 and agad need a large ``fast_lr`` so that A's signal stands above the read
noise. ``--lr`` overrides every learning rate.

Reference device of A (Tiki-Taka, TTv2). Tiki-Taka needs A's symmetry point at zero, so each A device
gets a reference. In hardware it is programmed to the symmetry point *estimated* by the measurement
protocol of docs/physics.md §4 (``DeviceArray.calibrate_reference``: 200 up, 200 down, then alternating pulses
from w = 0, on that very device with its own steps, bounds and cycle-to-cycle noise; the weight after
the last pulse). Rows marked "cal. ref 200" use the fitting protocol's 200 alternating pulses, after
which this device has not yet settled (relaxation ~90 alternating pulses, starting ~0.5 below w*): the
estimate is about 4-5 dw_min low with a spread of about 4 dw_min (printed). "cal. ref 1000" is a
careful calibration (no bias, spread ~2.5 dw_min); "ideal ref" is the simulator's exact w*
(``subtract_symmetry_point=True``), which hardware cannot provide. AGAD needs no reference (Rasch et
al. 2023); c-TTv2's choppers cancel a residual offset of A in H, so its main row gets the same
calibrated reference as TTv2 (the comparison of Rasch et al.: robustness to reference errors); without
any reference (``c-TTv2, no ref``) A's full symmetry point (about -14 dw_min here) enters H, which
costs 1.4 points on the tuning seeds and 3.9 on the reported ones. The common-sign bias of the short
calibration is what costs TTv2: zero-mean reference errors of the literature's size
(``reference_std`` 0.05, AIHWKIT's fitted-device example) left TTv2 unchanged in an earlier sweep
(94.7 / 95.0 / 94.7 / 93.4 / 89.2 / 85.7 % for reference_std 0 / 0.025 / 0.05 / 0.1 / 0.2 / 0.3,
3 seeds, previous settings).

    python benchmarks/training_algorithms.py [--epochs 12] [--seeds 5] [--first-seed 100] [--jobs 2]
                                             [--lr LR] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import multiprocessing
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
FP_LR = 0.3
TTV2 = dict(transfer_columns=8, fast_lr=5.0, transfer_lr=0.1)
C_TTV2 = dict(transfer_columns=8, fast_lr=40.0, transfer_lr=0.1, in_chop_prob=0.05)
ALGOS = {  # name -> (algorithm, lr, overrides); the same settings for every seed (tuned, see the doc)
    "SGD": ("sgd", 0.2, {}),
    "Tiki-Taka, cal. ref 200": ("tiki-taka", 0.2, dict(transfer_columns=8)),
    "TTv2, cal. ref 200": ("ttv2", 0.2, TTV2),
    "c-TTv2, cal. ref 200": ("c-ttv2", 0.2, C_TTV2),
    "AGAD": ("agad", 0.2, dict(transfer_columns=8, fast_lr=10.0, transfer_lr=0.1)),
    "mixed precision": ("mixed-precision", 0.2, {}),
    # A with another reference: none (c-TTv2), exact (not available in hardware), a longer calibration
    "c-TTv2, no ref": ("c-ttv2", 0.2, C_TTV2),
    "Tiki-Taka, ideal ref": ("tiki-taka", 0.2, dict(transfer_columns=8)),
    "TTv2, ideal ref": ("ttv2", 0.2, TTV2),
    "TTv2, cal. ref 1000": ("ttv2", 0.2, TTV2),
}
FIRST_OTHER_REF = "c-TTv2, no ref"
# rows whose A reference is programmed from a simulated alternating-pulse calibration (see the doc):
# name -> number of alternating pulses after 200 up / 200 down
CALIBRATED = {"Tiki-Taka, cal. ref 200": 200, "TTv2, cal. ref 200": 200, "c-TTv2, cal. ref 200": 200,
              "TTv2, cal. ref 1000": 1000}


@functools.lru_cache(maxsize=1)  # once per process: every run of a worker uses the same fit
def fitted_device() -> P.SoftBounds:
    directions, measured = synthetic_measurement(HIDDEN_DEVICE, seed=0)
    fit = fit_device(P.SoftBounds(), directions, measured)
    # assumed device-to-device spreads (not observable from one device), as in docs/physics.md §4
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
    """Train one row for one seed: (test accuracy %, wall s, A-reference errors in dw_min or None)."""
    calib = None
    split = digits(seed=0)
    train, test = loaders(split, batch_size=16, seed=seed, drop_last=True)
    if name == "floating point":
        model = digital_mlp(seed)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
    else:
        algo, _, overrides = ALGOS[name]
        model = AnalogMLP(training_config(algo, device=device, **overrides), seed)
        if name in CALIBRATED:
            gen = torch.Generator().manual_seed(10_000 + seed)
            errors = torch.cat([tile.A.calibrate_reference(CALIBRATED[name], generator=gen).reshape(-1)
                                for tile in model.tiles])
            calib = errors / device.dw_min
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
    return 100.0 * correct / len(split.y_test), wall, calib


def _job(task):
    torch.set_num_threads(1)
    name, seed, epochs, lr = task
    return run(name, fitted_device(), seed, epochs, lr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=100, help="seeds first..first+seeds-1 (tuned on 0-4)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes, one thread each")
    parser.add_argument("--lr", type=float, default=None, help="one learning rate for all (default: tuned)")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    for name in ("epochs", "seeds", "jobs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} = {getattr(args, name)} is invalid; allowed: >= 1")
    torch.set_num_threads(1)
    device = fitted_device()
    print(f"fitted device: dw_min={device.dw_min:.4g} up_down={device.up_down:.3g} w_max={device.w_max:.3g} "
          f"w_min={device.w_min:.3g} dw_min_std={device.dw_min_std:.3g} (hidden: {HIDDEN_DEVICE.dw_min}, "
          f"{HIDDEN_DEVICE.up_down}, {HIDDEN_DEVICE.w_max}, {HIDDEN_DEVICE.w_min}, {HIDDEN_DEVICE.dw_min_std})")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"MLP {'-'.join(map(str, SIZES))}, digits, {args.epochs} epochs, batch 16, seeds {seeds.start}.."
          f"{seeds.stop - 1}, {args.jobs} processes of 1 thread")
    names = ["floating point", *ALGOS]
    lrs = {name: args.lr if args.lr is not None else (FP_LR if name == "floating point" else ALGOS[name][1])
           for name in names}
    tasks = [(name, seed, args.epochs, lrs[name]) for name in names for seed in seeds]
    start = time.perf_counter()
    if args.jobs == 1:
        results = [_job(task) for task in tasks]
    else:  # spawn: a fresh interpreter per worker (no OpenMP state inherited through fork)
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            results = pool.map(_job, tasks, chunksize=1)
    total = time.perf_counter() - start
    rows = []
    print(f"{'algorithm':<23} {'test acc %':>16} {'wall s/run':>11}  {'lr':>5}  settings")
    for name in names:
        mine = [r for task, r in zip(tasks, results) if task[0] == name]
        settings = "" if name == "floating point" else ", ".join(f"{k}={v}" for k, v in ALGOS[name][2].items())
        if name in CALIBRATED:
            err = torch.cat([r[2] for r in mine])
            settings += (f"; A ref = w after 200 up/200 down/{CALIBRATED[name]} alternating pulses "
                         f"(ref - w*: {err.mean():+.1f} ± {err.std():.1f} dw_min)")
        accs = [r[0] for r in mine]
        walls = [r[1] for r in mine]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        rows.append(dict(algorithm=name, acc_mean=statistics.mean(accs), acc_std=std,
                         wall_s=statistics.mean(walls), accs=" ".join(f"{a:.1f}" for a in accs), lr=lrs[name],
                         settings=settings))
        if name == FIRST_OTHER_REF:
            print("-- the same algorithms with another reference for A:")
        print(f"{name:<23} {statistics.mean(accs):>9.1f} ± {std:>4.1f} {statistics.mean(walls):>11.1f}  "
              f"{lrs[name]:>5}  {settings or '-'}", flush=True)
    print(f"total wall time {total:.0f} s")
    print("Same network, fitted device, epochs and batch for every analog row; C never has a reference.\n"
          "cal. ref N: A's reference programmed to w* as estimated on each device by the measurement protocol\n"
          "  (200 up, 200 down, N alternating pulses, simulated with the device's own spread and cycle-to-cycle\n"
          "  noise). N = 200 is the fitting protocol: the device has not settled and the estimate is biased low.\n"
          "  N = 1000 is a settled calibration; ideal ref: exactly w* (not available in hardware).\n"
          "AGAD needs no reference (dynamic reference); c-TTv2's choppers cancel what the reference leaves.")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
