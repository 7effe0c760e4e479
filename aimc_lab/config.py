"""The hardware description: one frozen dataclass tree of plain data, validated once.

Every analog layer holds an :class:`AnalogConfig`. Change a field with
``dataclasses.replace`` (or :func:`replace_path`), never in place. ``to_dict``/``from_dict`` round-trip
through plain Python types, so configs travel in checkpoints and widget state.

Field meanings and defaults follow ``PHYSICS.md`` (section numbers are cited per class).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Tuple

__all__ = [
    "IOParameters",
    "MappingParameters",
    "NoiseModelParameters",
    "DriftCompensationParameters",
    "WeightModifierParameters",
    "ClipParameters",
    "RemapParameters",
    "InputRangeParameters",
    "AnalogConfig",
    "replace_path",
]


# ---------------------------------------------------------------------------------------------
# validation helpers: every message names the field, the value and what is allowed
# ---------------------------------------------------------------------------------------------


def _err(obj: Any, name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{type(obj).__name__}.{name} = {value!r} is invalid; allowed: {allowed}")


def _check_real(obj: Any, name: str, lo: float = -math.inf, hi: float = math.inf,
                lo_open: bool = False, hi_open: bool = False) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{type(obj).__name__}.{name} must be a number, got {type(value).__name__} {value!r}")
    if math.isnan(value):
        raise _err(obj, name, value, "a number, not NaN")
    below = value <= lo if lo_open else value < lo
    above = value >= hi if hi_open else value > hi
    if below or above:
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        raise _err(obj, name, value, f"{lb}{lo}, {hi}{rb}")


def _check_int(obj: Any, name: str, lo: int, hi: float = math.inf) -> None:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{type(obj).__name__}.{name} must be an int, got {type(value).__name__} {value!r}")
    if value < lo or value > hi:
        raise _err(obj, name, value, f"an integer in [{lo}, {hi}]")


def _check_choice(obj: Any, name: str, choices: Tuple[str, ...]) -> None:
    value = getattr(obj, name)
    if value not in choices:
        raise _err(obj, name, value, "one of " + ", ".join(repr(c) for c in choices))


def _check_bool(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if not isinstance(value, bool):
        raise TypeError(f"{type(obj).__name__}.{name} must be a bool, got {type(value).__name__} {value!r}")


def resolution_step(res: float) -> float:
    """Normalized resolution: a value > 1 means "number of steps" (1/value); <= 0 means off (0)."""
    if res <= 0:
        return 0.0
    return 1.0 / res if res > 1 else float(res)


# ---------------------------------------------------------------------------------------------
# PHYSICS §1: the MVM
# ---------------------------------------------------------------------------------------------

NOISE_MANAGEMENT = ("abs_max", "max", "constant", "none")
BOUND_MANAGEMENT = ("none", "iterative")
W_NOISE_TYPES = ("none", "additive_constant", "pcm_read")


@dataclass(frozen=True)
class IOParameters:
    """Nonidealities of one analog matrix-vector multiply (PHYSICS §1), library defaults."""

    is_perfect: bool = False
    inp_res: float = 1 / 126
    inp_bound: float = 1.0
    inp_noise: float = 0.0
    inp_sto_round: bool = False
    out_res: float = 1 / 510
    out_bound: float = 12.0
    out_noise: float = 0.06
    w_noise: float = 0.0
    w_noise_type: str = "none"
    ir_drop: float = 0.0
    ir_drop_g_ratio: float = 5.71e5
    noise_management: str = "abs_max"
    nm_thres: float = 0.0
    bound_management: str = "iterative"
    max_bm_factor: int = 1000
    max_bm_res: float = 0.25
    out_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("is_perfect", "inp_sto_round"):
            _check_bool(self, name)
        _check_real(self, "inp_res")
        _check_real(self, "inp_bound", 0.0, lo_open=True)
        _check_real(self, "inp_noise", 0.0)
        _check_real(self, "out_res")
        _check_real(self, "out_bound", 0.0, lo_open=True)
        _check_real(self, "out_noise", 0.0)
        _check_real(self, "w_noise", 0.0)
        _check_choice(self, "w_noise_type", W_NOISE_TYPES)
        _check_real(self, "ir_drop", 0.0)
        _check_real(self, "ir_drop_g_ratio", 0.0, lo_open=True)
        _check_choice(self, "noise_management", NOISE_MANAGEMENT)
        _check_real(self, "nm_thres", 0.0)
        if self.noise_management == "constant" and self.nm_thres <= 0:
            raise _err(self, "nm_thres", self.nm_thres, "> 0 when noise_management == 'constant'")
        _check_choice(self, "bound_management", BOUND_MANAGEMENT)
        _check_int(self, "max_bm_factor", 1)
        _check_real(self, "max_bm_res", 0.0, lo_open=True)
        _check_real(self, "out_scale", 0.0, lo_open=True)
        if self.w_noise > 0 and self.w_noise_type == "none":
            raise _err(self, "w_noise_type", self.w_noise_type,
                       "'additive_constant' or 'pcm_read' when w_noise > 0")

    @property
    def inp_step(self) -> float:
        """DAC step Δ_in = 2·inp_bound·inp_res (0 = no quantization)."""
        return 2.0 * self.inp_bound * resolution_step(self.inp_res)

    @property
    def out_step(self) -> float:
        """ADC step Δ_out = 2·out_bound·out_res (0 = no quantization)."""
        return 2.0 * self.out_bound * resolution_step(self.out_res)


# ---------------------------------------------------------------------------------------------
# mapping of a logical weight matrix onto physical tiles
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MappingParameters:
    """How a layer's weight matrix is laid out on tiles.

    ``weight_scaling_omega``: at programming, each tile's weights are scaled so that max|W| = ω
    (per tile, or per output column with ``weight_scaling_columnwise``); the inverse scale is a
    digital output scale. ``0`` keeps the weights as they are (they must then already be in [-1, 1]).
    ``learn_out_scaling``: the digital output scales are trainable parameters (hardware-aware
    training). ``digital_bias``: the bias is added digitally after the partial sums.
    """

    max_input_size: int = 512
    max_output_size: int = 512
    digital_bias: bool = True
    weight_scaling_omega: float = 1.0
    weight_scaling_columnwise: bool = False
    learn_out_scaling: bool = False

    def __post_init__(self) -> None:
        _check_int(self, "max_input_size", 1)
        _check_int(self, "max_output_size", 1)
        _check_bool(self, "digital_bias")
        _check_real(self, "weight_scaling_omega", 0.0, 1.0)
        _check_bool(self, "weight_scaling_columnwise")
        _check_bool(self, "learn_out_scaling")


# ---------------------------------------------------------------------------------------------
# PHYSICS §2: conductance noise models and drift compensation
# ---------------------------------------------------------------------------------------------

NOISE_MODELS = ("none", "pcm", "reram")


@dataclass(frozen=True)
class NoiseModelParameters:
    """The inference noise model of the programmed conductances (PHYSICS §2).

    ``kind``: ``"pcm"`` (PCMLikeNoise), ``"reram"`` (ReRAMLikeNoise) or ``"none"``. A user model is
    passed as an object to :class:`aimc_lab.tile.AnalogTile` instead (see ``devices.base``).
    """

    kind: str = "none"
    g_max: float = 25.0
    prog_noise_scale: float = 1.0
    drift_scale: float = 1.0
    read_noise_scale: float = 1.0
    t_0: float = 20.0
    t_read: float = 250e-9
    prog_coeff: Tuple[float, float, float] = (0.26348, 1.9650, -1.1731)

    def __post_init__(self) -> None:
        _check_choice(self, "kind", NOISE_MODELS)
        _check_real(self, "g_max", 0.0, lo_open=True)
        for name in ("prog_noise_scale", "drift_scale", "read_noise_scale"):
            _check_real(self, name, 0.0)
        _check_real(self, "t_0", 0.0, lo_open=True)
        _check_real(self, "t_read", 0.0, lo_open=True)
        if len(self.prog_coeff) != 3:
            raise _err(self, "prog_coeff", self.prog_coeff, "three numbers (c0, c1, c2)")
        object.__setattr__(self, "prog_coeff", tuple(float(c) for c in self.prog_coeff))


DRIFT_COMPENSATION = ("none", "global", "per_column")


@dataclass(frozen=True)
class DriftCompensationParameters:
    """Drift compensation (PHYSICS §2): rescale outputs by ref / current mean read-out."""

    kind: str = "none"

    def __post_init__(self) -> None:
        _check_choice(self, "kind", DRIFT_COMPENSATION)


# ---------------------------------------------------------------------------------------------
# PHYSICS §3: hardware-aware training
# ---------------------------------------------------------------------------------------------

MODIFIERS = ("none", "add_normal", "mult_normal", "poly", "discretize", "drop_connect")


@dataclass(frozen=True)
class WeightModifierParameters:
    """Weight-noise injection during hardware-aware training (once per mini-batch).

    ``assumed_wmax`` = 0 uses the current max|W| of the tile as ω.
    """

    kind: str = "none"
    std_dev: float = 0.0
    res: float = 0.0
    pdrop: float = 0.0
    assumed_wmax: float = 0.0
    coeffs: Tuple[float, float, float] = (0.0105392, 0.0768, -0.046925)
    enable_during_test: bool = False

    def __post_init__(self) -> None:
        _check_choice(self, "kind", MODIFIERS)
        _check_real(self, "std_dev", 0.0)
        _check_real(self, "res", 0.0)
        _check_real(self, "pdrop", 0.0, 1.0, hi_open=True)
        _check_real(self, "assumed_wmax", 0.0)
        if len(self.coeffs) != 3:
            raise _err(self, "coeffs", self.coeffs, "three numbers (c0, c1, c2)")
        object.__setattr__(self, "coeffs", tuple(float(c) for c in self.coeffs))
        _check_bool(self, "enable_during_test")
        if self.kind == "discretize" and self.res <= 0:
            raise _err(self, "res", self.res, "> 0 when kind == 'discretize'")


CLIP_KINDS = ("none", "fixed", "layer_gaussian")


@dataclass(frozen=True)
class ClipParameters:
    """Weight clipping after each optimizer step: fixed ±value, or ±sigma·std(W)."""

    kind: str = "none"
    fixed_value: float = 1.0
    sigma: float = 2.5

    def __post_init__(self) -> None:
        _check_choice(self, "kind", CLIP_KINDS)
        _check_real(self, "fixed_value", 0.0, lo_open=True)
        _check_real(self, "sigma", 0.0, lo_open=True)


REMAP_KINDS = ("none", "layer", "channelwise")


@dataclass(frozen=True)
class RemapParameters:
    """Remapping after each optimizer step: max|W| = 1 per layer or per output column."""

    kind: str = "none"

    def __post_init__(self) -> None:
        _check_choice(self, "kind", REMAP_KINDS)


@dataclass(frozen=True)
class InputRangeParameters:
    """Learned input range per tile (PHYSICS §3)."""

    enable: bool = False
    init_value: float = 3.0
    init_from_data: int = 100
    init_std_alpha: float = 3.0
    decay: float = 0.001
    input_min_percentage: float = 0.95
    learn_input_range: bool = True
    # Gradient of the range (docs/physics.md §3): the clipping part multiplied by r (the reference
    # toolkit's default for its hardware-aware presets) or not.
    gradient_relative: bool = True
    # Input gradient through the clip: straight through (as the reference) or zero where clipped.
    straight_through: bool = True

    def __post_init__(self) -> None:
        _check_bool(self, "enable")
        _check_real(self, "init_value", 0.0, lo_open=True)
        _check_int(self, "init_from_data", 0)
        _check_real(self, "init_std_alpha", 0.0, lo_open=True)
        _check_real(self, "decay", 0.0)
        _check_real(self, "input_min_percentage", 0.0, 1.0)
        _check_bool(self, "learn_input_range")
        _check_bool(self, "gradient_relative")
        _check_bool(self, "straight_through")


# ---------------------------------------------------------------------------------------------
# the whole tree
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalogConfig:
    """Everything about the simulated hardware of an analog layer.

    ``forward`` is the inference MVM; ``backward`` the transposed MVM used by in-memory training
    (hardware-aware training uses straight-through gradients of ``forward``). ``training`` is set
    by in-memory training configs (``aimc_lab.train.training_config``) and left ``None`` otherwise.
    """

    forward: IOParameters = field(default_factory=IOParameters)
    backward: IOParameters = field(default_factory=lambda: IOParameters(is_perfect=True))
    mapping: MappingParameters = field(default_factory=MappingParameters)
    noise_model: NoiseModelParameters = field(default_factory=NoiseModelParameters)
    drift_compensation: DriftCompensationParameters = field(default_factory=DriftCompensationParameters)
    modifier: WeightModifierParameters = field(default_factory=WeightModifierParameters)
    clip: ClipParameters = field(default_factory=ClipParameters)
    remap: RemapParameters = field(default_factory=RemapParameters)
    input_range: InputRangeParameters = field(default_factory=InputRangeParameters)
    training: Optional[Any] = None

    def __post_init__(self) -> None:
        for name, cls in _CHILD_TYPES.items():
            value = getattr(self, name)
            if not isinstance(value, cls):
                raise TypeError(f"AnalogConfig.{name} must be a {cls.__name__}, got {type(value).__name__}")

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AnalogConfig":
        return from_dict(cls, data)


_CHILD_TYPES = {
    "forward": IOParameters,
    "backward": IOParameters,
    "mapping": MappingParameters,
    "noise_model": NoiseModelParameters,
    "drift_compensation": DriftCompensationParameters,
    "modifier": WeightModifierParameters,
    "clip": ClipParameters,
    "remap": RemapParameters,
    "input_range": InputRangeParameters,
}

# Dataclasses that may appear as values in a config tree (``training`` registers its own).
_REGISTRY: dict = {cls.__name__: cls for cls in (AnalogConfig, *_CHILD_TYPES.values())}


def register_config_class(cls: type) -> type:
    """Make a frozen dataclass (de)serializable inside an AnalogConfig (used by ``training``)."""
    _REGISTRY[cls.__name__] = cls
    return cls


def to_dict(obj: Any) -> Any:
    """Plain-data form of a config (nested dicts with a ``__type__`` key per dataclass)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"__type__": type(obj).__name__}
        for f in fields(obj):
            out[f.name] = to_dict(getattr(obj, f.name))
        return out
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    return obj


