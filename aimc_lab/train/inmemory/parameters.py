"""In-memory training parameters and ``training_config`` (docs/physics.md §4)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from aimc_lab.config import AnalogConfig, IOParameters, TrainingParameters, register_training_class
from aimc_lab.validation import check_bool, check_choice, check_int, check_real, invalid
from aimc_lab.devices.pulsed import ConstantStep, PulsedDevice
from aimc_lab.train.inmemory.registry import OPTIONAL_FIELDS, algorithm_class, algorithm_names, canonical_name

__all__ = ["InMemoryTrainingParameters", "training_config", "MAX_BL", "MAX_BINS", "MAX_TRANSFER", "MAX_RATE"]

#: Largest pulse-train length (desired_bl) and pulses per device per transfer (transfer_bl).
MAX_BL = 2 ** 16
#: Largest quantization bin count of mixed precision (finer is below float32 resolution).
MAX_BINS = 2 ** 24
#: Largest transfer period (update calls or samples) and number of columns per transfer.
MAX_TRANSFER = 2 ** 31 - 1
#: Largest fast_lr / transfer_lr (1e300 overflowed float32 in the update).
MAX_RATE = 1e6
#: Pulse-train length and pulses per transfer of algorithms that set no default of their own.
DEFAULT_BL = 31


@register_training_class
@dataclass(frozen=True)
class InMemoryTrainingParameters(TrainingParameters):
    """How a tile trains in memory. ``AnalogConfig.training`` holds one of these.

    A field left ``None`` takes the algorithm's published default (docs/physics.md §4; the
    algorithm's class lists them in ``defaults``), or its off value for an algorithm that does not
    use it; after construction every field holds a concrete value.

    ``device``: the model of the weight array C (and of A when ``fast_device`` is None).
    ``desired_bl``, ``update_management``, ``bl_management``: the pulse-train update of A (C for sgd).
    ``fast_lr``: A's learning rate, × η when ``scale_fast_lr``; with ``auto_scale`` it is relative to a
    running estimate of the gradient size (fast_lr·desired_bl·dw_min_A/(x̄·d̄), ``auto_momentum``).
    ``transfer_every`` (update calls, or samples with ``transfer_per_sample``), ``transfer_columns``
    (columns read per transfer), ``transfer_lr`` (× η when ``scale_transfer_lr``), ``transfer_bl``
    (max pulses per device per transfer), ``transfer_io`` (the read of A's columns).
    ``momentum``/``forget_buffer``: the H buffer after a transfer (ttv2 family).
    ``auto_granularity`` (ttv2 family; 0 = off): H's threshold in reads of a steady A, the reference
    toolkit's option: what a read adds to H is divided by auto_granularity/(K·transfer_every), so a
    constant A[:, k] needs about auto_granularity samples, not one read, to reach a pulse.
    ``in_chop_prob``: chopper flip probability (c-ttv2) or 1/period (agad); ``tail_weighting``: AGAD's
    running mean (1 = plain mean). ``n_x_bins``/``n_d_bins``: mixed-precision quantization (0 = off).
    Upper limits: ``desired_bl``, ``transfer_bl`` <= MAX_BL; ``transfer_every``, ``transfer_columns``
    <= MAX_TRANSFER; ``n_x_bins``, ``n_d_bins`` <= MAX_BINS; rates <= MAX_RATE.
    """

    algorithm: str = "sgd"
    device: PulsedDevice = field(default_factory=ConstantStep)
    fast_device: Optional[PulsedDevice] = None
    desired_bl: Optional[int] = None
    update_management: bool = True
    bl_management: bool = True
    fast_lr: Optional[float] = None
    scale_fast_lr: Optional[bool] = None
    auto_scale: Optional[bool] = None
    auto_momentum: float = 0.99
    transfer_every: int = 1
    transfer_per_sample: Optional[bool] = None
    transfer_columns: int = 1
    transfer_lr: Optional[float] = None
    scale_transfer_lr: Optional[bool] = None
    transfer_bl: Optional[int] = None
    transfer_io: IOParameters = field(default_factory=IOParameters)
    momentum: Optional[float] = None
    forget_buffer: Optional[bool] = None
    auto_granularity: Optional[float] = None
    in_chop_prob: Optional[float] = None
    tail_weighting: Optional[float] = None
    n_x_bins: Optional[int] = None
    n_d_bins: Optional[int] = None

    def __post_init__(self) -> None:
        if not isinstance(self.algorithm, str):
            raise TypeError(f"InMemoryTrainingParameters.algorithm must be a string, got "
                            f"{type(self.algorithm).__name__} {self.algorithm!r}")
        check_choice(self, "algorithm", algorithm_names())
        cls = algorithm_class(self.algorithm)
        self._resolve_defaults(cls)
        for name, optional in (("device", False), ("fast_device", True)):
            value = getattr(self, name)
            if not (isinstance(value, PulsedDevice) or (optional and value is None)):
                raise TypeError(f"InMemoryTrainingParameters.{name} must be a PulsedDevice model (e.g. "
                                f"aimc_lab.devices.pulsed.SoftBounds()){' or None' if optional else ''}, "
                                f"got {type(value).__name__} {value!r}")
        if not isinstance(self.transfer_io, IOParameters):
            raise TypeError(f"InMemoryTrainingParameters.transfer_io must be an IOParameters, got "
                            f"{type(self.transfer_io).__name__} {self.transfer_io!r}")
        check_int(self, "desired_bl", 1, MAX_BL)
        for name in ("update_management", "bl_management", "scale_fast_lr", "auto_scale", "transfer_per_sample",
                     "scale_transfer_lr", "forget_buffer"):
            check_bool(self, name)
        check_real(self, "fast_lr", 0.0, MAX_RATE, lo_open=True)
        check_real(self, "auto_momentum", 0.0, 1.0, hi_open=True)
        check_int(self, "transfer_every", 1, MAX_TRANSFER)
        check_int(self, "transfer_columns", 1, MAX_TRANSFER)
        check_real(self, "transfer_lr", 0.0, MAX_RATE, lo_open=True)
        check_int(self, "transfer_bl", 1, MAX_BL)
        check_real(self, "momentum", 0.0, 1.0, hi_open=True)
        check_real(self, "auto_granularity", 0.0, MAX_RATE)
        check_real(self, "in_chop_prob", 0.0, 1.0)
        check_real(self, "tail_weighting", 1.0, MAX_RATE)
        check_int(self, "n_x_bins", 0, MAX_BINS)
        check_int(self, "n_d_bins", 0, MAX_BINS)
        for name, off in OPTIONAL_FIELDS.items():
            if name not in cls.uses and getattr(self, name) != off:
                raise invalid(self, name, getattr(self, name),
                           f"{off!r} with algorithm {self.algorithm!r}, which does not use it")
        cls.check_params(self)

    def _resolve_defaults(self, cls: type) -> None:
        """Fill the fields left None: the algorithm's default, else the off value (frozen: object.__setattr__)."""
        generic = {"desired_bl": DEFAULT_BL, "transfer_bl": DEFAULT_BL}
        for name in ("desired_bl", "transfer_bl", *OPTIONAL_FIELDS):
            if getattr(self, name) is None and name != "fast_device":
                if name in cls.defaults:
                    value = cls.defaults[name]
                elif name in generic:
                    value = generic[name]
                else:
                    value = OPTIONAL_FIELDS[name]
                object.__setattr__(self, name, value)

    @property
    def chop_period(self) -> int:
        """AGAD's regular chopper period in reads of a column: max(round(1/in_chop_prob), 2)."""
        return max(round(1.0 / self.in_chop_prob), 2) if self.in_chop_prob > 0 else 2 ** 30


def training_config(algorithm: str = "sgd", device: Optional[PulsedDevice] = None, **overrides) -> AnalogConfig:
    """One call to an in-memory training config: ``training_config("c-ttv2", device=reram_sb(), ...)``.

    ``algorithm``: a registered algorithm (``ALGORITHMS``; aliases tt/ttv1, mp, ...). ``device``: the
    device model (default ConstantStep()). ``overrides``: fields of :class:`InMemoryTrainingParameters`
    or of :class:`~aimc_lab.config.AnalogConfig` (``forward``, ``backward``, ...). Fields not given take
    the algorithm's published defaults (docs/physics.md §4), e.g. tiki-taka and ttv2 a fast array A
    with a reference device at its symmetry point. The backward MVM is the library-default noisy MVM
    with iterative bound management (docs/physics.md §1).
    """
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a string, got {type(algorithm).__name__}")
    name = canonical_name(algorithm)
    if name not in algorithm_names():
        raise ValueError(f"algorithm = {algorithm!r} is invalid; allowed: " + ", ".join(map(repr, algorithm_names())))
    device = ConstantStep() if device is None else device
    analog_names = {f.name for f in dataclasses.fields(AnalogConfig)} - {"training"}
    analog_kw = {k: v for k, v in overrides.items() if k in analog_names}
    train_kw = {k: v for k, v in overrides.items() if k not in analog_names}
    known = {f.name for f in dataclasses.fields(InMemoryTrainingParameters)}
    for key in train_kw:
        if key not in known:
            raise ValueError(f"training_config: unknown option {key!r}; allowed: fields of "
                             "InMemoryTrainingParameters or AnalogConfig")
    if isinstance(device, PulsedDevice):
        for key, value in algorithm_class(name).config_defaults(device).items():
            train_kw.setdefault(key, value)
    training = InMemoryTrainingParameters(algorithm=name, device=device, **train_kw)
    analog_kw.setdefault("backward", IOParameters())
    return AnalogConfig(training=training, **analog_kw)
