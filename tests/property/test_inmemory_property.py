"""Every in-memory algorithm on every device preset keeps a finite state, with random data and lr.

Each example builds a small tile (transfers after every update, a random number of columns each),
runs a few AnalogSGD steps with random inputs and output gradients over several orders of magnitude,
and checks every tensor of the tile's state (device arrays, H, chopper, AGAD statistics) is finite
and every device's hidden weight inside its bounds.
"""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aimc_lab.devices import pulsed as P
from aimc_lab.train import ALGORITHMS, AnalogSGD, InMemoryTile, training_config

K, N = 5, 3
SETTINGS = settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("preset", sorted(P.PRESETS))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@SETTINGS
@given(seed=st.integers(0, 2 ** 31), lr=st.floats(1e-4, 10.0), x_scale=st.floats(1e-3, 1e3),
       d_scale=st.floats(1e-4, 1e3), rows=st.integers(1, 6), columns=st.integers(1, K))
def test_state_stays_finite(algorithm, preset, seed, lr, x_scale, d_scale, rows, columns):
    config = training_config(algorithm, device=P.PRESETS[preset](), transfer_columns=columns)
    tile = InMemoryTile(N, K, config, seed=seed)
    opt = AnalogSGD(tile, lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(3):
        opt.zero_grad()
        y = tile(torch.randn(rows, K, generator=g) * x_scale)
        y.backward(torch.randn(rows, N, generator=g) * d_scale)
        opt.step()
    assert int(tile.update_count) == 3
    for name, value in tile.state_dict().items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            assert torch.isfinite(value).all(), name
    for array in (tile.C, getattr(tile, "A", None)):
        if array is not None:
            assert ((array.w <= array.b_max) & (array.w >= array.b_min)).all()
