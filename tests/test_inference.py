"""The inference workflow: program, drift, evaluate over time."""

import pytest
import torch

import aimc_lab as al
from aimc_lab.inference import time_label


def small_model(config):
    torch.manual_seed(0)
    return torch.nn.Sequential(al.AnalogLinear(16, 12, config=config), torch.nn.ReLU(),
                               al.AnalogLinear(12, 3, config=config))


def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 16, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


def test_evaluate_over_time_table_and_reproducibility():
    model = small_model(al.presets.pcm_inference())
    table = al.evaluate_over_time(model, data(), times=[1.0, 3600.0], repeats=3, seed=2)
    assert list(table.columns) == ["time_s", "time", "mean", "std", "n"]
    assert table["n"].tolist() == [3, 3] and table["time"].tolist() == ["1 s", "1 h"]
    again = al.evaluate_over_time(model, data(), times=[1.0, 3600.0], repeats=3, seed=2)
    assert table.equals(again)
    raw = al.evaluate_over_time(model, data(), times=[1.0], repeats=2, reprogram=False, raw=True)
    assert list(raw.columns) == ["time_s", "repeat", "value"] and len(raw) == 2
    assert not any(bool(t.programmed) for t in al.tiles(model))


def test_progress_callback_and_errors():
    model = small_model(al.presets.pcm_inference())
    seen = []
    al.evaluate_over_time(model, data(), times=[1.0, 10.0], repeats=1, progress=lambda d, n: seen.append((d, n)))
    assert seen == [(1, 2), (2, 2)]
    with pytest.raises(ValueError, match="repeats"):
        al.evaluate_over_time(model, data(), repeats=0)
    with pytest.raises(ValueError, match="t_inference"):
        al.evaluate_over_time(model, data(), times=[-5.0])
    with pytest.raises(ValueError, match="analog tiles"):
        al.program(torch.nn.Linear(3, 2))


def test_perfect_model_accuracy_constant_over_time():
    model = small_model(al.presets.perfect())
    acc = al.accuracy(model, data())
    table = al.evaluate_over_time(model, data(), times=[1.0, 3.1536e7], repeats=2)
    assert table["mean"].tolist() == [acc, acc] and table["std"].tolist() == [0.0, 0.0]


def test_time_labels():
    assert [time_label(t) for t in (1.0, 3600.0, 86400.0, 3.1536e7, 2 * 86400.0)] == [
        "1 s", "1 h", "1 day", "1 year", "2 days"]


def test_accuracy_and_evaluate_over_time_refuse_bad_data_naming_it():
    model = small_model(al.presets.pcm_inference())
    x, y = data()
    for bad, error, match in [
            (x, TypeError, r"data must be an \(x, y\) pair.*got Tensor"),
            (None, TypeError, r"data must be an \(x, y\) pair.*got None"),
            ((x, y.float()), TypeError, r"data.*labels y.*float32.*integer"),
            ((x, y[:3]), ValueError, r"data.*labels y.*3.*200"),
            ((x.tolist(), y), TypeError, r"data.*x.*list.*tensor"),
            ([(x, y), x], TypeError, r"data.*batch 1.*\(x, y\)")]:
        with pytest.raises(error, match=match):
            al.accuracy(model, bad)
        with pytest.raises(error, match=match):
            al.evaluate_over_time(model, bad, times=[1.0], repeats=1)
    assert not any(bool(t.programmed) for t in al.inference.tiles(model))
    assert 0 <= al.accuracy(model, [(x[:100], y[:100]), (x[100:], y[100:])]) <= 100
    # another metric decides what its data looks like
    table = al.evaluate_over_time(model, x, times=[1.0], repeats=1, metric=lambda m, d: float(m(d).mean()))
    assert len(table) == 1
