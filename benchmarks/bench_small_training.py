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
                                              [--algorithms sgd,ttv2] [--fixed] [--kernels] [--csv out.csv]
                                              [--profile ALGO]

``--profile ALGO`` prints torch.profiler's table of the top operators of one epoch of that algorithm.

Two reference rows put the targets in proportion:

* ``layer floor`` — what any design with one Python autograd layer per analog layer costs before any
  device physics: each layer a custom ``autograd.Function`` (one matmul and one Gaussian per output in
  the forward and in the backward, the rows (x, δ) kept as the in-memory tiles keep them), and an
  optimizer that applies each layer's rows with one ``addmm_``. No periphery, no pulses, no checks.
* ``--fixed`` adds a column: each row's ms per step on the same network with every width 4
  (64-256-128-10 → 4-4-4-4, the same layers, steps and algorithm), where the arithmetic is nil, so
  what remains is the per-call cost of the code path (dispatch, checks, small tensors).
* ``--kernels`` adds two columns: the ms per step spent inside the update's compiled kernels
  (numba) and torch's random draws (one more epoch, the optimizer step only, each call timed), and
  ``floor + kernels``: the layer floor plus that time, × digital. The update's kernels and draws are
  the device physics itself (the pulse-train coincidences, one normal per pulse and per changed
  device, the pulse loop) and the layer floor is the cost of a Python autograd layer per analog
  layer, so no design that keeps both can beat that ratio without faster kernels or a faster RNG.
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
FLOOR = "layer floor"
FLOOR_SIGMA = 0.01  # the floor's Gaussian per output (forward) and per input gradient (backward)


def mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = []
    for k, (i, o) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(nn.Linear(i, o))
        if k < len(SIZES) - 2:
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class _FloorFunction(torch.autograd.Function):
    """y = x @ w.T + σ·ξ; the backward keeps (x, δ) for the optimizer and returns δ @ w + σ·ξ'."""

    @staticmethod
    def forward(ctx, x, weight, layer):
        ctx.save_for_backward(x, weight)
        ctx.layer = layer
        y = x @ weight.t()
        return y.add_(torch.randn(y.shape, generator=layer.generator), alpha=FLOOR_SIGMA)

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        ctx.layer.rows.append((x, grad_y))
        grad_x = grad_y @ weight
        return grad_x.add_(torch.randn(grad_x.shape, generator=ctx.layer.generator), alpha=FLOOR_SIGMA), None, None


