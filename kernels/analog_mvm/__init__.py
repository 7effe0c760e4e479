"""Noisy analog MVM: dispatches to the Triton kernel, the fast CPU path or the torch reference (the spec).

Backend ``"triton"`` (``auto`` on CUDA tensors) runs :mod:`.triton_impl`, ``"torch"`` (``auto`` otherwise)
runs :mod:`.cpu_fast`, ``"reference"`` runs the plain spec :mod:`.reference` (slow, for reading and
checking). All three share the contract, the straight-through backward and, between the torch ones,
the random draws.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from aimc_lab.config import IOParameters
from aimc_lab.kernels import backend
from aimc_lab.kernels.analog_mvm.cpu_fast import analog_mvm as analog_mvm_cpu_fast
from aimc_lab.kernels.analog_mvm.cpu_fast import analog_mvm_one_hot as analog_mvm_one_hot_cpu_fast
from aimc_lab.kernels.analog_mvm.cpu_fast import identity_inputs
from aimc_lab.kernels.analog_mvm.reference import analog_mvm as analog_mvm_reference

__all__ = ["analog_mvm", "analog_mvm_one_hot", "analog_mvm_reference", "analog_mvm_cpu_fast"]


def analog_mvm(x: Tensor, w: Tensor, io: IOParameters, *, in_size: Optional[int] = None,
               out_scales: Optional[Tensor] = None,
               generator: Optional[torch.Generator] = None) -> Tensor:
    """Noisy analog ``y = x @ w.T``; see :func:`reference.analog_mvm` for the full contract."""
    which = backend.resolve(x.device)
    if which == "triton":
        from aimc_lab.kernels.analog_mvm.triton_impl import analog_mvm as analog_mvm_triton

        return analog_mvm_triton(x, w, io, in_size=in_size, out_scales=out_scales, generator=generator)
    if which == "reference":
        return analog_mvm_reference(x, w, io, in_size=in_size, out_scales=out_scales, generator=generator)
    return analog_mvm_cpu_fast(x, w, io, in_size=in_size, out_scales=out_scales, generator=generator)


def analog_mvm_one_hot(w: Tensor, io: IOParameters, *, generator: Optional[torch.Generator] = None) -> Tensor:
    """The tile's response [K, N] to each one-hot input e_k, i.e. ``analog_mvm(torch.eye(K), w, io)``
    (one slice): a read-out of w's columns through the noisy periphery. The fast CPU path gives the
    same draws and numbers without the K×K×N matmuls; the other backends run the identity."""
    if backend.resolve(w.device) == "torch":
        return analog_mvm_one_hot_cpu_fast(w, io, generator=generator)
    return analog_mvm(identity_inputs(w), w, io, generator=generator)
