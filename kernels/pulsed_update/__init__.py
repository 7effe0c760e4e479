"""Stochastic pulse-train update: dispatches to the Triton kernel or the torch reference (the spec).

The kernels take tensors and plain parameters (:class:`reference.PulseModel`), never a device object:
the device model (``aimc_lab.devices.pulsed``) builds the ``PulseModel`` and calls these functions
(``DeviceArray.pulsed_update`` / ``signed_counts_update``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from aimc_lab.kernels import backend
from aimc_lab.kernels.pulsed_update.reference import (DeviceTensors, PulseModel, apply_mixed_counts,
                                                      apply_pulse_counts, apply_pulse_sequence, pulse,
                                                      signed_counts_update, step_and_scale)
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
    return pulsed_update_reference(w, x, d, lr, model, desired_bl=desired_bl,
                                   update_management=update_management, bl_management=bl_management,
                                   generator=generator, exact=exact, block_rows=block_rows)
