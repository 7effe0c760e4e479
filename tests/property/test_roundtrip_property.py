"""Save/load round trips continue training bit-identically, for every in-memory algorithm and for a
hardware-aware layer.

Round trips: ``load_state_dict`` into a fresh model built with another seed, aimc_lab checkpoints
(``save_checkpoint``/``load_checkpoint``), whole-model ``torch.save``/``torch.load`` (pickle) and
``copy.deepcopy``. After the round trip the copy and the model that was never saved take the same
k steps on the same data with the same global RNG state (in-memory layers on a random device: soft
bounds or one of the presets); every tensor of their state (weights, device arrays, buffers,
generator states) must then be equal bit for bit.
"""

import copy
import io
import os
import tempfile

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from aimc_lab.convert import load_checkpoint, save_checkpoint
from aimc_lab.devices import pulsed as P
from aimc_lab.nn import AnalogLinear
from aimc_lab.presets import standard_hwa
from aimc_lab.train import ALGORITHMS, AnalogSGD, attach_hwa, training_config

K, N, M = 6, 3, 5
HWA = "hardware-aware"
HOW = ("state_dict", "checkpoint", "pickle", "deepcopy")
SETTINGS = settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])


DEVICES = {"soft bounds": lambda: P.SoftBounds(dw_min=0.01, up_down=0.1),
           **{name: make for name, make in sorted(P.PRESETS.items())}}


def make_model(kind, seed, device="soft bounds"):
    torch.manual_seed(seed)  # the digital layer's and nn.Linear-style initial weights
    if kind == HWA:
        layer = AnalogLinear(K, N, config=standard_hwa(modifier_std=0.05))
    else:
        config = training_config(kind, device=DEVICES[device](), transfer_columns=2)
        layer = AnalogLinear(K, N, config=config, seed=seed)
    return nn.Sequential(nn.Linear(K, K), nn.Tanh(), layer)


def make_optimizer(kind, model):
    if kind == HWA:
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        attach_hwa(opt, model)
        return opt
    return AnalogSGD(model, lr=0.2)


def batches(seed, steps):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(M, K, generator=g), torch.randn(M, N, generator=g)) for _ in range(steps)]


def backward(model, batch):
    x, y = batch
    ((model(x) - y) ** 2).mean().backward()


def train(kind, model, data, rng_seed):
    torch.manual_seed(rng_seed)  # forward noise of the hardware-aware tile comes from the global RNG
    opt = make_optimizer(kind, model)
    for batch in data:
        opt.zero_grad()
        backward(model, batch)
        opt.step()


def state(model):
    out = {}
    for key, value in model.state_dict().items():
        if isinstance(value, dict):  # a tile's extra state: its generator
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def round_trip(how, kind, model, seed, device):
    if how == "state_dict":
        fresh = make_model(kind, seed + 1, device)
        fresh.load_state_dict(model.state_dict())
        return fresh
    if how == "checkpoint":
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.pt")
            save_checkpoint(model, path)
            return load_checkpoint(path, lambda: make_model(kind, seed + 1, device))
    if how == "pickle":
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        return torch.load(buffer, weights_only=False)
    return copy.deepcopy(model)


@pytest.mark.parametrize("kind", ALGORITHMS + (HWA,))
@SETTINGS
@given(seed=st.integers(0, 2 ** 20), before=st.integers(0, 2), after=st.integers(1, 2),
       device=st.sampled_from(sorted(DEVICES)))
def test_round_trips_continue_identically(kind, seed, before, after, device):
    model = make_model(kind, seed, device)
    data = batches(seed, before + after)
    train(kind, model, data[:before], seed)
    copies = {how: round_trip(how, kind, model, seed, device) for how in HOW}
    train(kind, model, data[before:], seed + 7)
    expected = state(model)
    assert any(not torch.equal(value, state(make_model(kind, seed, device))[key])
               for key, value in expected.items())  # it did train
    for how, restored in copies.items():
        assert restored is not model
        train(kind, restored, data[before:], seed + 7)
        got = state(restored)
        assert expected.keys() == got.keys(), how
        for key, value in expected.items():
            assert torch.equal(value, got[key]), f"{how}: {key}"
