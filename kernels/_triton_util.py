"""Helpers every ``triton_impl.py`` shares: block sizes, the Philox seed drawn from a torch generator,
and the project's rounding rule inside a kernel.

Import this module only from Triton implementations (it imports ``triton``).
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

__all__ = ["MIN_BLOCK", "on_gpu", "block", "elementwise_block", "draw_seed", "draw_seeds", "round_half_away"]

#: Smallest block edge a GPU ``tl.dot`` accepts; the interpreter tolerates less, a GPU does not.
MIN_BLOCK = 16


def on_gpu() -> bool:
    """True when kernels launch on a GPU (CUDA present and the Triton interpreter off)."""
    return torch.cuda.is_available() and not triton.knobs.runtime.interpret


def block(n: int, cap: int) -> int:
    """Power of two >= max(n, MIN_BLOCK), at most ``cap`` (interpreter: one large block is fastest)."""
    return max(MIN_BLOCK, min(cap, triton.next_power_of_2(max(int(n), 1))))


def elementwise_block(numel: int) -> int:
    """Elements per program of a flat element-wise kernel: 1024 on a GPU; in the interpreter one block
    of up to 2^16 elements (each program costs a Python round trip there)."""
    if on_gpu():
        return 1024
    return block(numel, 1 << 16)


def draw_seeds(generator: Optional[torch.Generator], device: torch.device, n: int) -> list:
    """``n`` Philox keys in [0, 2^31 − 1) from the caller's generator (``device``'s default generator
    when None): the only way a kernel's randomness depends on the caller's RNG state."""
    gen_device = generator.device if generator is not None else torch.device(device)
    return torch.randint(0, 2 ** 31 - 1, (n,), generator=generator, device=gen_device).tolist()


def draw_seed(generator: Optional[torch.Generator], device: torch.device) -> int:
    """One Philox key (see :func:`draw_seeds`)."""
    return int(draw_seeds(generator, device, 1)[0])


@triton.jit
def round_half_away(v):
    """Round to the nearest integer, halves away from zero: sign(v)·floor(|v| + 1/2) (the project's
    rule, as :func:`aimc_lab.kernels.analog_mvm.reference.round_half_away`; ``libdevice`` rounding
    misbehaves in the interpreter)."""
    r = tl.floor(tl.abs(v) + 0.5)
    return tl.where(v < 0, -r, r)
