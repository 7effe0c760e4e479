"""Speed of the noisy analog MVM: the plain torch spec, the fast torch path and the fused Triton kernel
vs a plain matmul.

Providers: ``torch reference`` (kernels/analog_mvm/reference.py, the readable spec), ``torch fast``
(kernels/analog_mvm/cpu_fast.py, what backend "torch" runs), ``triton``
(kernels/analog_mvm/triton_impl.py, GPU only) and ``matmul`` (``x @ w.T``, the floor).
Shapes N×K: 512×512, 2048×2048, 4096×1024; batches M: 1024, 8192. Settings:

* ``standard``: the paper's standard HWA evaluation preset (inp_res 1/254, out_res 1/254,
  out_bound 10, out_noise 0.04, w_noise 0.0175 pcm_read, ir_drop 1.0, noise_management constant
  with nm_thres 1, bound_management none);
* ``defaults``: the library defaults ``IOParameters()`` (abs_max noise management, iterative bound
  management).

Data as in docs/physics.md: W ~ N(0, 0.246²) clipped to [-1, 1]; inputs uniform in [-1, 1] with half of
them set to 0. Forward only, under ``torch.no_grad``. Protocol: warm-up, then the median of
``--repeats`` timed runs (CUDA synchronized); ratio = median / the same-run matmul of that shape.
Without a GPU only the torch rows run (Triton needs a GPU; the interpreter is for tests only), and
batch 8192 only with ``--full`` (the default CPU run takes about a minute).

    python benchmarks/bench_analog_mvm.py [--quick | --full] [--repeats N] [--threads T] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time

import torch

from aimc_lab.config import IOParameters
from aimc_lab.kernels.analog_mvm import cpu_fast, reference

SHAPES = [(512, 512), (2048, 2048), (4096, 1024)]  # (N, K)
BATCHES = [1024, 8192]
SETTINGS = {
    "standard": IOParameters(inp_res=1 / 254, out_res=1 / 254, out_bound=10.0, out_noise=0.04,
                             w_noise=0.0175, w_noise_type="pcm_read", ir_drop=1.0,
                             noise_management="constant", nm_thres=1.0, bound_management="none"),
    "defaults": IOParameters(),
}


def median_ms(fn, repeats: int, warmup: int, cuda: bool) -> float:
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def data(M: int, N: int, K: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    w = (0.246 * torch.randn(N, K, generator=g)).clamp(-1, 1)
    x = (2 * torch.rand(M, K, generator=g) - 1) * (torch.rand(M, K, generator=g) >= 0.5)
    return x.to(device), w.to(device)


def run(args) -> list:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    providers = {"torch reference": reference.analog_mvm, "torch fast": cpu_fast.analog_mvm}
    if cuda:
        from aimc_lab.kernels.analog_mvm import triton_impl

        providers["triton"] = triton_impl.analog_mvm
    shapes, batches = SHAPES, BATCHES
    if args.quick:
        shapes, batches = SHAPES[:1], BATCHES[:1]
    elif not cuda and not args.full:
        batches = BATCHES[:1]
    rows = []
    with torch.no_grad():
        for N, K in shapes:
            for M in batches:
                x, w = data(M, N, K, device)
                gen = torch.Generator(device=device).manual_seed(0)
                floor = median_ms(lambda: x @ w.t(), args.repeats, args.warmup, cuda)
                rows.append(dict(provider="matmul", shape=f"{N}x{K}", batch=M, setting="-",
                                 median_ms=floor, ratio=1.0))
                for setting, io in SETTINGS.items():
                    for name, fn in providers.items():
                        ms = median_ms(lambda: fn(x, w, io, generator=gen), args.repeats, args.warmup, cuda)
                        rows.append(dict(provider=name, shape=f"{N}x{K}", batch=M, setting=setting,
                                         median_ms=ms, ratio=ms / floor))
                print_rows(rows[-1 - len(SETTINGS) * len(providers):])
    return rows


def print_rows(rows: list) -> None:
    for r in rows:
        print(f"{r['provider']:<16} {r['shape']:>10} {r['batch']:>6} {r['setting']:<9} "
              f"{r['median_ms']:>10.2f} {r['ratio']:>9.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="512x512, batch 1024 only")
    parser.add_argument("--full", action="store_true",
                        help="on a CPU also batch 8192 (many minutes; a GPU always runs it)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per row (default 20 on a GPU, 3 on a CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 3 / 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    if args.repeats is None:
        args.repeats = 20 if cuda else 3
    if args.warmup is None:
        args.warmup = 3 if cuda else 1
    if args.threads:
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(0) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"analog MVM forward, {where}, torch {torch.__version__}; median of {args.repeats} "
          f"after {args.warmup} warm-up")
    if not cuda:
        print("no GPU: Triton rows skipped (the Triton kernel needs a GPU; the interpreter is for tests)"
              + ("" if args.full or args.quick else "; batch 8192 only with --full"))
    print(f"{'provider':<16} {'N x K':>10} {'batch':>6} {'setting':<9} {'median ms':>10} {'x matmul':>9}")
    rows = run(args)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
