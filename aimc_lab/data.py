"""Data sets. Offline ones (scikit-learn's digits, shipped inside the package) serve tests, notebooks
and benchmarks; MNIST, Fashion-MNIST and CIFAR-10 come through torchvision as an option that fails
with a clear message when it is missing or offline. Nothing here downloads at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["Split", "digits", "digits_hard", "frequency_sequences", "loaders", "torchvision_dataset"]


@dataclass
class Split:
    """Train and test tensors of one data set."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int = 10

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _check_fraction(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} = {value!r} is invalid; allowed: (0, 1)")


def digits(image: bool = False, test_fraction: float = 0.25, seed: int = 0) -> Split:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), scaled to [0, 1].

    ``image=False`` gives flat vectors [n, 64] for MLPs, ``image=True`` images [n, 1, 8, 8] for CNNs.
    The split is stratified-free but seeded (same seed, same split).
    """
    from sklearn.datasets import load_digits

    _check_fraction("test_fraction", test_fraction)
    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    return _split(x.view(-1, 1, 8, 8) if image else x, y, test_fraction, seed)


def digits_hard(image: bool = False, test_fraction: float = 0.25, seed: int = 0, noise: float = 0.35,
                shift: int = 1) -> Split:
    """A harder offline variant of ``digits``: each image is shifted by up to ``shift`` pixels and
    gets additive Gaussian pixel noise of std ``noise`` (fixed per seed). Accuracy depends on
    small weight differences, so analog nonidealities show up clearly in it.
    """
    from sklearn.datasets import load_digits

    _check_fraction("test_fraction", test_fraction)
    if noise < 0:
        raise ValueError(f"noise = {noise!r} is invalid; allowed: >= 0")
    if shift < 0 or shift > 3:
        raise ValueError(f"shift = {shift!r} is invalid; allowed: an integer in [0, 3]")
    bunch = load_digits()
    rng = np.random.default_rng(seed)
    imgs = bunch.data.reshape(-1, 8, 8) / 16.0
    out = np.empty_like(imgs)
    for i, img in enumerate(imgs):
        dy, dx = rng.integers(-shift, shift + 1, size=2)
        out[i] = np.roll(np.roll(img, dy, axis=0), dx, axis=1)
    out = np.clip(out + noise * rng.standard_normal(out.shape), 0.0, 1.0)
    x = torch.tensor(out, dtype=torch.float32)
    y = torch.tensor(bunch.target, dtype=torch.long)
    return _split(x.view(-1, 1, 8, 8) if image else x.view(-1, 64), y, test_fraction, seed)


def frequency_sequences(n: int = 1200, length: int = 24, n_classes: int = 4, noise: float = 0.8,
                        test_fraction: float = 0.25, seed: int = 0) -> Split:
    """A sequence task generated offline: which of ``n_classes`` tones is hidden in a noisy signal.

    Sample i of class k is the sequence x_t = a·sin(2π (k + 1) t / length + φ) + noise·ξ_t, t = 0 ..
    length − 1 (class k completes k + 1 cycles), with a random amplitude a ∈ [0.5, 1.5], phase φ and
    Gaussian noise ξ_t, all fixed by ``seed``. Inputs are [n, length, 1] (batch first, one feature per
    step), labels [n]; the classes are balanced. No single step tells the classes apart: a recurrent
    network has to integrate evidence over the whole sequence, so in an analog LSTM the recurrent
    weights are read at every step and their errors (noise, drift) act ``length`` times.
    """
    for name, value, lo in (("n", n, 2), ("length", length, 2), ("n_classes", n_classes, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ValueError(f"{name} = {value!r} is invalid; allowed: an integer >= {lo}")
    if n_classes > length // 2:
        raise ValueError(f"n_classes = {n_classes!r} is invalid for length = {length}; allowed: at most "
                         f"length // 2 = {length // 2} (class k completes k + 1 cycles; more would alias)")
    if n < 2 * n_classes:
        raise ValueError(f"n = {n!r} is invalid for n_classes = {n_classes}; allowed: >= 2 * n_classes")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < float("inf"):
        raise ValueError(f"noise = {noise!r} is invalid; allowed: a finite number >= 0")
    _check_fraction("test_fraction", test_fraction)
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    t = np.arange(length)
    amplitude = rng.uniform(0.5, 1.5, size=(n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    x = amplitude * np.sin(2 * np.pi * (y[:, None] + 1) * t[None, :] / length + phase)
    x = x + noise * rng.standard_normal((n, length))
    return _split(torch.tensor(x, dtype=torch.float32).unsqueeze(-1), torch.tensor(y, dtype=torch.long),
                  test_fraction, seed)


def _split(x: torch.Tensor, y: torch.Tensor, test_fraction: float, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    n_test = int(round(len(x) * test_fraction))
    test, train = perm[:n_test], perm[n_test:]
    return Split(x[train], y[train], x[test], y[test], int(y.max()) + 1)


def loaders(split: Split, batch_size: int = 64, seed: int = 0,
            drop_last: bool = False) -> Tuple[DataLoader, DataLoader]:
    """(train, test) DataLoaders; the train loader shuffles with a seeded generator.

    ``drop_last=True`` leaves out the train loader's last, partial batch of each epoch (which samples
    fall there changes with the shuffle). With a mean loss a partial batch of k samples weighs each of
    them batch_size / k times as much as a full batch does; pulsed in-memory updates, whose step is set
    by the learning rate times the gradient, feel that as one unusually large update per epoch."""
    if batch_size < 1:
        raise ValueError(f"batch_size = {batch_size!r} is invalid; allowed: >= 1")
    g = torch.Generator().manual_seed(seed)
    train = DataLoader(TensorDataset(split.x_train, split.y_train), batch_size=batch_size, shuffle=True,
                       generator=g, drop_last=bool(drop_last))
    test = DataLoader(TensorDataset(split.x_test, split.y_test), batch_size=max(batch_size, 256))
    return train, test


_TV = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def torchvision_dataset(name: str, root: str = "~/.cache/aimc_lab", download: bool = True,
                        limit: Optional[int] = None) -> Split:
    """MNIST / Fashion-MNIST / CIFAR-10 through torchvision (optional; needs a download once).

    Raises ``RuntimeError`` with an explanation when torchvision is missing or the download fails.
    """
    if name not in _TV:
        raise ValueError(f"name = {name!r} is invalid; allowed: " + ", ".join(repr(k) for k in _TV))
    try:
        import torchvision
    except Exception as exc:  # ImportError, or a broken torchvision build
        raise RuntimeError(f"{name} needs torchvision (pip install 'aimc-lab[vision]'); import failed: {exc}. "
                           "Offline, use aimc_lab.data.digits() instead.") from exc
    import os

    root = os.path.expanduser(root)
    cls = getattr(torchvision.datasets, _TV[name])
    try:
        train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=download)
    except Exception as exc:
        raise RuntimeError(f"could not load {name} into {root} (offline? {exc}). "
                           "Download it once on a connected machine, or use aimc_lab.data.digits().") from exc

    def to_tensors(ds):
        data = torch.as_tensor(np.asarray(ds.data), dtype=torch.float32) / 255.0
        data = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
        targets = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
        if limit is not None:
            data, targets = data[:limit], targets[:limit]
        return data, targets

    xtr, ytr = to_tensors(train)
    xte, yte = to_tensors(test)
    return Split(xtr, ytr, xte, yte, 10)
