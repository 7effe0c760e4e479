"""Offline data: scikit-learn's digits, the harder variant, loaders, and the optional torchvision sets."""

import sys
import types

import pytest
import torch

from aimc_lab import data


def test_digits_shapes_range_and_seeded_split():
    split = data.digits()
    assert split.x_train.shape == (1348, 64) and split.x_test.shape == (449, 64)
    assert split.x_train.min() >= 0 and split.x_train.max() <= 1 and split.n_classes == 10
    assert data.digits(image=True).input_shape == (1, 8, 8)
    again, other = data.digits(seed=0), data.digits(seed=1)
    assert torch.equal(split.y_test, again.y_test) and not torch.equal(split.y_test, other.y_test)
    # train and test partition all 1797 images
    assert len(split.y_train) + len(split.y_test) == 1797


def test_digits_hard_is_noisier_and_reproducible():
    clean, hard = data.digits(), data.digits_hard(noise=0.35)
    assert torch.equal(clean.y_test, hard.y_test)  # same split
    assert (hard.x_test - clean.x_test).abs().mean() > 0.1
    assert torch.equal(hard.x_test, data.digits_hard(noise=0.35).x_test)
    assert hard.x_test.min() >= 0 and hard.x_test.max() <= 1


@pytest.mark.parametrize("kwargs, field", [(dict(test_fraction=1.0), "test_fraction"), (dict(noise=-0.1), "noise"),
                                           (dict(shift=4), "shift")])
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        data.digits_hard(**kwargs)


def test_loaders_batch_and_shuffle_are_seeded():
    split = data.digits()
    first = [next(iter(data.loaders(split, batch_size=32, seed=3)[0]))[1] for _ in range(2)]
    assert first[0].shape == (32,) and torch.equal(first[0], first[1])
    with pytest.raises(ValueError, match="batch_size"):
        data.loaders(split, batch_size=0)


def test_loaders_drop_last_leaves_out_the_partial_batch_only():
    split = data.digits()  # 1348 training images = 84 batches of 16 + 4
    sizes = [len(y) for _, y in data.loaders(split, batch_size=16, seed=0)[0]]
    assert sizes[-1] == 4 and len(sizes) == 85
    dropped = [len(y) for _, y in data.loaders(split, batch_size=16, seed=0, drop_last=True)[0]]
    assert dropped == [16] * 84
    # the test loader is never shortened
    assert sum(len(y) for _, y in data.loaders(split, batch_size=16, drop_last=True)[1]) == len(split.y_test)


def test_torchvision_sets_fail_clearly_without_torchvision(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import raises ImportError
    with pytest.raises(RuntimeError, match="needs torchvision.*digits"):
        data.torchvision_dataset("mnist")
    with pytest.raises(ValueError, match="name"):
        data.torchvision_dataset("imagenet")


def test_torchvision_sets_fail_clearly_offline(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    fake = types.SimpleNamespace(datasets=types.SimpleNamespace(MNIST=offline))
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    with pytest.raises(RuntimeError, match="offline.*network is unreachable"):
        data.torchvision_dataset("mnist", root=str(tmp_path))


def test_frequency_sequences_shapes_balance_and_seed():
    split = data.frequency_sequences(n=400, length=16, n_classes=4, seed=0)
    assert split.x_train.shape == (300, 16, 1) and split.x_test.shape == (100, 16, 1) and split.n_classes == 4
    labels = torch.cat([split.y_train, split.y_test])
    assert labels.bincount().tolist() == [100] * 4
    again, other = data.frequency_sequences(n=400, length=16, seed=0), data.frequency_sequences(n=400, length=16, seed=1)
    assert torch.equal(split.x_test, again.x_test) and not torch.equal(split.x_test, other.x_test)


def test_frequency_sequences_hide_the_class_frequency_in_noise():
    # without noise the strongest Fourier component of each sequence is its class frequency (k + 1);
    # with noise 0.8 it still is on average, but no longer for every sample
    for noise, at_least, at_most in ((0.0, 1.0, 1.0), (0.8, 0.6, 0.98)):
        split = data.frequency_sequences(n=800, length=24, noise=noise, seed=2)
        x, y = split.x_train.squeeze(-1), split.y_train
        peak = torch.fft.rfft(x, dim=1).abs()[:, 1:].argmax(dim=1)          # 0 = one cycle
        hits = float((peak == y).float().mean())
        assert at_least <= hits <= at_most, (noise, hits)


@pytest.mark.parametrize("kwargs, field", [(dict(n_classes=9, length=16), "n_classes"), (dict(length=1), "length"),
                                           (dict(n=3), "n"), (dict(noise=-1.0), "noise"),
                                           (dict(noise=float("nan")), "noise"), (dict(test_fraction=0), "test_fraction"),
                                           (dict(n_classes=2.5), "n_classes")])
def test_frequency_sequences_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        data.frequency_sequences(**kwargs)
