"""The interface of an inference noise model: three hooks on conductances.

A noise model acts on *conductances* in µS (one differential pair per weight, docs/physics.md §2). Write your
own by subclassing :class:`NoiseModel` and overriding the three hooks; everything else (mapping of
weights to conductances, per-tile workflow, drift compensation) is shared::

    class MyNoise(NoiseModel):
        def programming_noise(self, g_target, generator):      # once, at programming
            return g_target + 0.5 * torch.randn(g_target.shape, generator=generator)
        def drift_exponents(self, g_target, generator):        # once, at programming
            return torch.full_like(g_target, 0.05)
        def at_time(self, g_prog, nu, g_target, t_inference, generator):  # each drift(t)
            return g_prog * ((t_inference + 20.0) / 20.0) ** (-nu)

Hooks must not modify their inputs and must draw randomness only from ``generator``. Pass an instance to
one tile (``AnalogTile(..., noise_model=MyNoise())``), or register the class for a whole network:
``aimc_lab.devices.register_noise_model("my_noise", MyNoise)`` with ``MyNoise.__init__(self, params)``
taking the :class:`~aimc_lab.config.NoiseModelParameters`, then ``NoiseModelParameters(kind="my_noise")``
in the config given to ``convert_to_analog`` (docs/extending.md).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from aimc_lab._checks import MAX_TIME, check_time  # the kernels validate times too (a lower layer)

__all__ = ["NoiseModel", "weights_to_conductances", "conductances_to_weights", "mapping_scale", "check_time",
           "MAX_TIME", "conductance_targets"]


def mapping_scale(w_max: Tensor, g_max: float) -> Tensor:
    """s = g_max / max|W| (µS per weight unit); an all-zero matrix (max|W| = 0) maps as if max|W| = 1,
    so its devices sit at g = 0 with the noise of the normal weight range, not 25x more."""
    return g_max / torch.where(w_max > 0, w_max, torch.ones_like(w_max))


def weights_to_conductances(w: Tensor, g_max: float) -> Tuple[Tensor, Tensor, Tensor]:
    """Map weights to a differential pair: s = g_max / max|W|, g± = clip(±s·w, 0, g_max).

    Returns (g_plus, g_minus, s) with s a 0-d tensor (g_max for an all-zero matrix).
    """
    if not torch.isfinite(w).all():
        raise ValueError("weights contain NaN or inf; cannot map them to conductances")
    s = mapping_scale(w.abs().max(), g_max)
    target = conductance_targets(w, s, g_max)
    return target.clamp(min=0.0), (-target).clamp(min=0.0), s


def conductance_targets(w: Tensor, s: Tensor, g_max: float) -> Tensor:
    """The signed targets g⁺ − g⁻ = clip(s·w, −g_max, g_max) in µS of a differential pair (docs/physics.md
    §2; g± are its positive and negative parts); ``s`` broadcasts against ``w`` (per tile or per column)."""
    return (w * s).clamp(-g_max, g_max)


def conductances_to_weights(g_plus: Tensor, g_minus: Tensor, s: Tensor) -> Tensor:
    """w = (g⁺ − g⁻)/s."""
    return (g_plus - g_minus) / s


class NoiseModel:
    """Base class of inference noise models (docs/physics.md §2). ``g_max`` in µS."""

    def __init__(self, g_max: float = 25.0) -> None:
        if not g_max > 0:
            raise ValueError(f"g_max = {g_max!r} is invalid; allowed: > 0 µS")
        self.g_max = float(g_max)

    def programming_noise(self, g_target: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        """Programmed conductances g_P from targets g_T (both in µS)."""
        return g_target.clone()

    def drift_exponents(self, g_target: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        """Drift exponents ν per device (0: no drift)."""
        return torch.zeros_like(g_target)

    def at_time(self, g_prog: Tensor, nu: Tensor, g_target: Tensor, t_inference: float,
                generator: Optional[torch.Generator]) -> Tensor:
        """Conductances read at ``t_inference`` seconds after programming (drift + read noise)."""
        return g_prog.clone()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(g_max={self.g_max})"
