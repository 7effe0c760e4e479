"""Median time of one in-memory update of a 512x512 tile (batch 64, desired BL 31) per algorithm.

Each algorithm's ``InMemoryTile.update(lr)`` is timed after a forward+backward that stored (x, δ)
(only the update is timed). Inputs x ~ U(-1, 1), δ ~ N(0, 0.01²), lr 0.01, device ConstantStep
(dw_min 0.001, the PHYSICS defaults); BL management on (so the actual BL is min(ceil(η·|x|max·|δ|max /
dw_min), 31)) unless ``--fixed-bl`` (every row uses 31 slots). Baseline in the same run: the digital
step of the same layer, ``torch.optim.SGD.step()`` on an nn.Linear(512, 512) whose gradient was
computed by a forward+backward of the same batch (only the step is timed), and also the digital
forward+backward+step. Warm-up 3, median of ``--repeats``.

    python benchmarks/bench_update.py [--repeats 20] [--fixed-bl] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time

import torch
from torch import nn

from aimc_lab.devices import pulsed as P
from aimc_lab.train.inmemory import ALGORITHMS, InMemoryTile, training_config

N = K = 512
M = 64


def median_time(fn, prepare, repeats):
    times = []
    for i in range(repeats + 3):
        prepare()
        start = time.perf_counter()
        fn()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--fixed-bl", action="store_true")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(M, K, generator=g) * 2 - 1
    d = torch.randn(M, N, generator=g) * 0.01
    lr = 0.01
    rows = []

    linear = nn.Linear(K, N)
    opt = torch.optim.SGD(linear.parameters(), lr=lr)

    def digital_prepare():
        opt.zero_grad()
        linear(x).backward(d)

    t_step = median_time(opt.step, digital_prepare, args.repeats)
    t_full = median_time(lambda: (digital_prepare(), opt.step()), lambda: None, args.repeats)
    rows.append(dict(update="digital SGD step (nn.Linear, step only)", ms=1e3 * t_step, vs_step=1.0))
    rows.append(dict(update="digital forward+backward+step", ms=1e3 * t_full, vs_step=t_full / t_step))
    device = P.ConstantStep()
    for algo in ALGORITHMS:
        config = training_config(algo, device=device, bl_management=not args.fixed_bl)
        tile = InMemoryTile(N, K, config, seed=0)

        def prepare():
            tile._pending.clear()
            tile._pending.append((x, d))

        t = median_time(lambda: tile.update(lr), prepare, args.repeats)
        rows.append(dict(update=f"in-memory {algo}", ms=1e3 * t, vs_step=t / t_step))
    print(f"512x512 tile, batch {M}, desired BL 31, BL management {'off' if args.fixed_bl else 'on'}, "
          f"1 thread, median of {args.repeats}")
    print(f"{'update':<42} {'ms':>9} {'x digital step':>15}")
    for r in rows:
        print(f"{r['update']:<42} {r['ms']:>9.2f} {r['vs_step']:>15.1f}")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
