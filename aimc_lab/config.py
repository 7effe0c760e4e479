"""The hardware description: one frozen dataclass tree of plain data, validated once.

Every analog layer holds an :class:`AnalogConfig`. Change a field with
``dataclasses.replace`` (or :func:`replace_path`), never in place. ``to_dict``/``from_dict`` round-trip
through plain Python types, so configs travel in checkpoints and widget state.

Field meanings and defaults follow docs/physics.md (section numbers are cited per class). Each field
declares its own check (``metadata["check"]``, see :func:`_checked`); the limits are the physical
ranges widened to what the float32 kernels compute without overflow (bounds and scales within
[1e-9, 1e9], noise magnitudes up to 1e6, resolutions down to steps of 1e-12). Rules that tie two
fields together live in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Tuple

# Validation helpers live in aimc_lab.validation; the underscore names are this module's own use.
from aimc_lab.validation import MIN_RESOLUTION_STEP  # noqa: F401  (re-exported: widgets and tests read it)
from aimc_lab.validation import check_bool as _check_bool
from aimc_lab.validation import check_choice as _check_choice
from aimc_lab.validation import check_fields as _check_fields
from aimc_lab.validation import check_int as _check_int
from aimc_lab.validation import check_real as _check_real
from aimc_lab.validation import check_real_tuple as _check_real_tuple
from aimc_lab.validation import check_resolution as _check_resolution
from aimc_lab.validation import check_zero_or_real as _check_zero_or_real
from aimc_lab.validation import checked as _checked
from aimc_lab.validation import invalid as _err
from aimc_lab.validation import short as _short

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
    "register_config_class",
    "register_training_class",
    "TrainingParameters",
]



def resolution_step(res: float) -> float:
    """Normalized resolution: a value > 1 means "number of steps" (1/value); <= 0 means off (0)."""
    if res <= 0:
        return 0.0
    return 1.0 / res if res > 1 else float(res)


# ---------------------------------------------------------------------------------------------
# docs/physics.md §1: the MVM
# ---------------------------------------------------------------------------------------------

NOISE_MANAGEMENT = ("abs_max", "max", "constant", "none")
BOUND_MANAGEMENT = ("none", "iterative")
W_NOISE_TYPES = ("none", "additive_constant", "pcm_read")

#: Largest bound, scale or magnitude; smallest positive bound or scale.
BIG, SMALL = 1e9, 1e-9
#: Largest noise standard deviation or noise scale.
MAX_NOISE = 1e6


@dataclass(frozen=True)
class IOParameters:
    """Nonidealities of one analog matrix-vector multiply (docs/physics.md §1), library defaults."""

    is_perfect: bool = _checked(False, _check_bool)
    inp_res: float = _checked(1 / 126, _check_resolution)
    inp_bound: float = _checked(1.0, _check_real, lo=SMALL, hi=BIG)
    inp_noise: float = _checked(0.0, _check_real, lo=0.0, hi=MAX_NOISE)
    inp_sto_round: bool = _checked(False, _check_bool)
    out_res: float = _checked(1 / 510, _check_resolution)
    out_bound: float = _checked(12.0, _check_real, lo=SMALL, hi=BIG)
    out_noise: float = _checked(0.06, _check_real, lo=0.0, hi=MAX_NOISE)
    w_noise: float = _checked(0.0, _check_real, lo=0.0, hi=MAX_NOISE)
    w_noise_type: str = _checked("none", _check_choice, choices=W_NOISE_TYPES)
    ir_drop: float = _checked(0.0, _check_real, lo=0.0, hi=MAX_NOISE)
    ir_drop_g_ratio: float = _checked(5.71e5, _check_real, lo=1.0, hi=1e15)
    noise_management: str = _checked("abs_max", _check_choice, choices=NOISE_MANAGEMENT)
    nm_thres: float = _checked(0.0, _check_real, lo=0.0, hi=BIG)
    bound_management: str = _checked("iterative", _check_choice, choices=BOUND_MANAGEMENT)
    max_bm_factor: int = _checked(1000, _check_int, lo=1, hi=2 ** 30)
    max_bm_res: float = _checked(0.25, _check_real, lo=0.0, hi=BIG, lo_open=True)
    out_scale: float = _checked(1.0, _check_real, lo=SMALL, hi=BIG)

    def __post_init__(self) -> None:
        _check_fields(self)
        if self.noise_management == "constant" and self.nm_thres < SMALL:
            raise _err(self, "nm_thres", self.nm_thres, f"[{SMALL:g}, {BIG:g}] when noise_management == 'constant'")
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

MAX_TILE_SIZE = 2 ** 31 - 1


@dataclass(frozen=True)
class MappingParameters:
    """How a layer's weight matrix is laid out on tiles.

    ``weight_scaling_omega``: at programming, each tile's weights are scaled so that max|W| = ω
    (per tile, or per output column with ``weight_scaling_columnwise``); the inverse scale is a
    digital output scale. ``0`` keeps the weights as they are (they must then already be in [-1, 1]).
    ``learn_out_scaling``: the digital output scales are trainable parameters (hardware-aware
    training). A layer's bias is always digital (added after the partial sums are accumulated); the
    field ``digital_bias`` that said so and was never read is gone (schema 2, see :data:`CONFIG_SCHEMA`).
    """

    max_input_size: int = _checked(512, _check_int, lo=1, hi=MAX_TILE_SIZE)
    max_output_size: int = _checked(512, _check_int, lo=1, hi=MAX_TILE_SIZE)
    weight_scaling_omega: float = _checked(1.0, _check_zero_or_real, lo=1e-6, hi=1.0)
    weight_scaling_columnwise: bool = _checked(False, _check_bool)
    learn_out_scaling: bool = _checked(False, _check_bool)

    def __post_init__(self) -> None:
        _check_fields(self)


# ---------------------------------------------------------------------------------------------
# docs/physics.md §2: conductance noise models and drift compensation
# ---------------------------------------------------------------------------------------------

#: Allowed NoiseModelParameters.kind values; aimc_lab.devices.register_noise_model adds a user's own.
NOISE_MODELS = ["none", "pcm", "reram"]


@dataclass(frozen=True)
class NoiseModelParameters:
    """The inference noise model of the programmed conductances (docs/physics.md §2).

    ``kind``: ``"pcm"`` (PCMLikeNoise), ``"reram"`` (ReRAMLikeNoise), ``"none"``, or the name of a user
    model registered with :func:`aimc_lab.devices.register_noise_model` (see ``devices.base``).
    ``g_max`` in µS, ``t_0`` and ``t_read`` in seconds; the read-noise formula needs t_read <= t_0.
    """

    kind: str = _checked("none", _check_choice, choices=NOISE_MODELS)
    g_max: float = _checked(25.0, _check_real, lo=1e-6, hi=1e6)
    prog_noise_scale: float = _checked(1.0, _check_real, lo=0.0, hi=MAX_NOISE)
    drift_scale: float = _checked(1.0, _check_real, lo=0.0, hi=MAX_NOISE)
    read_noise_scale: float = _checked(1.0, _check_real, lo=0.0, hi=MAX_NOISE)
    t_0: float = _checked(20.0, _check_real, lo=SMALL, hi=BIG)
    t_read: float = _checked(250e-9, _check_real, lo=0.0, hi=BIG, lo_open=True)
    prog_coeff: Tuple[float, float, float] = _checked((0.26348, 1.9650, -1.1731), _check_real_tuple, length=3,
                                                      lo=-MAX_NOISE, hi=MAX_NOISE)

    def __post_init__(self) -> None:
        _check_fields(self)
        if self.t_read > self.t_0:
            raise _err(self, "t_read", self.t_read, f"(0, t_0 = {self.t_0:g}] (read noise needs t_read <= t_0)")


#: Allowed DriftCompensationParameters.kind values; devices.compensation.register_compensation adds more.
DRIFT_COMPENSATION = ["none", "global", "per_column"]


@dataclass(frozen=True)
class DriftCompensationParameters:
    """Drift compensation (docs/physics.md §2): rescale outputs by ref / current mean read-out."""

    kind: str = _checked("none", _check_choice, choices=DRIFT_COMPENSATION)

    def __post_init__(self) -> None:
        _check_fields(self)


# ---------------------------------------------------------------------------------------------
# docs/physics.md §3: hardware-aware training
# ---------------------------------------------------------------------------------------------

MODIFIERS = ("none", "add_normal", "mult_normal", "poly", "discretize", "drop_connect")


@dataclass(frozen=True)
class WeightModifierParameters:
    """Weight-noise injection during hardware-aware training (once per mini-batch).

    ``assumed_wmax`` = 0 uses the current max|W| of the tile as ω.
    """

    kind: str = _checked("none", _check_choice, choices=MODIFIERS)
    std_dev: float = _checked(0.0, _check_real, lo=0.0, hi=MAX_NOISE)
    res: float = _checked(0.0, _check_resolution, allow_negative=False)
    pdrop: float = _checked(0.0, _check_real, lo=0.0, hi=1.0, hi_open=True)
    assumed_wmax: float = _checked(0.0, _check_zero_or_real, lo=1e-6, hi=1e6)
    coeffs: Tuple[float, float, float] = _checked((0.0105392, 0.0768, -0.046925), _check_real_tuple, length=3,
                                                  lo=-MAX_NOISE, hi=MAX_NOISE)
    enable_during_test: bool = _checked(False, _check_bool)

    def __post_init__(self) -> None:
        _check_fields(self)
        if self.kind == "discretize" and self.res <= 0:
            raise _err(self, "res", self.res, "> 0 when kind == 'discretize'")


CLIP_KINDS = ("none", "fixed", "layer_gaussian")


@dataclass(frozen=True)
class ClipParameters:
    """Weight clipping after each optimizer step: fixed ±value, or ±sigma·std(W)."""

    kind: str = _checked("none", _check_choice, choices=CLIP_KINDS)
    fixed_value: float = _checked(1.0, _check_real, lo=0.0, hi=BIG, lo_open=True)
    sigma: float = _checked(2.5, _check_real, lo=0.0, hi=MAX_NOISE, lo_open=True)

    def __post_init__(self) -> None:
        _check_fields(self)


REMAP_KINDS = ("none", "layer", "channelwise")


@dataclass(frozen=True)
class RemapParameters:
    """Remapping after each optimizer step: max|W| = 1 per layer or per output column."""

    kind: str = _checked("none", _check_choice, choices=REMAP_KINDS)

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class InputRangeParameters:
    """Learned input range per tile (docs/physics.md §3).

    ``gradient_relative``: the clipping part of the range's gradient is multiplied by r (the reference
    toolkit's default for its hardware-aware presets) or not. ``straight_through``: the input gradient
    passes straight through the clip (as the reference) or is zero where clipped.
    """

    enable: bool = _checked(False, _check_bool)
    init_value: float = _checked(3.0, _check_real, lo=SMALL, hi=BIG)
    init_from_data: int = _checked(100, _check_int, lo=0, hi=MAX_TILE_SIZE)
    init_std_alpha: float = _checked(3.0, _check_real, lo=0.0, hi=MAX_NOISE, lo_open=True)
    decay: float = _checked(0.001, _check_real, lo=0.0, hi=MAX_NOISE)
    input_min_percentage: float = _checked(0.95, _check_real, lo=0.0, hi=1.0)
    learn_input_range: bool = _checked(True, _check_bool)
    gradient_relative: bool = _checked(True, _check_bool)
    straight_through: bool = _checked(True, _check_bool)

    def __post_init__(self) -> None:
        _check_fields(self)


# ---------------------------------------------------------------------------------------------
# the whole tree
# ---------------------------------------------------------------------------------------------

class TrainingParameters:
    """Base of the configs that ``AnalogConfig.training`` holds: how a tile trains in memory (pulsed
    updates). The library's is :class:`aimc_lab.train.InMemoryTrainingParameters`; a subclass (a frozen
    dataclass) joins through :func:`register_training_class`."""


#: Classes whose instances ``AnalogConfig.training`` accepts (see :func:`register_training_class`).
_TRAINING_CLASSES: list = []


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
    training: Optional[TrainingParameters] = None

    def __post_init__(self) -> None:
        for name, cls in _CHILD_TYPES.items():
            value = getattr(self, name)
            if not isinstance(value, cls):
                raise TypeError(f"AnalogConfig.{name} must be a {cls.__name__}, got {type(value).__name__} "
                                f"{_short(value)}")
        if self.training is not None and not isinstance(self.training, tuple(_TRAINING_CLASSES)):
            _ensure_registered()
            allowed = (" or a " + " / ".join(c.__name__ for c in _TRAINING_CLASSES) if _TRAINING_CLASSES
                       else " (no training class is registered: aimc_lab.train.inmemory registers one with "
                       "aimc_lab.config.register_training_class)")
            raise TypeError(f"AnalogConfig.training must be None{allowed} (build one with "
                            f"aimc_lab.train.training_config), got {type(self.training).__name__} "
                            f"{_short(self.training)}")

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


def _ensure_registered() -> None:
    """Import the modules that register config classes (pulsed devices, in-memory training); they need
    torch, so ``import aimc_lab`` leaves them until a lookup misses."""
    import aimc_lab.devices.pulsed  # noqa: F401
    import aimc_lab.train.inmemory  # noqa: F401


def register_config_class(cls: type) -> type:
    """Make a frozen dataclass (de)serializable inside an AnalogConfig (devices, training parameters)."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"register_config_class: cls must be a dataclass type, got {cls!r}")
    _REGISTRY[cls.__name__] = cls
    return cls


