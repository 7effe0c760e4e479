"""Which implementation runs the kernels: ``"auto" | "torch" | "triton" | "reference"``.

Read once from the environment variable ``AIMC_LAB_BACKEND`` (default ``"auto"``) and overridable
with the :func:`use_backend` context manager. ``auto`` runs Triton for CUDA tensors when Triton
imports, and torch otherwise. ``"torch"`` is each op's torch path (for the analog MVM the fast CPU
path, ``kernels/analog_mvm/cpu_fast.py``); ``"reference"`` is the plain spec (``reference.py``; the
same as ``"torch"`` for ops without a separate fast path). Forcing ``"triton"`` without a GPU raises a clear error
unless the Triton interpreter is on (``TRITON_INTERPRET=1``, a boolean flag that is on only for "1").
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

import torch

__all__ = ["BACKENDS", "get", "set_backend", "use_backend", "active", "resolve", "triton_available",
           "interpreter_on"]

BACKENDS = ("auto", "torch", "triton", "reference")


def _validate(name: str, source: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{source} = {name!r} is invalid; allowed: " + ", ".join(repr(b) for b in BACKENDS))
    return name


_state = {"backend": _validate(os.environ.get("AIMC_LAB_BACKEND", "auto").strip().lower() or "auto",
                               "AIMC_LAB_BACKEND")}


def interpreter_on() -> bool:
    """True when the Triton interpreter is requested (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_available() -> bool:
    """True when ``import triton`` works."""
    try:
        import triton  # noqa: F401
    except Exception:  # pragma: no cover - depends on the machine
        return False
    return True


def get() -> str:
    """The requested backend (``auto``, ``torch`` or ``triton``)."""
    return _state["backend"]


def set_backend(name: str) -> None:
    """Set the requested backend for the rest of the process."""
    _state["backend"] = _validate(name, "backend")


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Run a block with another backend: ``with use_backend("torch"): ...``."""
    previous = _state["backend"]
    _state["backend"] = _validate(name, "backend")
    try:
        yield name
    finally:
        _state["backend"] = previous


def resolve(device: Optional[torch.device] = None) -> str:
    """The implementation that runs for tensors on ``device``: ``"torch"``, ``"triton"`` or ``"reference"``."""
    requested = _state["backend"]
    on_cuda = device is not None and torch.device(device).type == "cuda"
    if requested in ("torch", "reference"):
        return requested
    if requested == "triton":
        if not triton_available():
            raise RuntimeError("backend 'triton' was requested but Triton does not import; "
                               "install triton or use backend 'torch'")
        if not on_cuda and not interpreter_on():
            raise RuntimeError("backend 'triton' needs CUDA tensors (no GPU here?) unless the Triton "
                               "interpreter is on: set TRITON_INTERPRET=1 before importing aimc_lab, "
                               "or use backend 'torch'/'auto'")
        return "triton"
    return "triton" if on_cuda and triton_available() else "torch"


def active(device: Optional[torch.device] = None) -> str:
    """What runs now for ``device`` (default: CUDA if present, else CPU), for widgets and benchmarks."""
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return resolve(device)
    except RuntimeError:
        return "torch (triton unavailable)"
