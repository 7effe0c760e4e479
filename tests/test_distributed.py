"""aimc_lab.distributed and evaluate_over_time(distributed=True): two CPU processes (gloo, loopback).

The 2-process run is benchmarks/ddp_hwa.py under torchrun, the README's example: it trains a converted
CNN hardware-aware for a few epochs, then reports how far the ranks' learned input ranges, output
scales, weights and programmed weights differ (must be 0), and whether the distributed drift table
equals the single-process table for the same seed (must be True). A one-process run of the same
script (same global batches) gives the reference loss curve.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import aimc_lab as al
from aimc_lab import distributed as adist

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "ddp_hwa.py"
EPOCHS = 4


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(tmp_path, nproc, config):
    out = tmp_path / f"ddp_{config}_{nproc}.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if nproc == 1:
        cmd = [sys.executable, str(SCRIPT)]
        env["MASTER_PORT"] = str(_free_port())
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={nproc}",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{_free_port()}", str(SCRIPT)]
    cmd += ["--config", config, "--epochs", str(EPOCHS), "--repeats", "2", "--json", str(out)]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    return {(config, n): _run(tmp, n, config) for config in ("perfect", "standard_hwa") for n in (1, 2)}


def _losses(run):
    return [h["loss"] for h in run["history"]]


def test_without_noise_two_processes_compute_what_one_computes(runs):
    """No noise and no learned ranges: the global batch split over two ranks, DDP's averaged gradient
    is the one-process mean gradient, so the loss curves agree to float rounding."""
    one, two = _losses(runs["perfect", 1]), _losses(runs["perfect", 2])
    assert len(one) == len(two) == EPOCHS and one[-1] < one[0]
    assert one == pytest.approx(two, rel=1e-4, abs=1e-5)
    assert runs["perfect", 2]["history"][-1]["test_acc"] == pytest.approx(runs["perfect", 1]["history"][-1]["test_acc"],
                                                                         abs=0.3)


def test_two_ranks_keep_identical_analog_state(runs):
    two = runs["standard_hwa", 2]
    assert two["world_size"] == 2
    assert two["input_range_max_diff"] == 0.0  # the init-from-data steps are averaged over the ranks
    assert two["out_scale_max_diff"] == 0.0
    assert two["weight_max_diff"] == 0.0
    assert two["programmed_max_diff"] == 0.0  # one chip: same programming on every rank


def test_distributed_drift_table_equals_the_single_process_table(runs):
    for key in runs:
        assert runs[key]["drift_table_equals_single_process"] is True, key


def test_hardware_aware_training_learns_alike_in_one_and_two_processes(runs):
    """Same global batches, one weight-noise draw per global batch in both; the forward noise streams
    differ, so the curves differ by noise only: both learn, and they stay within a loose band."""
    one, two = _losses(runs["standard_hwa", 1]), _losses(runs["standard_hwa", 2])
    assert one[-1] < 0.75 * one[0] and two[-1] < 0.75 * two[0]
    assert abs(one[-1] - two[-1]) <= 0.3 * max(one[-1], two[-1]) + 0.05, (one, two)
    acc1, acc2 = runs["standard_hwa", 1]["history"][-1]["test_acc"], runs["standard_hwa", 2]["history"][-1]["test_acc"]
    assert abs(acc1 - acc2) <= 12.0, (acc1, acc2)


# ---- single process: the parts that need no process group ---------------------------------------------

def _cnn(config):
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))
    return al.convert_to_analog(cnn, config)


def test_evaluate_over_time_depends_on_its_seed_only():
    """Regression: the drift-compensation read-out drew from the global RNG (the tile's generator was
    set only after programming), so two calls with the same seed differed."""
    d = al.data.digits(image=True)
    model = _cnn(al.presets.standard_hwa())
    kw = dict(times=[1.0, 86400.0], repeats=2, seed=5)
    torch.manual_seed(1)
    a = al.evaluate_over_time(model, (d.x_test[:200], d.y_test[:200]), raw=True, **kw)
    torch.manual_seed(2)
    b = al.evaluate_over_time(model, (d.x_test[:200], d.y_test[:200]), raw=True, **kw)
    assert a.equals(b)
    c = al.evaluate_over_time(model, (d.x_test[:200], d.y_test[:200]), raw=True, **dict(kw, seed=6))
    assert not a["value"].equals(c["value"])


def test_evaluate_over_time_cells_are_independent():
    """Any (repeat, time) cell computed alone equals the same cell in the full grid: what lets the grid
    split over ranks. Here: the grid of times [1 h] alone equals the 1 h column of [1 s, 1 h]."""
    d = al.data.digits(image=True)
    model = _cnn(al.presets.standard_hwa())
    data = (d.x_test[:200], d.y_test[:200])
    full = al.evaluate_over_time(model, data, times=[3600.0], repeats=3, seed=4, raw=True)
    first = al.evaluate_over_time(model, data, times=[3600.0], repeats=1, seed=4, raw=True)
    assert full["value"].iloc[0] == first["value"].iloc[0]


def test_distributed_flag_without_a_process_group_is_the_plain_call():
    d = al.data.digits(image=True)
    model = _cnn(al.presets.standard_hwa())
    data = (d.x_test[:100], d.y_test[:100])
    kw = dict(times=[1.0], repeats=2, seed=3)
    assert al.evaluate_over_time(model, data, distributed=True, **kw).equals(al.evaluate_over_time(model, data, **kw))
    with pytest.raises(TypeError, match="distributed"):
        al.evaluate_over_time(model, data, distributed="yes", **kw)


def test_wrap_refuses_in_memory_training_tiles_at_wrap_time():
    from aimc_lab.train import training_config
    model = al.convert_to_analog(nn.Linear(8, 4), training_config("sgd"))
    with pytest.raises(NotImplementedError, match="in-memory .*not supported"):
        adist.wrap(model)


def test_wrap_needs_a_process_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        adist.wrap(_cnn(al.presets.standard_hwa()))


def test_rank_seeds_are_distinct_and_checked():
    seeds = {adist.rank_seed(0, r, k) for r in range(4) for k in range(8)}
    assert len(seeds) == 32
    assert adist.rank_seed(0, 1, 2) == adist.rank_seed(0, 1, 2)
    with pytest.raises(ValueError, match="rank"):
        adist.rank_seed(0, -1, 0)
