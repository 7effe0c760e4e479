"""Stochastic pulse-train update: dispatches to the Triton kernel, the fast CPU path or the torch
reference (the spec).

Backend ``"triton"`` (``auto`` on CUDA tensors) runs :mod:`.triton_impl` for the constant and linear
kinds, ``"torch"`` (``auto`` otherwise) runs :mod:`.cpu_fast` (the spec's draws and result with fewer
tensor operations), ``"reference"`` runs the plain spec :mod:`.reference`.

The kernels take tensors and plain parameters (:class:`reference.PulseModel`), never a device object:
the device model (``aimc_lab.devices.pulsed``) builds the ``PulseModel`` and calls these functions
(``DeviceArray.pulsed_update`` / ``signed_counts_update``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from aimc_lab.kernels import backend
from aimc_lab.kernels.pulsed_update import cpu_fast
from aimc_lab.kernels.pulsed_update import reference as _reference
from aimc_lab.kernels.pulsed_update.reference import (DeviceTensors, PulseModel, apply_pulse_counts,
                                                      apply_pulse_sequence, pulse, step_and_scale)
from aimc_lab.kernels.pulsed_update.reference import pulsed_update as pulsed_update_reference

__all__ = ["pulsed_update", "pulsed_update_reference", "signed_counts_update", "apply_pulse_counts",
           "apply_mixed_counts", "apply_pulse_sequence", "pulse", "step_and_scale", "DeviceTensors",
           "PulseModel", "triton_supports"]


def triton_supports(model: PulseModel) -> bool:
    """True when the Triton kernel implements the model: the constant and linear kinds."""
    return model.closed_form


def pulsed_update(w: Tensor, x: Tensor, d: Tensor, lr: float, model: PulseModel, *,
                  desired_bl: int = 31, update_management: bool = True, bl_management: bool = True,
                  generator: Optional[torch.Generator] = None, exact: bool = False,
                  block_rows: Optional[int] = None) -> Tensor:
    """New hidden weights after a pulse-train update; see :func:`reference.pulsed_update`.

    The Triton kernel covers the constant and linear kinds (:func:`triton_supports`); the others run
    the reference on every backend. The kernel always follows the hardware's row-by-row,
    pulse-by-pulse order (the reference's ``exact=True`` semantics), so ``exact``/``block_rows`` only
    affect the reference.
    """
    if backend.resolve(w.device) == "triton" and triton_supports(model):
        from aimc_lab.kernels.pulsed_update import triton_impl

        return triton_impl.pulsed_update(w, x, d, lr, model, desired_bl=desired_bl,
                                         update_management=update_management, bl_management=bl_management,
                                         generator=generator)
    impl = _reference if backend.resolve(w.device) == "reference" else cpu_fast
    return impl.pulsed_update(w, x, d, lr, model, desired_bl=desired_bl, update_management=update_management,
                              bl_management=bl_management, generator=generator, exact=exact,
                              block_rows=block_rows)


def signed_counts_update(w: Tensor, counts: Tensor, model: PulseModel,
                         generator: Optional[torch.Generator]) -> Tensor:
    """|counts| pulses of direction sign(counts) per device; see :func:`reference.signed_counts_update`
    (backend ``"reference"``: the spec, otherwise the fast path with the same draws)."""
    impl = _reference if backend.resolve(w.device) == "reference" else cpu_fast
    return impl.signed_counts_update(w, counts, model, generator)


def apply_mixed_counts(w: Tensor, n_up: Tensor, n_down: Tensor, model: PulseModel,
                       generator: Optional[torch.Generator], exact: bool = False) -> Tensor:
    """n_up up and n_down down pulses per device; see :func:`reference.apply_mixed_counts`
    (backend ``"reference"``: the spec, otherwise the fast path with the same draws)."""
    impl = _reference if backend.resolve(w.device) == "reference" else cpu_fast
    return impl.apply_mixed_counts(w, n_up, n_down, model, generator, exact)
