"""Median time of one in-memory update of a 512x512 tile (batch 64, desired BL 31) per algorithm.

Each algorithm's ``InMemoryTile.update(lr)`` is timed after a forward+backward that stored (x, δ)
(only the update is timed). Inputs x ~ U(-1, 1), δ ~ N(0, 0.01²), lr 0.01, device ConstantStep
(dw_min 0.001, the defaults of docs/physics.md §4); BL management on (so the actual BL is
min(ceil(η·|x|max·|δ|max / dw_min), 31)) unless ``--fixed-bl`` (every row uses 31 slots); the SGD update
with a fixed BL of 31 and the row-by-row reference (``block_rows=1``, the pre-block algorithm) are always listed too.

**Baseline** (the ``x digital`` column): what the same digital layer costs per mini-batch, i.e. an
nn.Linear(512, 512) forward + backward + ``torch.optim.SGD.step()`` on the same batch. The step alone
is listed for information. Target: in-memory SGD <= 10x the baseline. Warm-up 3, median of
``--repeats``; ``--threads`` (default: torch's default) is printed with the table. ``--clock cpu`` times this
process's CPU time instead of the wall clock: with one thread it measures the work and is not
inflated when other processes share the cores.

    python benchmarks/bench_update.py [--repeats 20] [--fixed-bl] [--threads N] [--clock wall|cpu] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time

import torch
from torch import nn

from aimc_lab.devices import pulsed as P
from aimc_lab.kernels.pulsed_update import pulsed_update_reference
from aimc_lab.train.inmemory import ALGORITHMS, InMemoryTile, training_config

N = K = 512
M = 64


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def median_time(fn, prepare, repeats):
    times = []
    for i in range(repeats + 3):
        prepare()
        start = clock()
        fn()
        if i >= 3:
            times.append(clock() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--fixed-bl", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: elapsed time; cpu: this process's CPU time (robust when other processes "
                             "share the cores; with 1 thread it is the work done)")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
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

    t_full = median_time(lambda: (digital_prepare(), opt.step()), lambda: None, args.repeats)
    t_step = median_time(opt.step, digital_prepare, args.repeats)
    rows.append(dict(update="digital forward+backward+step (baseline)", ms=1e3 * t_full, vs_digital=1.0))
    rows.append(dict(update="digital SGD step only (nn.Linear)", ms=1e3 * t_step, vs_digital=t_step / t_full))
    device = P.ConstantStep()
    cases = [(algo, dict(bl_management=not args.fixed_bl), f"in-memory {algo}") for algo in ALGORITHMS]
    cases.append(("sgd", dict(bl_management=False), "in-memory sgd, fixed BL 31"))
    for algo, kw, label in cases:
        config = training_config(algo, device=device, **kw)
        tile = InMemoryTile(N, K, config, seed=0)

        def prepare():
            tile._pending.clear()
            tile._pending.append((x, d))

        t = median_time(lambda: tile.update(lr), prepare, args.repeats)
        rows.append(dict(update=label, ms=1e3 * t, vs_digital=t / t_full))
    array = P.DeviceArray(device, N, K, seed=0)
    gen = torch.Generator().manual_seed(0)
    t = median_time(lambda: pulsed_update_reference(array.w, x, d, lr, array.pulse_model(), generator=gen,
                                                    block_rows=1, bl_management=not args.fixed_bl),
                    lambda: None, max(3, args.repeats // 4))
    rows.append(dict(update="reference sgd row by row (block_rows=1)", ms=1e3 * t, vs_digital=t / t_full))
    print(f"512x512 tile, batch {M}, desired BL 31, BL management {'off' if args.fixed_bl else 'on'}, "
          f"{threads} thread(s), median of {args.repeats}, {args.clock} clock")
    print(f"{'update':<44} {'ms':>9} {'x digital':>10}")
    for r in rows:
        print(f"{r['update']:<44} {r['ms']:>9.2f} {r['vs_digital']:>10.1f}")
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
