"""Memory and time of an analog layer against ``nn.Linear``, one fresh process per row.

For each preset, an ``AnalogLinear`` of ``--size``² (default 4096²) and, as the baseline, an
``nn.Linear`` of the same shape, both with gradients allocated (``p.grad = zeros_like(p)``: what one
training step leaves behind):

* ``resident``: RSS after construction minus the RSS of the same process after the imports (both
  after ``malloc_trim(0)``, so freed heap blocks that ``aimc_lab``'s allocator tuning keeps do not
  count), in MiB;
* ``programmed``: the same after ``program()`` + ``drift(3600 s)`` (analog rows only);
* ``peak``: the process's peak RSS (``ru_maxrss``) minus the RSS after the imports: the most the
  row ever held, program + drift included;
* ``× Linear``: resident and peak over the same quantities of the ``nn.Linear`` row;
* ``program s`` / ``drift s``: wall time of ``program()`` and of one ``drift(3600 s)``; ``cpu`` the
  process CPU time of the same (all threads): on a machine shared with other jobs, wall time
  measures the neighbours, CPU time much less so.

Each row runs in its own interpreter (``ru_maxrss`` is a per-process maximum). Protocol: one run per
row (the allocations are deterministic; the times are single runs, so expect ±10 % on a shared machine).

    python benchmarks/bench_memory.py [--size 4096] [--threads 2] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import resource
import subprocess
import sys
import time

LINEAR = "nn.Linear"


def _rss_mib() -> float:
    """Current RSS after handing freed heap blocks back to the OS."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure_row(name: str, size: int, threads: int) -> dict:
    """One row, in this process (call it in a fresh interpreter)."""
    import torch
    from torch import nn

    from aimc_lab import inference, presets
    from aimc_lab.nn import AnalogLinear

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base = _rss_mib()
    row = {"row": name}
    with torch.no_grad():
        layer = (nn.Linear(size, size) if name == LINEAR
                 else AnalogLinear(size, size, config=presets.by_name(name)))
    for p in layer.parameters():
        p.grad = torch.zeros_like(p)
    row["resident"] = _rss_mib() - base
    if name != LINEAR:
        for step, run in (("program", lambda: inference.program(layer, torch.Generator().manual_seed(0))),
                          ("drift", lambda: inference.drift(layer, 3600.0, torch.Generator().manual_seed(1)))):
            start, cpu = time.perf_counter(), time.process_time()
            run()
            row[f"{step} s"], row[f"{step} cpu s"] = time.perf_counter() - start, time.process_time() - cpu
        row["programmed"] = _rss_mib() - base
    row["peak"] = _peak_mib() - base
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--csv", default=None)
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row is not None:
        print(json.dumps(measure_row(args.row, args.size, args.threads)))
        return
    import pandas as pd

    from aimc_lab.presets import PRESETS

    rows = []
    for name in (LINEAR, *PRESETS):
        out = subprocess.run([sys.executable, __file__, "--row", name, "--size", str(args.size),
                              "--threads", str(args.threads)], check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = pd.DataFrame(rows).set_index("row")
    ref = table.loc[LINEAR]
    table.insert(1, "resident × Linear", table["resident"] / ref["resident"])
    table["peak × Linear"] = table["peak"] / ref["peak"]
    print(f"AnalogLinear {args.size}x{args.size} vs nn.Linear, MiB (RSS), torch threads = {args.threads}")
    print(table.to_string(float_format=lambda v: f"{v:.2f}"))
    if args.csv:
        table.to_csv(args.csv)


if __name__ == "__main__":
    main()
