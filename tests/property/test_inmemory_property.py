"""Every in-memory algorithm on every device preset keeps a finite state, with random data and lr.

Each example builds a small tile (transfers after every update, a random number of columns each),
runs a few AnalogSGD steps with random inputs and output gradients over several orders of magnitude,
and checks every tensor of the tile's state (device arrays, H, chopper, AGAD statistics) is finite
and every device's hidden weight inside its bounds. The same finiteness holds for random devices
inside the models' validated ranges (bounds at zero, spreads that flip a bound's sign).
"""

import pytest
import torch
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from aimc_lab.devices import pulsed as P
from aimc_lab.train import ALGORITHMS, AnalogSGD, InMemoryTile, training_config

K, N = 5, 3
SETTINGS = settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])


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


MODELS = (P.ConstantStep, P.LinearStep, P.SoftBounds, P.ExpStep, P.PowStep)


@st.composite
def devices(draw):
    """A device of a random model with random shared parameters inside the validated ranges, bounds
    at or across zero and spreads large enough to flip a bound's sign included."""
    w_max = draw(st.sampled_from([0.0, 0.05, 0.6, 2.0]))
    w_min = draw(st.sampled_from([0.0, -0.05, -0.6, -2.0]))
    if w_min >= w_max:
        w_min = w_max - 0.5
    spread = st.sampled_from([0.0, 0.3, 1.0, 3.0])
    model = draw(st.sampled_from(MODELS))
    kwargs = dict(
        dw_min=draw(st.sampled_from([1e-4, 0.01, 0.2])), up_down=draw(st.sampled_from([-1.0, -0.3, 0.0, 0.5, 1.0])),
        w_max=w_max, w_min=w_min, dw_min_dtod=draw(spread), w_max_dtod=draw(spread), w_min_dtod=draw(spread),
        up_down_dtod=draw(spread), dw_min_std=draw(st.sampled_from([0.0, 0.3, 5.0])), mult_noise=draw(st.booleans()),
        write_noise_std=draw(st.sampled_from([0.0, 50.0])), subtract_symmetry_point=draw(st.booleans()))
    try:
        return model(**kwargs)
    except ValueError:  # a combination the model does not allow (e.g. soft bounds need w_min < 0 < w_max)
        reject()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(device=devices(), seed=st.integers(0, 2 ** 31), lr=st.floats(1e-3, 10.0), scale=st.floats(1e-2, 1e2))
@example(device=P.SoftBounds(dw_min=0.01, dw_min_dtod=0.0, dw_min_std=5.0, up_down=-1.0, up_down_dtod=1.0, w_max=0.05,
                             w_min=-0.05, w_max_dtod=0.0, w_min_dtod=0.0), seed=1, lr=1.0, scale=1.0)
def test_state_stays_finite_on_random_devices(algorithm, device, seed, lr, scale):
    config = training_config(algorithm, device=device, transfer_columns=K)
    tile = InMemoryTile(N, K, config, seed=seed)
    opt = AnalogSGD(tile, lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(3):
        opt.zero_grad()
        tile(torch.randn(4, K, generator=g)).backward(torch.randn(4, N, generator=g) * scale)
        opt.step()
    for name, value in tile.state_dict().items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            assert torch.isfinite(value).all(), name
