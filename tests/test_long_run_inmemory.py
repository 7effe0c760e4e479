"""200 in-memory training steps keep memory flat: no stored rows, tensors or autograd graphs pile up.

A chain of six in-memory layers (one per algorithm) trains with AnalogSGD; after a warm-up the number
and the bytes of live tensors must not grow, nor the process' resident memory beyond allocator noise.
The same holds for a loop of backward passes with ``zero_grad`` and no step (the rows go with the
gradient), and a plain torch optimizer is refused at its first step instead of leaking.
"""

import gc

import pytest
import torch
from torch import nn

from aimc_lab.devices import pulsed as P
from aimc_lab.nn import AnalogLinear
from aimc_lab.train import ALGORITHMS, AnalogSGD, training_config

WIDTH, BATCH = 16, 64


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def chain():
    layers = []
    for i, algorithm in enumerate(ALGORITHMS):
        config = training_config(algorithm, device=P.SoftBounds(dw_min=0.01), transfer_columns=2)
        layers += [AnalogLinear(WIDTH, WIDTH, config=config, seed=i), nn.Tanh()]
    return nn.Sequential(*layers)


def live_tensors():
    """(count, bytes) of every tensor the garbage collector can see."""
    gc.collect()
    tensors = [obj for obj in gc.get_objects() if issubclass(type(obj), torch.Tensor)]
    return len(tensors), sum(t.untyped_storage().nbytes() for t in tensors)


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_200_steps_keep_memory_flat():
    torch.manual_seed(0)
    model = chain()
    opt = AnalogSGD(model, lr=0.05)
    x, y = torch.randn(BATCH, WIDTH), torch.randn(BATCH, WIDTH) * 0.1
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
    x = torch.randn(BATCH, WIDTH)
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
