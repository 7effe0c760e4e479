"""Long runs keep memory flat: no tensors, stored rows or autograd graphs pile up.

Hardware-aware: a small stack of AnalogLinear layers with the standard HWA preset (weight noise, learned
input ranges whose init from data spans the first 100 batches, clip and remap after every step) trains
for 1,000 steps with Adam, then runs 1,000 eval forwards. In-memory: a chain of six in-memory layers
(one per algorithm) trains 200 steps with AnalogSGD; the same holds for a loop of backward passes with
``zero_grad`` and no step (the rows go with the gradient), and a plain torch optimizer is refused at its
first step instead of leaking. After a warm-up, the number and the bytes of live tensors must not grow,
nor the process' resident memory beyond allocator noise.
"""

import gc

import pytest
import torch
from torch import nn

from aimc_lab import presets
from aimc_lab.devices import pulsed as P
from aimc_lab.nn import AnalogLinear
from aimc_lab.train import ALGORITHMS, AnalogSGD, attach_hwa, training_config

WIDTH, BATCH, STEPS = 16, 32, 1000
INMEMORY_BATCH = 64


def live_tensors():
    """(count, bytes) of every tensor the garbage collector can see."""
    gc.collect()
    tensors = [obj for obj in gc.get_objects() if issubclass(type(obj), torch.Tensor)]
    return len(tensors), sum(t.untyped_storage().nbytes() for t in tensors)


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_2000_forwards_of_training_and_eval_keep_memory_flat():
    torch.manual_seed(0)
    cfg = presets.standard_hwa(modifier_std=0.05)
    model = nn.Sequential(AnalogLinear(WIDTH, WIDTH, config=cfg), nn.ReLU(), AnalogLinear(WIDTH, 4, config=cfg))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    attach_hwa(opt, model)
    x, y = torch.randn(BATCH, WIDTH), torch.randint(0, 4, (BATCH,))
    checkpoints = {}
    model.train()
    for step in range(STEPS):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if step in (199, STEPS - 1):  # after the range init (100 batches) and Adam's state exist
            checkpoints[step] = (*live_tensors(), resident_bytes())
    assert int(model[0].tile.input_range_batches) == cfg.input_range.init_from_data
    model.eval()
    with torch.no_grad():
        for step in range(STEPS):
            out = model(x)
            if step in (99, STEPS - 1):
                checkpoints[STEPS + step] = (*live_tensors(), resident_bytes())
    assert torch.isfinite(out).all()
    count0, bytes0, rss0 = checkpoints[199]
    for step in (STEPS - 1, STEPS + 99, 2 * STEPS - 1):
        count, nbytes, rss = checkpoints[step]
        assert count <= count0 + 5, (step, count0, count)
        assert nbytes <= bytes0 + 64 * 1024, (step, bytes0, nbytes)
        assert rss <= rss0 + 16 * 2 ** 20, (step, rss0, rss)
    count, nbytes, _ = checkpoints[STEPS + 99]
    assert checkpoints[2 * STEPS - 1][:2] == (count, nbytes)  # eval forwards hold nothing at all


def chain():
    layers = []
    for i, algorithm in enumerate(ALGORITHMS):
        config = training_config(algorithm, device=P.SoftBounds(dw_min=0.01), transfer_columns=2)
        layers += [AnalogLinear(WIDTH, WIDTH, config=config, seed=i), nn.Tanh()]
    return nn.Sequential(*layers)


def test_200_steps_keep_memory_flat():
    torch.manual_seed(0)
    model = chain()
    opt = AnalogSGD(model, lr=0.05)
    x, y = torch.randn(INMEMORY_BATCH, WIDTH), torch.randn(INMEMORY_BATCH, WIDTH) * 0.1
    tiles = [m.tile for m in model if isinstance(m, AnalogLinear)]
    for step in range(200):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        assert all(not t._pending for t in tiles)
        if step == 49:
            tensors, rss = live_tensors(), resident_bytes()
    assert live_tensors() == tensors
    assert resident_bytes() - rss < 16 * 2 ** 20
    assert all(int(t.update_count) == 200 for t in tiles)


def test_backward_without_step_keeps_memory_flat():
    model = chain()
    x = torch.randn(INMEMORY_BATCH, WIDTH)
    tiles = [m.tile for m in model if isinstance(m, AnalogLinear)]
    for step in range(200):
        model.zero_grad()
        model(x).sum().backward()
        assert all(len(t._pending) == 1 for t in tiles)
        if step == 49:
            tensors = live_tensors()
    assert live_tensors() == tensors
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="AnalogSGD"):
        opt.step()
