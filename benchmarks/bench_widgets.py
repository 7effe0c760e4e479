"""Widget responsiveness: slider change -> figure data updated, TileExplorer on a 512x512 tile.

Protocol: build the widget (not timed), 3 warm-up changes, then ``--changes`` timed changes of one
control (alternating between two values, so every change recomputes); each time runs from setting
the control's value to the return of the observer, i.e. after the figure's data was updated and its
state message was built (serialising included; no frontend here). Reports the median and 90th
percentile, the median time inside ``TileExplorer.compute`` (the simulation; the rest is statistics,
the figure update and its message), and the median size of the figure's state message per change
(binary buffers plus JSON). Targets: <= 100 ms without the PCM model, <= 250 ms with PCM drift on.

Per control (the Tile lab's setting: standard HWA with PCM and global drift compensation), the
baseline is what the widget computed per change before it kept the programmed devices: a fresh tile
programmed under the new config, drifted, then the forward (the same outputs, see
tests/widgets/test_tile_explorer.py), timed interleaved with the widget's changes in the same run.
The browser's share (message, decoding, drawing) is measured by tests/browser/test_dashboards.py.

    .venv/bin/python benchmarks/bench_widgets.py [--threads 1] [--inputs 256] [--changes 10] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from aimc_lab.kernels import backend
from aimc_lab.tile import AnalogTile
from aimc_lab.widgets import TileExplorer

SIZE, WARMUP = 512, 3

# (case, preset, setup {control: value}, control moved, values cycled, target ms)
CASES = [
    ("library defaults, output noise", "library defaults", {}, "out_noise", [0.05, 0.07], 100),
    ("library defaults, ADC bits", "library defaults", {}, "adc_bits", [8, 10], 100),
    ("standard HWA w/o PCM, DAC bits", "standard HWA", {"pcm": False}, "dac_bits", [7, 9], 100),
    ("standard HWA w/o PCM, IR drop", "standard HWA", {"pcm": False}, "ir_drop", [0.5, 1.5], 100),
    ("standard HWA + PCM, drift time", "standard HWA", {}, "drift_time", [3600.0, 86400.0], 250),
    ("standard HWA + PCM, ADC bits", "standard HWA", {}, "adc_bits", [7, 9], 250),
]

# the Tile lab's controls, each moved between two values (standard HWA, PCM, global compensation)
CONTROLS = [("adc_bits", [8, 9]), ("dac_bits", [7, 8]), ("out_bound", [10.0, 10.5]), ("out_noise", [0.04, 0.045]),
            ("w_noise", [0.0175, 0.02]), ("ir_drop", [1.0, 1.1]), ("drift_time", [3600.0, 86400.0]),
            ("weight_std", [0.246, 0.248]), ("sparsity", [0.5, 0.55])]


def fresh_outputs(ex: TileExplorer) -> torch.Tensor:
    """The baseline: program a new tile under the widget's config and settings, drift it, run the forward
    (the widget's seeded streams; what each change cost when every update programmed a new tile)."""
    w, x = ex._data()
    tile = AnalogTile(ex.size, ex.size, ex.config)
    tile.set_weights(w)
    tile.eval()
    with torch.no_grad():
        if ex.config.noise_model.kind != "none":
            tile.generator = torch.Generator().manual_seed(ex.seed + 3)
            tile.program(torch.Generator().manual_seed(ex.seed + 1))
            tile.generator = torch.Generator().manual_seed(ex.seed + 3)
            tile.drift(float(ex.controls["drift_time"].value), torch.Generator().manual_seed(ex.seed + 2))
        tile.generator = torch.Generator().manual_seed(ex.seed + 4)
        return tile(x)


def bench_case(preset, setup, control, values, n_inputs, changes, baseline=False):
    """(median ms, p90 ms, median compute ms, median message bytes, median baseline ms or None)."""
    ex = TileExplorer(preset=preset, size=SIZE, n_inputs=n_inputs, seed=0)
    for name, value in setup.items():
        ex.controls[name].value = value
    widget = ex.controls[control]
    if widget.value == values[0]:  # the first change must change something
        values = values[1:] + values[:1]
    sizes, compute_ms, base_ms = [], [], []
    send = ex.figure.state._send
    compute = ex.compute

    def measured_send(msg, buffers=None):
        sizes.append(sum(len(b) for b in buffers or []) + len(json.dumps(msg, default=str)))
        return send(msg, buffers)

    def measured_compute():
        t0 = time.perf_counter()
        result = compute()
        compute_ms.append(1000 * (time.perf_counter() - t0))
        return result

    ex.figure.state._send, ex.compute = measured_send, measured_compute
    times = []
    for i in range(WARMUP + changes):
        value = values[i % len(values)]
        before = ex.figure.data[0].y
        t0 = time.perf_counter()
        widget.value = value
        dt = time.perf_counter() - t0
        assert ex.figure.data[0].y is not before, "figure was not updated"
        if baseline:  # interleaved: the same settings, computed from scratch
            t1 = time.perf_counter()
            fresh_outputs(ex)
            base_ms.append(1000 * (time.perf_counter() - t1))
        if i >= WARMUP:
            times.append(1000 * dt)
    return (statistics.median(times), statistics.quantiles(times, n=10)[-1], statistics.median(compute_ms[WARMUP:]),
            statistics.median(sizes[WARMUP:]), statistics.median(base_ms[WARMUP:]) if baseline else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as in CI/Binder)")
    parser.add_argument("--inputs", type=int, default=256, help="input vectors per MVM (Tile lab: 256; 128 in CI)")
    parser.add_argument("--changes", type=int, default=10, help="timed changes per case (default 10)")
    parser.add_argument("--csv", default=None, help="also write the tables as CSV")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for case, preset, setup, control, values, target in CASES:
        median, p90, compute_ms, size, _ = bench_case(preset, setup, control, values, args.inputs, args.changes)
        rows.append((case, median, p90, compute_ms, size / 1000, target, "yes" if median <= target else "NO"))
    per_control = []
    for control, values in CONTROLS:
        median, p90, compute_ms, size, base = bench_case("standard HWA", {"compensation": True}, control, values,
                                                         args.inputs, args.changes, baseline=True)
        per_control.append((control, median, p90, compute_ms, median - compute_ms, base, base / compute_ms,
                            size / 1000))
    print(f"TileExplorer {SIZE}x{SIZE} tile, {args.inputs} inputs, {args.changes} changes, backend "
          f"{backend.active()}, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    header = f"{'case':<36} {'median ms':>10} {'p90 ms':>8} {'compute':>8} {'msg kB':>7} {'target':>7} {'ok':>4}"
    print(header)
    print("-" * len(header))
    for case, median, p90, compute_ms, size, target, ok in rows:
        print(f"{case:<36} {median:>10.1f} {p90:>8.1f} {compute_ms:>8.1f} {size:>7.1f} {target:>7} {ok:>4}")
    print("\nPer control, Tile lab setting (standard HWA, PCM, global compensation); baseline: a fresh programming")
    header = (f"{'control':<12} {'median ms':>10} {'p90 ms':>8} {'compute':>8} {'rest':>6} {'baseline':>9} "
              f"{'baseline/compute':>17} {'msg kB':>7}")
    print(header)
    print("-" * len(header))
    for control, median, p90, compute_ms, rest, base, ratio, size in per_control:
        print(f"{control:<12} {median:>10.1f} {p90:>8.1f} {compute_ms:>8.1f} {rest:>6.1f} {base:>9.1f} {ratio:>16.2f}x "
              f"{size:>7.1f}")
    if args.csv:
        import csv

        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["case", "median_ms", "p90_ms", "compute_ms", "rest_ms", "baseline_ms", "message_kb",
                             "target_ms", "ok"])
            for case, median, p90, compute_ms, size, target, ok in rows:
                writer.writerow([case, median, p90, compute_ms, median - compute_ms, "", size, target, ok])
            for control, median, p90, compute_ms, rest, base, ratio, size in per_control:
                writer.writerow([f"Tile lab, {control}", median, p90, compute_ms, rest, base, size, "", ""])


if __name__ == "__main__":
    main()
