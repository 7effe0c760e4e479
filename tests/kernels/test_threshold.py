"""Mixed precision's compiled transfer of χ (kernels/threshold.py) against its torch form (the spec in
aimc_lab/train/inmemory/mixed_precision.py): the same χ afterwards, bit for bit, and exactly the
devices with pulses, in flat order, with their counts; and the training step through it equal to the
step through the torch form (weights, write noise, χ and generator state)."""

import pytest
import torch

from aimc_lab.devices import pulsed as P
from aimc_lab.kernels import threshold
from aimc_lab.train import AnalogSGD
from aimc_lab.train.inmemory import InMemoryTile, training_config

pytestmark = pytest.mark.skipif(not threshold.serves(torch.zeros(1)), reason="numba is not installed")


def _torch_form(h: torch.Tensor, step: float, bound: int):
    """The spec's operations (MixedPrecision.update): n = clamp(trunc(χ/ε), ±bl); χ ← χ − n·ε."""
    n = torch.trunc(h / step).clamp_(-bound, bound)
    return h - n * step, n


def _hard_chi(dtype, step):
    """χ with the cases that break a careless transfer: exact multiples of ε (trunc at the integer),
    just below and above them, both signed zeros, values beyond ±bound·ε, tiny and huge values."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(40, 37, generator=g, dtype=dtype) * 3 * step
    flat = base.view(-1)
    k = torch.arange(-9, 10, dtype=dtype)
    flat[:19] = k * step
    flat[19:38] = torch.nextafter(k * step, torch.full_like(k, -1e30))
    flat[38:57] = torch.nextafter(k * step, torch.full_like(k, 1e30))
    flat[57], flat[58] = 0.0, -0.0
    flat[59:63] = torch.tensor([1e-30, -1e-30, 1e20, -1e20], dtype=dtype)
    return base


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("step,bound", [(0.01, 5), (0.003, 1), (0.7, 31)])
def test_compiled_transfer_equals_the_torch_form(dtype, step, bound):
    h = _hard_chi(dtype, step)
    want_h, want_n = _torch_form(h, step, bound)
    got_h = h.clone()
    idx, counts = threshold.threshold_transfer(got_h, step, bound)
    assert torch.equal(got_h, want_h)
    assert torch.equal(torch.signbit(got_h), torch.signbit(want_h))  # -0.0 stays -0.0
    flat_n = want_n.reshape(-1)
    assert torch.equal(idx, flat_n.nonzero().squeeze(-1))
    assert idx.dtype == torch.int64 and counts.dtype == dtype
    assert torch.equal(counts, flat_n[idx])
    assert counts.abs().max() == bound  # the clip acted
    assert (counts != 0).all()


def test_compiled_transfer_without_pulses_changes_nothing():
    h = torch.full((4, 5), 0.004)
    idx, counts = threshold.threshold_transfer(h, 0.01, 3)
    assert idx.numel() == 0 and counts.numel() == 0
    assert torch.equal(h, torch.full((4, 5), 0.004))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_row_bound_equals_the_torch_form(dtype):
    g = torch.Generator().manual_seed(1)
    x, d = torch.randn(7, 33, generator=g, dtype=dtype), torch.randn(7, 5, generator=g, dtype=dtype) * 1e30
    x[3] = 0.0
    want = float(x.abs().amax(1).double() @ d.abs().amax(1).double())
    assert threshold.row_bound(x, d) == pytest.approx(want, rel=1e-14)
    assert threshold.row_bound(x.t().contiguous().t(), d) == pytest.approx(want, rel=1e-14)  # the torch form
    assert threshold.row_bound(x[:0], d[:0]) == 0.0
    x[5, 7] = float("nan")
    assert threshold.row_bound(x, d) != threshold.row_bound(x, d)  # NaN


def test_serves_only_contiguous_float_cpu_tensors(monkeypatch):
    assert threshold.serves(torch.zeros(3, 4)) and threshold.serves(torch.zeros(3, 4, dtype=torch.float64))
    assert not threshold.serves(torch.zeros(4, 3).t())
    assert not threshold.serves(torch.zeros(3, 4, dtype=torch.bfloat16))
    monkeypatch.setenv("AIMC_LAB_NUMBA", "0")
    assert not threshold.serves(torch.zeros(3, 4))


def _model(seed: int, dtype):
    device = P.LinearStep(dw_min=0.01, gamma_up=0.3, gamma_down=0.5, dw_min_std=0.3, write_noise_std=1.0)
    config = training_config("mixed-precision", device=device, transfer_lr=0.5)
    tiles = InMemoryTile(7, 12, config, seed=seed), InMemoryTile(5, 7, config, seed=seed + 1)
    return torch.nn.Sequential(tiles[0], torch.nn.Sigmoid(), tiles[1]).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("via", ["AnalogSGD", "tile.update"])
def test_mixed_precision_training_equals_the_step_with_the_torch_transfer(via, dtype, monkeypatch):
    """Noisy steps and write noise on: the compiled transfer and the joint write of the devices with
    pulses take the same draws as the torch transfer and the dense write (everything else the same)."""
    g = torch.Generator().manual_seed(3)
    data = [(torch.rand(5, 12, generator=g, dtype=dtype), torch.rand(5, 5, generator=g, dtype=dtype)) for _ in range(6)]
    runs = []
    compiled_lane = threshold.serves
    for lane in (compiled_lane, lambda h: False):  # the compiled transfer, then the torch form
        monkeypatch.setattr(threshold, "serves", lane)
        model = _model(0, dtype)
        opt = AnalogSGD(model, lr=0.8)
        for x, y in data:
            opt.zero_grad()
            ((model(x) - y) ** 2).sum().backward()
            if via == "AnalogSGD":
                opt.step()
            else:
                for tile in (model[0], model[2]):
                    tile.update(0.8)
        runs.append([t for tile in (model[0], model[2])
                     for t in (tile.C.w, tile.C.write_noise, tile.H, tile.generator.get_state())])
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    tile = model[0]
    assert (tile.C.write_noise != 0).float().mean() > 0.05  # pulses went to C, with write noise
