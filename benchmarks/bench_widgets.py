"""Widget responsiveness: slider change -> figure data updated, TileExplorer on a 512x512 tile.

Protocol: build the widget (not timed), 3 warm-up changes, then 20 timed changes of one control
(alternating between values so every change recomputes); each time runs from setting the control's
value to the return of the observer, i.e. after the figure's data was updated and its state message
was built (serialising included; no frontend here). Reports median and 90th percentile, and the
median size of the figure's state message per change (binary buffers plus JSON). The browser's share
(message, decoding, drawing) is measured by tests/browser/test_dashboards.py.
Targets: <= 100 ms without the PCM model, <= 250 ms with PCM drift on.

    .venv/bin/python benchmarks/bench_widgets.py [--threads 1] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from aimc_lab.kernels import backend
from aimc_lab.widgets import TileExplorer

SIZE, N_INPUTS, CHANGES, WARMUP = 512, 256, 20, 3

# (case, preset, setup {control: value}, control moved, values cycled, target ms)
CASES = [
    ("library defaults, output noise", "library defaults", {}, "out_noise", [0.05, 0.07], 100),
    ("library defaults, ADC bits", "library defaults", {}, "adc_bits", [8, 10], 100),
    ("standard HWA w/o PCM, DAC bits", "standard HWA", {"pcm": False}, "dac_bits", [7, 9], 100),
    ("standard HWA w/o PCM, IR drop", "standard HWA", {"pcm": False}, "ir_drop", [0.5, 1.5], 100),
    ("standard HWA + PCM, drift time", "standard HWA", {}, "drift_time", [3600.0, 86400.0], 250),
    ("standard HWA + PCM, ADC bits (reprogram)", "standard HWA", {}, "adc_bits", [7, 9], 250),
]


def bench_case(preset, setup, control, values):
    ex = TileExplorer(preset=preset, size=SIZE, n_inputs=N_INPUTS, seed=0)
    for name, value in setup.items():
        ex.controls[name].value = value
    widget = ex.controls[control]
    sizes = []
    send = ex.figure.state._send

    def measured_send(msg, buffers=None):
        sizes.append(sum(len(b) for b in buffers or []) + len(json.dumps(msg, default=str)))
        return send(msg, buffers)

    ex.figure.state._send = measured_send
    times = []
    for i in range(WARMUP + CHANGES):
        value = values[i % len(values)]
        before = ex.figure.data[0].y
        t0 = time.perf_counter()
        widget.value = value
        dt = time.perf_counter() - t0
        assert ex.figure.data[0].y is not before, "figure was not updated"
        if i >= WARMUP:
            times.append(1000 * dt)
    return statistics.median(times), statistics.quantiles(times, n=10)[-1], statistics.median(sizes[WARMUP:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as in CI/Binder)")
    parser.add_argument("--csv", default=None, help="also write the table as CSV")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for case, preset, setup, control, values, target in CASES:
        median, p90, size = bench_case(preset, setup, control, values)
        rows.append((case, median, p90, size / 1000, target, "yes" if median <= target else "NO"))
    print(f"TileExplorer {SIZE}x{SIZE} tile, {N_INPUTS} inputs, {CHANGES} changes, backend "
          f"{backend.active()}, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    header = f"{'case':<42} {'median ms':>10} {'p90 ms':>8} {'msg kB':>7} {'target':>7} {'ok':>4}"
    print(header)
    print("-" * len(header))
    for case, median, p90, size, target, ok in rows:
        print(f"{case:<42} {median:>10.1f} {p90:>8.1f} {size:>7.1f} {target:>7} {ok:>4}")
    if args.csv:
        import csv

        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["case", "median_ms", "p90_ms", "message_kb", "target_ms", "ok"])
            writer.writerows(rows)


if __name__ == "__main__":
    main()
