"""Whether tensors hold only finite numbers, compiled for small CPU tensors.

The in-memory tile checks its stored rows (x, δ) and each forward input before anything changes; on
the small tensors of in-memory training torch's check (``aminmax`` and two ``item`` calls, see
:func:`aimc_lab._checks.all_finite`) costs three dispatches per tensor, a compiled loop one call.
Without numba, on other devices or dtypes, :func:`aimc_lab._checks.all_finite` serves.
"""

from __future__ import annotations

import torch
from torch import Tensor

from aimc_lab._checks import all_finite as _all_finite_torch
from aimc_lab.kernels import _numba

__all__ = ["all_finite"]


def _finite_py(a):
    for i in range(a.shape[0]):
        v = a[i]
        if v - v != 0:  # NaN or ±inf (v − v is NaN for both)
            return False
    return True


def all_finite(t: Tensor) -> bool:
    """True when ``t`` has no NaN or inf (an empty tensor: True)."""
    if (t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and t.is_contiguous()
            and not t.requires_grad and _numba.available()):
        return bool(_numba.compiled(_finite_py)(t.numpy().reshape(-1)))
    return _all_finite_torch(t)