class _FloorLinear(nn.Module):
    """The ``layer floor`` row's layer (module doc): the weight has no gradient, the rows stand for it."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight = nn.Parameter(linear.weight.detach().clone())
        self.bias = nn.Parameter(linear.bias.detach().clone())
        self.generator = torch.Generator().manual_seed(0)
        self.rows = []

    def forward(self, x):
        return _FloorFunction.apply(x, self.weight, self) + self.bias


class _FloorSGD:
    """One ``addmm_`` per layer and stored rows, plain SGD on the biases."""

    def __init__(self, model: nn.Module, lr: float) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, _FloorLinear)]
        self.lr = lr

    def zero_grad(self) -> None:
        for layer in self.layers:
            layer.rows.clear()
            layer.bias.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for layer in self.layers:
            for x, d in layer.rows:
                layer.weight.addmm_(d.t(), x, alpha=-self.lr)
            layer.bias.sub_(layer.bias.grad, alpha=self.lr)


def make_row(name: str, seed: int = 0):
    """(model, optimizer) of one row: ``digital``, ``layer floor`` or an in-memory algorithm."""
    model = mlp(seed)
    if name == "digital":
        return model, torch.optim.SGD(model.parameters(), lr=LR)
    if name == FLOOR:
        model = nn.Sequential(*[_FloorLinear(m) if isinstance(m, nn.Linear) else m for m in model])
        return model, _FloorSGD(model, LR)
    model = convert_to_analog(model, training_config(name, device=reram_sb()), copy=False)
    return model, AnalogSGD(model, lr=LR)


def batches(steps: int):
    split = digits(seed=0)
    train, _ = loaders(split, batch_size=BATCH, seed=0)
    out = [b for _, b in zip(range(steps), train)]
    while len(out) < steps:  # --steps beyond one epoch: cycle
        out += [b for _, b in zip(range(steps - len(out)), train)]
    return out


def narrow(data, width: int = 4):
    """The same batches for the network with every width ``width``: inputs cut to ``width`` columns,
    labels taken modulo ``width``."""
    return [(xb[:, :width].contiguous(), yb % width) for xb, yb in data]


def fixed_ms(names, data, repeats: int):
    """ms per step of each row on the 4-4-4-4 network (``--fixed``), rows interleaved, median."""
    global SIZES
    wide, SIZES = SIZES, (4,) * len(SIZES)
    try:
        small = narrow(data)
        rows = {name: make_row(name) for name in names}
        times = {name: [] for name in names}
        for name in names:
            epoch(*rows[name], small)
        for _ in range(repeats):
            for name in names:
                times[name].append(epoch(*rows[name], small))
    finally:
        SIZES = wide
    return {name: 1e3 * statistics.median(times[name]) / len(data) for name in names}


_DRAWS = ("rand", "randn", "randint", "normal")


def kernel_ms(names, data) -> dict:
    """ms per step inside compiled kernels and torch's draws during ``opt.step()`` (``--kernels``): one
    epoch per row with every compiled kernel fetched through ``aimc_lab.kernels._numba`` and every
    torch draw function wrapped by a timer (the timers add ~1 µs per call outside the timed span). The
    update's compiled input checks (the rows' finiteness, mixed precision's overflow bound) count too:
    a few µs per layer."""
    from aimc_lab.kernels import _numba

    spent = [0.0]
    on = [False]

    def timed(fn):
        def call(*args, **kwargs):
            if not on[0]:
                return fn(*args, **kwargs)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - start
        return call

    cache, draws = dict(_numba._cache), {name: getattr(torch, name) for name in _DRAWS}
    rows = {name: make_row(name) for name in names}
    for name in names:  # compile and cache every kernel the rows use, then wrap them
        epoch(*rows[name], data[:20])
    _numba._cache.update({key: timed(fn) for key, fn in _numba._cache.items() if fn is not None})
    for name, fn in draws.items():
        setattr(torch, name, timed(fn))
    out = {}
    try:
        for name in names:
            model, opt = rows[name]
            spent[0] = 0.0
            for xb, yb in data:
                loss = nn.functional.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                on[0] = True
                opt.step()
                on[0] = False
            out[name] = 1e3 * spent[0] / len(data)
    finally:
        _numba._cache.clear()
        _numba._cache.update(cache)
        for name, fn in draws.items():
            setattr(torch, name, fn)
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
    parser.add_argument("--fixed", action="store_true", help="add each row's ms/step at widths 4-4-4-4")
    parser.add_argument("--kernels", action="store_true",
                        help="add the update's kernel and draw time per step and the floor + kernels bound")
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
    names = ["digital", FLOOR, *algorithms]
    rows = {name: make_row(name) for name in names}
    for name in names:  # warm-up epoch (allocator, first-call dispatch)
        epoch(*rows[name], data)
    times = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            times[name].append(epoch(*rows[name], data))
    fixed = fixed_ms(names, data, args.repeats) if args.fixed else {}
    kernels = kernel_ms(algorithms, data) if args.kernels else {}
    load = os.getloadavg()
    digital = statistics.median(times["digital"])
    print(f"MLP {'-'.join(map(str, SIZES))} sigmoid, batch {BATCH}, lr {LR}, {args.steps} steps per epoch, "
          f"ReRAM-SB, defaults; {args.threads} thread(s); median of {args.repeats}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'row':<17} {'s/epoch':>9} {'ms/step':>8} {'x digital':>10} {'target':>7}"
          + (f" {'ms/step at 4-4-4-4':>19}" if fixed else "")
          + (f" {'update kernels ms/step':>23} {'floor + kernels':>16}" if kernels else ""))
    out = []
    floor = statistics.median(times[FLOOR])
    for name in names:
        med = statistics.median(times[name])
        ratio = med / digital
        target = TARGET.get(name, 3.0) if name not in ("digital", FLOOR) else ""
        bound = (1e-3 * kernels[name] * args.steps + floor) / digital if name in kernels else None
        print(f"{name:<17} {med:>9.3f} {1e3 * med / args.steps:>8.2f} {ratio:>10.2f} "
              f"{f'<= {target:g}' if target else '':>7}" + (f" {fixed[name]:>19.2f}" if fixed else "")
              + ((f" {kernels[name]:>23.2f} {bound:>16.2f}" if bound is not None else f" {'':>23} {'':>16}")
                 if kernels else ""))
        out.append(dict(row=name, s_per_epoch=med, ms_per_step=1e3 * med / args.steps, ratio_vs_digital=ratio,
                        target=target, fixed_ms_per_step=fixed.get(name, ""),
                        update_kernels_ms_per_step=kernels.get(name, ""), floor_plus_kernels_vs_digital=bound or "",
                        threads=args.threads, load=load[0], repeats=args.repeats, steps=args.steps))
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(out[0]))
            writer.writeheader()
            writer.writerows(out)


if __name__ == "__main__":
    main()
