"""Validation of config fields: every error names the field, its value and what is allowed.

The config dataclasses (:mod:`aimc_lab.config`) and the classes that plug into them (pulsed devices,
in-memory training parameters, cost parameters) declare each field with :func:`checked` and call
:func:`check_fields` in ``__post_init__``. Plain data and the standard library only: this module sits
at the bottom of the package with :mod:`aimc_lab.config`.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import field, fields
from typing import Any, Callable, Optional, Tuple

__all__ = ["MIN_RESOLUTION_STEP", "invalid", "short", "interval", "real_value", "check_real", "check_int",
           "check_choice", "check_bool", "check_real_tuple", "check_resolution", "check_zero_or_real",
           "checked", "check_fields"]

#: Finest quantization step a resolution may ask for (and so at most 1e12 steps).
MIN_RESOLUTION_STEP = 1e-12


def invalid(obj: Any, name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{type(obj).__name__}.{name} = {value!r} is invalid; allowed: {allowed}")


def short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def interval(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    return f"{'(' if lo_open or lo == -math.inf else '['}{lo:g}, {hi:g}{')' if hi_open or hi == math.inf else ']'}"


def real_value(obj: Any, label: str, value: Any, lo: float, hi: float, lo_open: bool, hi_open: bool,
                allow_inf: bool) -> Any:
    """``value`` if it is a real number in the interval (numpy scalars become float), else raise."""
    kind = "a real number" if allow_inf else "a finite real number"
    allowed = f"{kind} in {interval(lo, hi, lo_open, hi_open)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{type(obj).__name__}.{label} must be {allowed}, got {type(value).__name__} {value!r}")
    try:
        as_float = float(value)
    except OverflowError:
        as_float = math.inf if value > 0 else -math.inf
    if type(value) not in (int, float):
        value = as_float
    below = as_float <= lo if lo_open else as_float < lo
    above = as_float >= hi if hi_open else as_float > hi
    if math.isnan(as_float) or (math.isinf(as_float) and not allow_inf) or below or above:
        raise invalid(obj, label, value, allowed)
    return value


def check_real(obj: Any, name: str, lo: float = -math.inf, hi: float = math.inf,
                lo_open: bool = False, hi_open: bool = False, allow_inf: bool = False) -> None:
    """``obj.name`` must be a real number (not bool) in the interval, finite unless ``allow_inf``."""
    value = getattr(obj, name)
    checked = real_value(obj, name, value, lo, hi, lo_open, hi_open, allow_inf)
    if checked is not value:
        object.__setattr__(obj, name, checked)


def check_int(obj: Any, name: str, lo: int, hi: float = math.inf) -> None:
    """``obj.name`` must be an integer (not bool) in [lo, hi]; numpy integers become int."""
    value = getattr(obj, name)
    allowed = f"an integer in [{lo}, {hi}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{type(obj).__name__}.{name} must be {allowed}, got {type(value).__name__} {value!r}")
    if type(value) is not int:
        value = int(value)
        object.__setattr__(obj, name, value)
    if value < lo or value > hi:
        raise invalid(obj, name, value, allowed)


def check_choice(obj: Any, name: str, choices: Tuple[str, ...]) -> None:
    """``obj.name`` must be one of the strings ``choices``."""
    value = getattr(obj, name)
    allowed = "one of " + ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise TypeError(f"{type(obj).__name__}.{name} must be a str, {allowed}; got {type(value).__name__} "
                        f"{value!r}")
    if value not in choices:
        raise invalid(obj, name, value, allowed)


def check_bool(obj: Any, name: str) -> None:
    """``obj.name`` must be True or False (not 0/1, not a string)."""
    value = getattr(obj, name)
    if not isinstance(value, bool):
        raise TypeError(f"{type(obj).__name__}.{name} must be a bool (True or False), got {type(value).__name__} "
                        f"{value!r}")


def check_real_tuple(obj: Any, name: str, length: Optional[int] = None, min_length: int = 1,
                      lo: float = -math.inf, hi: float = math.inf, lo_open: bool = False,
                      hi_open: bool = False) -> None:
    """``obj.name`` must be a tuple/list of finite real numbers in the interval, of ``length`` entries
    (or at least ``min_length``); it is stored as a tuple of floats."""
    value = getattr(obj, name)
    count = f"{length}" if length is not None else f"at least {min_length}"
    allowed = f"a tuple of {count} finite real numbers in {interval(lo, hi, lo_open, hi_open)}"
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{type(obj).__name__}.{name} must be {allowed}, got {type(value).__name__} {value!r}")
    if (length is not None and len(value) != length) or len(value) < min_length:
        raise invalid(obj, name, value, allowed)
    entries = tuple(float(real_value(obj, f"{name}[{i}]", v, lo, hi, lo_open, hi_open, False))
                    for i, v in enumerate(value))
    object.__setattr__(obj, name, entries)


def check_resolution(obj: Any, name: str, allow_negative: bool = True) -> None:
    """A resolution (docs/physics.md §1): <= 0 is off, (0, 1] a step, > 1 a number of steps."""
    off = "<= 0 (off)" if allow_negative else "0 (off)"
    allowed = (f"{off}, a step in [{MIN_RESOLUTION_STEP:g}, 1] or a number of steps in "
               f"(1, {1 / MIN_RESOLUTION_STEP:g}]")
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{type(obj).__name__}.{name} must be a real number: {allowed}; got {type(value).__name__} "
                        f"{value!r}")
    try:
        check_real(obj, name, -math.inf if allow_negative else 0.0, 1 / MIN_RESOLUTION_STEP)
    except ValueError:
        raise invalid(obj, name, value, allowed) from None
    if 0 < getattr(obj, name) < MIN_RESOLUTION_STEP:
        raise invalid(obj, name, value, allowed)


def check_zero_or_real(obj: Any, name: str, lo: float, hi: float) -> None:
    """``obj.name`` must be 0 (off) or a finite real number in [lo, hi]."""
    allowed = f"0 (off) or a finite real number in [{lo:g}, {hi:g}]"
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{type(obj).__name__}.{name} must be {allowed}, got {type(value).__name__} {value!r}")
    try:
        check_real(obj, name, 0.0, hi)
    except ValueError:
        raise invalid(obj, name, value, allowed) from None
    if 0 < getattr(obj, name) < lo:
        raise invalid(obj, name, value, allowed)


def checked(default: Any, check: Callable[..., None], **limits: Any) -> Any:
    """A dataclass field validated by ``check(obj, name, **limits)`` (see :func:`check_fields`)."""
    return field(default=default, metadata={"check": functools.partial(check, **limits)})


def check_fields(obj: Any) -> None:
    """Run every field's own check, in declaration order."""
    for f in fields(obj):
        f.metadata["check"](obj, f.name)
