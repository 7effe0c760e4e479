"""benchmarks/bench_small_training.py: its rows run and print, and its ``layer floor`` row is plain SGD."""

import csv
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from script_module import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_small_training.py"


def _bench():
    return load_script(SCRIPT, "bench_small_training")


def _three_steps(bench, name):
    model, opt = bench.make_row(name)
    for xb, yb in bench.batches(3):
        loss = nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach() for p in model.parameters()]


def test_floor_row_is_plain_sgd_plus_its_gaussians(monkeypatch):
    bench = _bench()
    start = [p.detach() for p in bench.mlp(0).parameters()]
    digital = _three_steps(bench, "digital")
    monkeypatch.setattr(bench, "FLOOR_SIGMA", 0.0)  # without its noise the floor is SGD itself
    quiet = _three_steps(bench, bench.FLOOR)
    monkeypatch.setattr(bench, "FLOOR_SIGMA", 0.01)
    noisy = _three_steps(bench, bench.FLOOR)
    for w0, d, q, n in zip(start, digital, quiet, noisy):
        assert not torch.equal(d, w0)  # the steps moved every parameter
        torch.testing.assert_close(q, d, rtol=1e-5, atol=1e-7)
        assert not torch.equal(n, d)  # the Gaussians are drawn


def test_bench_prints_every_row_and_writes_csv(tmp_path):
    out = tmp_path / "rows.csv"
    result = subprocess.run([sys.executable, str(SCRIPT), "--repeats", "1", "--steps", "4", "--fixed", "--kernels",
                             "--algorithms", "sgd,ttv2", "--csv", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["row"] for r in rows] == ["digital", "layer floor", "sgd", "ttv2"]
    for row in rows:
        assert float(row["ms_per_step"]) > 0 and float(row["fixed_ms_per_step"]) > 0
        assert row["row"] in result.stdout
    assert [r["target"] for r in rows] == ["", "", "2.0", "3.0"]
    for row in rows[2:]:  # the update's kernels take time; the bound adds them to the floor
        assert float(row["update_kernels_ms_per_step"]) > 0
        assert float(row["floor_plus_kernels_vs_digital"]) > float(rows[1]["ms_per_step"]) / float(rows[0]["ms_per_step"])
    assert rows[0]["update_kernels_ms_per_step"] == rows[1]["update_kernels_ms_per_step"] == ""


def test_kernel_time_counts_the_update_only_and_restores_what_it_wraps(monkeypatch):
    from aimc_lab.kernels import _numba

    bench = _bench()
    data = bench.batches(6)
    randn, cache = torch.randn, dict(_numba._cache)
    spent = bench.kernel_ms(["sgd", "mixed-precision"], data)
    assert torch.randn is randn and all(_numba._cache[k] is v for k, v in cache.items())
    assert spent["sgd"] > 0 and spent["mixed-precision"] > 0
    model, opt = bench.make_row("sgd")  # without any update the kernels take no time
    monkeypatch.setattr(opt, "step", lambda: None)
    monkeypatch.setattr(bench, "make_row", lambda name: (model, opt))
    assert bench.kernel_ms(["sgd"], data) == {"sgd": 0.0}


def test_bench_rejects_unknown_algorithms():
    result = subprocess.run([sys.executable, str(SCRIPT), "--algorithms", "nope"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0 and "nope" in result.stderr
