"""Stochastic pulse-train update: dispatches to the Triton kernel or the torch reference (the spec)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from aimc_lab.devices.pulsed import DeviceTensors, PulsedDevice
from aimc_lab.kernels import backend
from aimc_lab.kernels.pulsed_update.reference import apply_pulse_counts, signed_counts_update
from aimc_lab.kernels.pulsed_update.reference import pulsed_update as pulsed_update_reference

__all__ = ["pulsed_update", "pulsed_update_reference", "signed_counts_update", "apply_pulse_counts"]


def pulsed_update(w: Tensor, x: Tensor, d: Tensor, lr: float, device: PulsedDevice, t: DeviceTensors, *,
                  desired_bl: int = 31, update_management: bool = True, bl_management: bool = True,
                  generator: Optional[torch.Generator] = None, exact: bool = False,
                  block_rows: Optional[int] = None) -> Tensor:
    """New hidden weights after a pulse-train update; see :func:`reference.pulsed_update`.

    The Triton kernel covers the models it implements (``triton_impl.SUPPORTED``); others run the
    reference on every backend. The kernel always follows the hardware's row-by-row, pulse-by-pulse
    order (the reference's ``exact=True`` semantics), so ``exact``/``block_rows`` only affect the
    reference.
    """
    if backend.resolve(w.device) == "triton":
        from aimc_lab.kernels.pulsed_update import triton_impl

        if isinstance(device, triton_impl.SUPPORTED):
            return triton_impl.pulsed_update(w, x, d, lr, device, t, desired_bl=desired_bl,
                                             update_management=update_management,
                                             bl_management=bl_management, generator=generator)
    return pulsed_update_reference(w, x, d, lr, device, t, desired_bl=desired_bl,
                                   update_management=update_management, bl_management=bl_management,
                                   generator=generator, exact=exact, block_rows=block_rows)
