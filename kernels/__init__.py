"""Functional compute core of aimc-lab: tensors in, tensors out; no modules, no globals but the backend.

Each op lives in its own folder with ``reference.py`` (pure torch, the spec; also the CPU path unless
the folder has a faster torch implementation beside it, as ``analog_mvm/cpu_fast.py``) and, where a
GPU helps, ``triton_impl.py`` with the same signature; the folder's ``__init__`` dispatches through
:mod:`aimc_lab.kernels.backend`. ``_triton_util.py`` holds what every Triton implementation shares.
"""

from aimc_lab.kernels import backend
from aimc_lab.kernels.analog_mvm import analog_mvm, analog_mvm_one_hot

__all__ = ["analog_mvm", "analog_mvm_one_hot", "backend"]
