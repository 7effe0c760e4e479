"""Speed of small in-memory training steps: one epoch of the digits MLP per algorithm vs the digital epoch.

Protocol (issue 13 §1): MLP 64-256-128-10 with sigmoid, batch 5, lr 0.1, one epoch = 270 steps of
the offline digits data (1347 training images); every analog layer is an ``AnalogLinear`` from
``convert_to_analog`` with ``training_config(algorithm, device=reram_sb())`` (the algorithm's
defaults) and ``AnalogSGD``; the digital baseline is the same ``nn.Sequential`` with
``torch.optim.SGD``. Each repeat times one epoch of every row, the rows interleaved (digital, sgd,
..., digital, sgd, ...), after one warm-up epoch each; the table gives the median s/epoch and its
ratio to the digital median of the same run, with the targets of issue 13 (SGD and mixed
precision <= 2x, the transfer algorithms <= 3x). Threads: ``--threads`` (1 by default; the load
average is printed next to the figures).

    python benchmarks/bench_small_training.py [--repeats 5] [--steps 270] [--threads 1]
                                              [--algorithms sgd,ttv2] [--csv out.csv] [--profile ALGO]

``--profile ALGO`` prints torch.profiler's table of the top operators of one epoch of that algorithm.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time

import torch
from torch import nn

from aimc_lab.convert import convert_to_analog
from aimc_lab.data import digits, loaders
from aimc_lab.devices.pulsed import reram_sb
from aimc_lab.train import ALGORITHMS, AnalogSGD, training_config

SIZES = (64, 256, 128, 10)
BATCH = 5
LR = 0.1
TARGET = {"sgd": 2.0, "mixed-precision": 2.0}  # others: 3.0


def mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = []
    for k, (i, o) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(nn.Linear(i, o))
        if k < len(SIZES) - 2:
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def make_row(name: str, seed: int = 0):
    """(model, optimizer) of one row: ``digital`` or an in-memory algorithm."""
    model = mlp(seed)
    if name == "digital":
        return model, torch.optim.SGD(model.parameters(), lr=LR)
    model = convert_to_analog(model, training_config(name, device=reram_sb()), copy=False)
    return model, AnalogSGD(model, lr=LR)


def batches(steps: int):
    split = digits(seed=0)
    train, _ = loaders(split, batch_size=BATCH, seed=0)
    out = [b for _, b in zip(range(steps), train)]
    while len(out) < steps:  # --steps beyond one epoch: cycle
        out += [b for _, b in zip(range(steps - len(out)), train)]
    return out


def epoch(model, opt, data) -> float:
    model.train()
    start = time.perf_counter()
    for xb, yb in data:
        loss = nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=270, help="steps per timed epoch (270 = one epoch)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--csv", default=None)
    parser.add_argument("--profile", default=None, metavar="ALGO", help="profile one epoch of ALGO instead")
    args = parser.parse_args()
    for name in ("repeats", "steps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} = {getattr(args, name)} is invalid; allowed: >= 1")
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown:
        parser.error(f"--algorithms: unknown {', '.join(unknown)}; allowed: {', '.join(ALGORITHMS)}")
    torch.set_num_threads(args.threads)
    data = batches(args.steps)
    if args.profile:
        model, opt = make_row(args.profile)
        epoch(model, opt, data[:20])
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            epoch(model, opt, data)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
        return
    names = ["digital", *algorithms]
    rows = {name: make_row(name) for name in names}
    for name in names:  # warm-up epoch (allocator, first-call dispatch)
        epoch(*rows[name], data)
    times = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            times[name].append(epoch(*rows[name], data))
    load = os.getloadavg()
    digital = statistics.median(times["digital"])
    print(f"MLP {'-'.join(map(str, SIZES))} sigmoid, batch {BATCH}, lr {LR}, {args.steps} steps per epoch, "
          f"ReRAM-SB, defaults; {args.threads} thread(s); median of {args.repeats}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'row':<17} {'s/epoch':>9} {'ms/step':>8} {'x digital':>10} {'target':>7}")
    out = []
    for name in names:
        med = statistics.median(times[name])
        ratio = med / digital
        target = "" if name == "digital" else f"<= {TARGET.get(name, 3.0):g}"
        print(f"{name:<17} {med:>9.3f} {1e3 * med / args.steps:>8.2f} {ratio:>10.2f} {target:>7}")
        out.append(dict(row=name, s_per_epoch=med, ms_per_step=1e3 * med / args.steps, ratio_vs_digital=ratio,
                        target=TARGET.get(name, 3.0) if name != "digital" else "", threads=args.threads,
                        load=load[0], repeats=args.repeats, steps=args.steps))
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(out[0]))
            writer.writeheader()
            writer.writerows(out)


if __name__ == "__main__":
    main()