def from_dict(cls: Optional[type], data: Any) -> Any:
    """Inverse of :func:`to_dict`; unknown keys raise ``ValueError``."""
    if isinstance(data, dict) and "__type__" in data:
        name = data["__type__"]
        if name not in _REGISTRY:
            raise ValueError(f"unknown config class {name!r} in config data")
        target = _REGISTRY[name]
        known = {f.name: f for f in fields(target)}
        kwargs = {}
        for key, value in data.items():
            if key == "__type__":
                continue
            if key not in known:
                raise ValueError(f"{name} has no field {key!r}")
            converted = from_dict(None, value)
            if isinstance(converted, list):
                converted = tuple(converted)
            kwargs[key] = converted
        return target(**kwargs)
    if isinstance(data, list):
        return [from_dict(None, v) for v in data]
    return data


def replace_path(config: AnalogConfig, path: str, value: Any) -> AnalogConfig:
    """Return a new config with the dotted field ``path`` (e.g. ``"forward.out_noise"``) set."""
    head, _, rest = path.partition(".")
    if not hasattr(config, head):
        raise ValueError(f"{type(config).__name__} has no field {head!r} (path {path!r})")
    if rest:
        return dataclasses.replace(config, **{head: replace_path(getattr(config, head), rest, value)})
    return dataclasses.replace(config, **{head: value})
