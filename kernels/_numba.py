"""numba, loaded at first use: the compiled CPU gear of the kernels (pulsed update, small analog MVMs).

Why numba (a dependency, DESIGN-level): it compiles plain Python loops to machine code at first use,
without a C compiler or a build step, and caches the machine code on disk (``cache=True``), so a
later process pays ~1 s (mostly importing numba) instead of ~3 s. ``torch.compile`` was measured on
the pulse loop: 34 s to compile on a 2-core machine, a recompile for every new number of random
draws, and 6.5 ms per call (numba: 0.05 ms).

:func:`available` is False when numba cannot be imported or ``AIMC_LAB_NUMBA=0`` is set; every
caller then runs its eager torch path, which gives the same results (each compiled function is
tested against it).
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Optional

__all__ = ["available", "compiled"]

_state: Dict[str, object] = {"numba": None, "tried": False}
_cache: Dict[tuple, Callable] = {}


def _numba():
    if not _state["tried"]:
        _state["tried"] = True
        try:
            import numba
        except ImportError:  # the eager paths serve (module doc)
            numba = None
        _state["numba"] = numba
    return _state["numba"]


# os.environ's own dict (encoded keys and values), which its item assignment updates: a plain dict
# lookup, where os.environ.get encodes the key and decodes the value (~1 µs; a training step asks ~30 times)
_ENVIRON = getattr(os.environ, "_data", None)
_KEY = os.environ.encodekey("AIMC_LAB_NUMBA") if _ENVIRON is not None else None


def _switched_off() -> bool:
    if _ENVIRON is not None:
        value = _ENVIRON.get(_KEY)
        return value is not None and os.environ.decodevalue(value).strip() == "0"
    return os.environ.get("AIMC_LAB_NUMBA", "1").strip() == "0"


def available() -> bool:
    """Whether compiled functions can run: numba imports and ``AIMC_LAB_NUMBA`` is not ``0`` (read on
    every call, so a test or a user can switch it off at run time)."""
    if _switched_off():
        return False
    return _numba() is not None


def compiled(fn: Callable, reassociate: bool = False) -> Optional[Callable]:
    """``fn`` compiled by ``numba.njit(cache=True, nogil=True)`` (once per process; None without numba).

    ``reassociate``: let the compiler reorder and fuse float sums (LLVM's ``reassoc`` and ``contract``
    flags), so a dot product is vectorized; its last bits then differ from a sum in loop order, as
    any BLAS's do. Signed zeros, NaN and inf keep their IEEE meaning."""
    key = (fn, reassociate)
    found = _cache.get(key)
    if found is not None:
        return found
    numba = _numba()
    if numba is None:
        return None
    flags = {"fastmath": {"reassoc", "contract"}} if reassociate else {}
    _cache[key] = numba.njit(cache=True, nogil=True, **flags)(fn)
    return _cache[key]
