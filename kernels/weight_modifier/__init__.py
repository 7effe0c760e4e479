"""Weight-noise modifiers: dispatches to Triton (CUDA) or the torch reference."""

from aimc_lab.kernels.weight_modifier.reference import weight_modifier

__all__ = ["weight_modifier"]