def register_training_class(cls: type) -> type:
    """Allow instances of ``cls`` (a :class:`TrainingParameters` dataclass) as ``AnalogConfig.training``
    (and (de)serialize them); a decorator."""
    if not (isinstance(cls, type) and issubclass(cls, TrainingParameters)):
        raise TypeError(f"register_training_class: cls must be a subclass of aimc_lab.config.TrainingParameters, "
                        f"got {cls!r}")
    register_config_class(cls)
    if cls not in _TRAINING_CLASSES:
        _TRAINING_CLASSES.append(cls)
    return cls


#: Version of the dict layout that :func:`to_dict` writes for an AnalogConfig (key ``__schema__``).
#: 1: no ``__schema__`` key (releases before the key existed); 2: ``MappingParameters.digital_bias``
#: removed, and the in-memory algorithms' published defaults (schema-1 training configs keep their
#: old semantics, see :func:`_migrate_training_1`). :func:`from_dict` reads every version up to this one and refuses newer ones by name.
CONFIG_SCHEMA = 2


def to_dict(obj: Any) -> Any:
    """Plain-data form of a config (nested dicts with a ``__type__`` key per dataclass; an AnalogConfig
    also carries ``__schema__``)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {"__type__": type(obj).__name__}
        if isinstance(obj, AnalogConfig):
            out["__schema__"] = CONFIG_SCHEMA
        for f in fields(obj):
            out[f.name] = to_dict(getattr(obj, f.name))
        return out
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    return obj


def from_dict(cls: Optional[type], data: Any) -> Any:
    """Inverse of :func:`to_dict`. With ``cls``, ``data`` must be a dict of that class (its ``__type__``
    may be left out, also in nested configs); unknown classes, keys and bad values raise errors that
    name the path (e.g. ``AnalogConfig.forward.out_noise``)."""
    if cls is not None:
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise TypeError(f"from_dict: cls must be a config class such as AnalogConfig or None, got {cls!r}")
        if not isinstance(data, dict):
            raise TypeError(f"from_dict: data for {cls.__name__} must be a dict (as to_dict returns), got "
                            f"{type(data).__name__} {data!r}")
    target = _from_data(data, cls, cls.__name__ if cls is not None else "config")
    if cls is not None and not isinstance(target, cls):
        raise TypeError(f"from_dict: expected {cls.__name__} data, got __type__ {data.get('__type__')!r}")
    return target


def _migrate(data: dict, path: str) -> dict:
    """An AnalogConfig dict of any schema up to :data:`CONFIG_SCHEMA`, rewritten in the current layout."""
    version = data.get("__schema__", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: __schema__ = {_short(version)} is invalid; allowed: an integer from 1 to "
                         f"{CONFIG_SCHEMA}")
    if version > CONFIG_SCHEMA:
        raise ValueError(f"{path}: this config was saved by a newer aimc-lab (config schema {version}); this "
                         f"release reads schemas 1 to {CONFIG_SCHEMA}: upgrade aimc-lab to load it")
    data = {k: v for k, v in data.items() if k != "__schema__"}
    if version < 2 and isinstance(data.get("mapping"), dict) and "digital_bias" in data["mapping"]:
        mapping = dict(data["mapping"])
        if mapping.pop("digital_bias") is not True:  # the old default; False was accepted but never honoured
            raise ValueError(f"{path}.mapping.digital_bias = {_short(data['mapping']['digital_bias'])}: an "
                             "analog bias was never simulated (the bias was always digital) and the field "
                             "is gone; remove it or set it to True to load this config")
        data["mapping"] = mapping
    if version < 2 and isinstance(data.get("training"), dict):
        data["training"] = _migrate_training_1(data["training"])
    return data


# Schema 1's in-memory algorithms, as they ran then (docs/physics.md §4 lists today's published defaults):
# A's rate was η·fast_lr, transfer_lr an absolute rate, one column transferred per update call, and
# c-TTv2/AGAD had no auto-scaling. Fields that did not exist then are filled with those semantics, so an
# old checkpoint trains as it did. (AGAD's schema-1 reference point, a gated least-squares line, no
# longer exists; such configs load with today's running-mean reference.)
_TRAINING_1 = {"scale_fast_lr": True, "scale_transfer_lr": False, "transfer_per_sample": False}
_TRAINING_1_ALGORITHMS = {
    **dict.fromkeys(("tiki-taka", "tt", "ttv1", "tiki-taka-v1", "ttv2", "tt-v2"), _TRAINING_1),
    **dict.fromkeys(("c-ttv2", "chopped-ttv2", "cttv2", "agad"), dict(_TRAINING_1, auto_scale=False)),
}


def _migrate_training_1(training: dict) -> dict:
    """A schema-1 ``InMemoryTrainingParameters`` dict with the fields added since filled as they behaved."""
    if training.get("__type__", "InMemoryTrainingParameters") != "InMemoryTrainingParameters":
        return training
    old = _TRAINING_1_ALGORITHMS.get(str(training.get("algorithm", "sgd")).lower(), {})
    return {**old, **training}


def _nested_class(target: type, f: dataclasses.Field) -> Optional[type]:
    """The config class of field ``f`` when its default is a config (so nested dicts may omit __type__)."""
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return type(default) if dataclasses.is_dataclass(default) else None


def _from_data(data: Any, default_class: Optional[type], path: str) -> Any:
    """Build the config that ``data`` describes; a dict without ``__type__`` is a ``default_class``."""
    if isinstance(data, list):
        return [_from_data(v, None, f"{path}[{i}]") for i, v in enumerate(data)]
    if not isinstance(data, dict):
        return data
    name = data.get("__type__")
    if isinstance(name, str) and name not in _REGISTRY:
        _ensure_registered()
    if name is None:
        if default_class is None:
            raise ValueError(f"{path}: config data {_short(data)} has no '__type__' key; allowed: a dict from "
                             "to_dict")
        target = default_class
    elif not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"{path}: unknown config class {name!r}; allowed: " + ", ".join(sorted(_REGISTRY)))
    else:
        target = _REGISTRY[name]
    if target is AnalogConfig:
        data = _migrate(data, path)
    known = {f.name: f for f in fields(target)}
    kwargs = {}
    for key, value in data.items():
        if key == "__type__":
            continue
        if key not in known:
            raise ValueError(f"{path}: {target.__name__} has no field {key!r}; allowed: " + ", ".join(known))
        converted = _from_data(value, _nested_class(target, known[key]), f"{path}.{key}")
        kwargs[key] = tuple(converted) if isinstance(converted, list) else converted
    try:
        return target(**kwargs)
    except (TypeError, ValueError) as e:
        raise _with_context(e, path) from e


def _with_context(error: Exception, context: str) -> Exception:
    kind = ValueError if isinstance(error, ValueError) else TypeError
    return kind(f"{context}: {error}")


def replace_path(config: Any, path: str, value: Any) -> Any:
    """Return a new config with the dotted field ``path`` (e.g. ``"forward.out_noise"``) set."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"replace_path: config must be a config instance such as AnalogConfig(), got "
                        f"{type(config).__name__} {config!r}")
    if not isinstance(path, str):
        raise TypeError(f"replace_path: path must be a str such as 'forward.out_noise', got {type(path).__name__} "
                        f"{path!r}")
    parts = path.split(".")
    if not all(parts):
        raise ValueError(f"replace_path: path {path!r} is invalid; allowed: dotted field names such as "
                         "'forward.out_noise'")
    return _replace(config, parts, value, path)


def _replace(config: Any, parts: list, value: Any, path: str) -> Any:
    head, rest = parts[0], parts[1:]
    names = [f.name for f in fields(config)]
    if head not in names:
        raise ValueError(f"{type(config).__name__} has no field {head!r} (path {path!r}); allowed: "
                         + ", ".join(names))
    if rest:
        child = getattr(config, head)
        if not dataclasses.is_dataclass(child):
            raise ValueError(f"{type(config).__name__}.{head} is {child!r}, which has no field {rest[0]!r} "
                             f"(path {path!r})")
        value = _replace(child, rest, value, path)
    try:
        return dataclasses.replace(config, **{head: value})
    except (TypeError, ValueError) as e:
        raise _with_context(e, f"replace_path {path!r}") from e
