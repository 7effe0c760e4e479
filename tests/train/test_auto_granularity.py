"""``auto_granularity`` of the buffered transfers (ttv2, c-ttv2, agad): H's threshold in samples of a
steady A (the reference toolkit's option), off (0) by default."""

import pytest
import torch

from aimc_lab.config import IOParameters
from aimc_lab.devices.pulsed import ConstantStep
from aimc_lab.train.inmemory import InMemoryTile, training_config

K, N = 8, 3


def _tile(algorithm, **overrides):
    device = ConstantStep(dw_min=0.01, dw_min_std=0.0, dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0,
                          w_min_dtod=0.0)
    config = training_config(algorithm, device=device, transfer_io=IOParameters(is_perfect=True),
                             forward=IOParameters(is_perfect=True), backward=IOParameters(is_perfect=True),
                             **overrides)
    tile = InMemoryTile(N, K, config, seed=0)
    tile.A.set_weights(torch.full((N, K), 0.004))
    return tile


def _buffer_after_one_step(algorithm, rows=2, **overrides):
    """H after one update with d = 0 (A gets no pulses; the transfer reads A's first ``rows`` columns)."""
    tile = _tile(algorithm, **overrides)
    x = torch.ones(rows, K, requires_grad=False)
    tile(x).backward(torch.zeros(rows, N))
    tile.update(0.1)
    return tile.H.clone()


@pytest.mark.parametrize("algorithm", ["ttv2", "c-ttv2"])
def test_auto_granularity_divides_what_a_read_adds_by_reads_per_threshold(algorithm):
    plain = _buffer_after_one_step(algorithm)
    # a read adds transfer_lr·η·A/dw_min = 0.1·0.004/0.01 = 0.04 per read column, below the threshold 1
    assert torch.allclose(plain[:, :2], torch.full((N, 2), 0.04), atol=1e-6)
    assert torch.count_nonzero(plain[:, 2:]) == 0
    scaled = _buffer_after_one_step(algorithm, auto_granularity=100.0)
    # × K·transfer_every/auto_granularity = 8/100
    assert torch.allclose(scaled[:, :2], plain[:, :2] * (K / 100.0), rtol=1e-5)
    every = _buffer_after_one_step(algorithm, rows=4, auto_granularity=100.0, transfer_every=2)
    assert torch.allclose(every[:, :2], torch.full((N, 2), 0.04 * K * 2 / 100.0), rtol=1e-5)


def test_auto_granularity_is_off_by_default_and_checked():
    for algorithm in ("ttv2", "c-ttv2", "agad"):
        assert training_config(algorithm).training.auto_granularity == 0.0
    assert training_config("ttv2", auto_granularity=1000).training.auto_granularity == 1000
    with pytest.raises(ValueError, match="auto_granularity"):
        training_config("ttv2", auto_granularity=-1.0)
    with pytest.raises(ValueError, match="auto_granularity"):  # an algorithm without a buffer
        training_config("sgd", auto_granularity=1000.0)


@pytest.mark.parametrize("algorithm", ["sgd", "tiki-taka", "ttv2", "c-ttv2", "agad", "mixed-precision"])
def test_an_empty_batch_changes_nothing(algorithm):
    """An empty batch is no update: auto-scaled rates used to become NaN (mean of no rows) and leave a
    NaN gradient-size estimate behind."""
    from aimc_lab.devices.pulsed import reram_sb

    tile = InMemoryTile(4, 6, training_config(algorithm, device=reram_sb()), seed=0)
    before = {k: v.clone() for k, v in tile.state_dict().items() if torch.is_tensor(v)}
    tile(torch.zeros(0, 6)).sum().backward()
    tile.update(0.1)
    after = tile.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
