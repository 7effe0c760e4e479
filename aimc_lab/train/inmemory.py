"""In-memory training: tiles whose weights live on pulsed devices and change only by pulses (docs/physics.md §4).

:func:`training_config` builds an :class:`~aimc_lab.config.AnalogConfig` whose ``training`` field is an
:class:`InMemoryTrainingParameters`; :class:`InMemoryTile` is the tile the layers create for it
(``make_tile(out, in, config)``); :class:`~aimc_lab.train.analog_sgd.AnalogSGD` steps it.

Data flow per mini-batch (tile weight W [N, K] read from the devices):

* forward  y = analog_mvm(x, W̃, config.forward), W̃ = W + write noise (devices' ``read()``);
* backward grad_x = analog_mvm(δ, W̃ᵀ, config.backward) (the transposed, noisy read); instead of a
  weight gradient the tile stores (x, δ) for the update;
* update(η) runs the algorithm below with the stored rows (all rows of all forwards since the last
  update, in order).

Algorithms (arrays are :class:`~aimc_lab.devices.pulsed.DeviceArray` modules, everything else buffers):

* ``sgd``: the stochastic pulse-train update ΔW = −η·δᵀx on the single array C.
* ``tiki-taka`` (v1, Gokmen & Haensch 2020): fast array A gets the SGD pulses with η·fast_lr; every
  ``transfer_every`` updates, ``transfer_columns`` columns k of A (cyclic) are read with a noisy forward
  of e_k (``transfer_io``) and written to C with a pulse-train update x = e_k, δ = −A[:, k] and learning
  rate ``transfer_lr`` (BL ``transfer_bl``), i.e. E[ΔC[:, k]] = transfer_lr·A[:, k].
* ``ttv2`` (Gokmen 2021): the read goes to a digital buffer, H[:, k] += transfer_lr·A[:, k]/dw_min_C
  (H in units of C's step); where |H| >= 1, n = trunc(H) clipped to ±transfer_bl pulses go to C
  (deterministic pulse counts, actual device steps) and H ← H − (1 − momentum)·n (the momentum
  fraction of what was transferred stays in H; momentum 0: H ← H − n), or H ← momentum·H on the
  transferred entries when ``forget_buffer``.
* ``c-ttv2`` (Rasch et al. 2023): as ttv2, but input j carries a chopper c_j ∈ {±1}: A is updated with
  (c ⊙ x), the read of column k is multiplied by c_k before entering H, and c_k flips with probability
  ``in_chop_prob`` after each read of column k.
* ``agad`` (Rasch et al. 2023, AIHWKIT's DynamicTransferCompound): regular choppers, c_k flips after
  every P = max(round(1/in_chop_prob), 2) reads of column k. Per column, the P reads of the previous
  chopper period give a reference ref_k = A's value at the flip, estimated by a least-squares line
  through the reads (read index s = 0..P−1) evaluated at s = P − 1, with σ_k its standard error
  (residual std × leverage). Each read r after the first period adds
  H[:, k] += transfer_lr·c_k·(r − ref_k)/dw_min_C where |r − ref_k| > σ_k (no transfer where the
  difference is within its standard error), then the ttv2 threshold transfer. A's offset (symmetry
  point) cancels in r − ref_k, so no reference array is needed. Deviation: docs/physics.md and AIHWKIT describe
  the reference as a (tail-weighted) mean of the previous period; a plain mean lags A at the flip by
  half a period, which for a steady gradient cancels the signal, so we extrapolate the mean to the
  flip with the fitted slope (the limit of strong tail weighting).
* ``mixed-precision`` (Nandakumar et al. 2020): χ += −η·δᵀx digitally (x, δ optionally quantized with
  ``n_x_bins``/``n_d_bins`` bins of their row's abs-max, deterministic rounding); every
  ``transfer_every`` updates n = trunc(χ/ε) (clipped to ±transfer_bl), ε = dw_min_C·transfer_lr,
  pulses go to C and χ ← χ − n·ε.

The forward/backward always read C (AIHWKIT's γ = 0 default of the transfer compounds). Decay and
diffusion of each array run once per update call. No weight scaling: the weights are the devices'
normalized weights (inside their bounds).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor, nn
from torch.autograd.graph import get_gradient_edge

from aimc_lab._checks import check_tile_input
from aimc_lab.config import (AnalogConfig, IOParameters, _check_bool, _check_choice, _check_int, _check_real,
                             _err, register_training_class)
from aimc_lab.devices.pulsed import ConstantStep, DeviceArray, PulsedDevice, make_generator
from aimc_lab.kernels.analog_mvm import analog_mvm
from aimc_lab.kernels.pulsed_update import pulsed_update, signed_counts_update

__all__ = ["ALGORITHMS", "InMemoryTrainingParameters", "training_config", "InMemoryTile", "InMemoryFunction",
           "AnalogContext"]

ALGORITHMS = ("sgd", "tiki-taka", "ttv2", "c-ttv2", "agad", "mixed-precision")
_ALIASES = {"tt": "tiki-taka", "ttv1": "tiki-taka", "tiki-taka-v1": "tiki-taka", "tt-v2": "ttv2",
            "chopped-ttv2": "c-ttv2", "cttv2": "c-ttv2", "mp": "mixed-precision", "mixed_precision": "mixed-precision"}
_TRANSFER = ("tiki-taka", "ttv2", "c-ttv2", "agad")
_BUFFERED = ("ttv2", "c-ttv2", "agad")  # H with the threshold transfer (momentum, forget_buffer)
_SEED_RANGE = (-2 ** 63, 2 ** 64 - 1)  # what torch.Generator.manual_seed accepts
#: Largest pulse-train length (desired_bl) and pulses per device per transfer (transfer_bl).
MAX_BL = 2 ** 16
#: Largest quantization bin count of mixed precision (finer is below float32 resolution).
MAX_BINS = 2 ** 24
#: Largest transfer period (update calls) and number of columns per transfer.
MAX_TRANSFER = 2 ** 31 - 1
#: Largest fast_lr / transfer_lr (tuned settings use at most ~40; 1e300 overflowed float32 in the update).
MAX_RATE = 1e6


@register_training_class
@dataclass(frozen=True)
class InMemoryTrainingParameters:
    """How a tile trains in memory (module doc). ``AnalogConfig.training`` holds one of these.

    ``device``: the model of the weight array C (and of A when ``fast_device`` is None).
    ``desired_bl``, ``update_management``, ``bl_management``: the pulse-train update of η·δᵀx.
    ``fast_lr``: A's learning rate is η·fast_lr (transfer algorithms).
    ``transfer_every`` (update calls), ``transfer_columns`` (columns read per transfer), ``transfer_lr``,
    ``transfer_bl`` (max pulses per device per transfer), ``transfer_io`` (the read of A's columns).
    ``momentum``/``forget_buffer``: the H buffer after a transfer (ttv2 family).
    ``in_chop_prob``: chopper flip probability (c-ttv2) or 1/period (agad).
    ``n_x_bins``/``n_d_bins``: mixed-precision quantization (0 = off).
    Upper limits: ``desired_bl``, ``transfer_bl`` <= MAX_BL; ``transfer_every``, ``transfer_columns``
    <= MAX_TRANSFER; ``n_x_bins``, ``n_d_bins`` <= MAX_BINS.

    Settings an algorithm does not use must keep their "off" value (``fast_device`` None, ``momentum`` 0,
    ``forget_buffer`` False, ``n_x_bins``/``n_d_bins`` 0), so that nothing configured is silently
    ignored; AGAD needs ``in_chop_prob`` > 0 (its chopper period is 1/in_chop_prob reads).
    """

    algorithm: str = "sgd"
    device: PulsedDevice = field(default_factory=ConstantStep)
    fast_device: Optional[PulsedDevice] = None
    desired_bl: int = 31
    update_management: bool = True
    bl_management: bool = True
    fast_lr: float = 1.0
    transfer_every: int = 1
    transfer_columns: int = 1
    transfer_lr: float = 1.0
    transfer_bl: int = 31
    transfer_io: IOParameters = field(default_factory=IOParameters)
    momentum: float = 0.0
    forget_buffer: bool = False
    in_chop_prob: float = 0.1
    n_x_bins: int = 0
    n_d_bins: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.algorithm, str):
            raise TypeError(f"InMemoryTrainingParameters.algorithm must be a string, got "
                            f"{type(self.algorithm).__name__} {self.algorithm!r}")
        _check_choice(self, "algorithm", ALGORITHMS)
        for name, optional in (("device", False), ("fast_device", True)):
            value = getattr(self, name)
            if not (isinstance(value, PulsedDevice) or (optional and value is None)):
                raise TypeError(f"InMemoryTrainingParameters.{name} must be a PulsedDevice model (e.g. "
                                f"aimc_lab.devices.pulsed.SoftBounds()){' or None' if optional else ''}, "
                                f"got {type(value).__name__} {value!r}")
        if not isinstance(self.transfer_io, IOParameters):
            raise TypeError(f"InMemoryTrainingParameters.transfer_io must be an IOParameters, got "
                            f"{type(self.transfer_io).__name__} {self.transfer_io!r}")
        _check_int(self, "desired_bl", 1, MAX_BL)
        _check_bool(self, "update_management")
        _check_bool(self, "bl_management")
        _check_real(self, "fast_lr", 0.0, MAX_RATE, lo_open=True)
        _check_int(self, "transfer_every", 1, MAX_TRANSFER)
        _check_int(self, "transfer_columns", 1, MAX_TRANSFER)
        _check_real(self, "transfer_lr", 0.0, MAX_RATE, lo_open=True)
        _check_int(self, "transfer_bl", 1, MAX_BL)
        _check_real(self, "momentum", 0.0, 1.0, hi_open=True)
        _check_bool(self, "forget_buffer")
        _check_real(self, "in_chop_prob", 0.0, 1.0)
        _check_int(self, "n_x_bins", 0, MAX_BINS)
        _check_int(self, "n_d_bins", 0, MAX_BINS)
        self._check_algorithm_fields()

    def _check_algorithm_fields(self) -> None:
        algo = self.algorithm
        off = []
        if algo not in _TRANSFER:
            off.append(("fast_device", None))
        if algo not in _BUFFERED:
            off += [("momentum", 0.0), ("forget_buffer", False)]
        if algo != "mixed-precision":
            off += [("n_x_bins", 0), ("n_d_bins", 0)]
        for name, value in off:
            if getattr(self, name) != value:
                raise _err(self, name, getattr(self, name), f"{value!r} with algorithm {algo!r}, which does not use it")
        if algo == "agad" and self.in_chop_prob == 0:
            raise _err(self, "in_chop_prob", self.in_chop_prob,
                       "(0, 1] with algorithm 'agad' (its chopper period is 1/in_chop_prob reads)")

    @property
    def chop_period(self) -> int:
        """AGAD's regular chopper period in reads of a column."""
        return max(round(1.0 / self.in_chop_prob), 2) if self.in_chop_prob > 0 else 2 ** 30


def training_config(algorithm: str = "sgd", device: Optional[PulsedDevice] = None, **overrides) -> AnalogConfig:
    """One call to an in-memory training config: ``training_config("c-ttv2", device=reram_sb(), ...)``.

    ``algorithm``: one of ``ALGORITHMS`` (aliases: tt/ttv1, mp, ...). ``device``: the device model
    (default ConstantStep()). ``overrides``: fields of :class:`InMemoryTrainingParameters` or of
    :class:`~aimc_lab.config.AnalogConfig` (``forward``, ``backward``, ...).

    Defaults per algorithm: tiki-taka and ttv2 use a fast array A with a reference device at its
    symmetry point (``subtract_symmetry_point=True``), as Tiki-Taka needs A's symmetry point at zero;
    c-ttv2 and agad use the device as it is (choppers / dynamic reference remove the offset). The
    backward MVM is the library-default noisy MVM with bound management off (docs/physics.md §1).
    """
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a string, got {type(algorithm).__name__}")
    name = _ALIASES.get(algorithm.lower(), algorithm.lower())
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm = {algorithm!r} is invalid; allowed: " + ", ".join(map(repr, ALGORITHMS)))
    device = ConstantStep() if device is None else device
    analog_names = {f.name for f in dataclasses.fields(AnalogConfig)} - {"training"}
    analog_kw = {k: v for k, v in overrides.items() if k in analog_names}
    train_kw = {k: v for k, v in overrides.items() if k not in analog_names}
    known = {f.name for f in dataclasses.fields(InMemoryTrainingParameters)}
    for key in train_kw:
        if key not in known:
            raise ValueError(f"training_config: unknown option {key!r}; allowed: fields of "
                             "InMemoryTrainingParameters or AnalogConfig")
    if name in ("tiki-taka", "ttv2") and "fast_device" not in train_kw and isinstance(device, PulsedDevice):
        train_kw["fast_device"] = dataclasses.replace(device, subtract_symmetry_point=True)
    training = InMemoryTrainingParameters(algorithm=name, device=device, **train_kw)
    analog_kw.setdefault("backward", IOParameters(bound_management="none"))
    return AnalogConfig(training=training, **analog_kw)


class AnalogContext(nn.Parameter):
    """An empty parameter that stands for a tile in ``model.parameters()``.

    It makes autograd run the tile's backward even for a first layer whose input needs no gradient,
    and lets :class:`~aimc_lab.train.analog_sgd.AnalogSGD` find the tile (``analog_tile``). Its
    gradient (empty) marks the tile's stored rows as live: see :meth:`InMemoryTile.record`.
    ``copy.deepcopy`` and pickling (``torch.save(model)``) keep the type and the link to the tile; like
    a parameter's gradient, the gradient is not copied.
    """

    def __new__(cls, tile: "InMemoryTile", data: Optional[Tensor] = None, requires_grad: bool = True):
        param = super().__new__(cls, torch.empty(0) if data is None else data, requires_grad=requires_grad)
        param.analog_tile = tile
        return param

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = AnalogContext(None, self.data.clone(), self.requires_grad)
        memo[id(self)] = result
        result.analog_tile = copy.deepcopy(self.analog_tile, memo)
        return result

    def __reduce_ex__(self, protocol):
        return (AnalogContext, (self.analog_tile, self.data, self.requires_grad))


def _receives_gradient(param: Tensor) -> bool:
    """Whether the running backward pass accumulates a gradient into ``param`` (not so under
    ``torch.autograd.grad(y, x)`` or ``backward(inputs=[x])``). torch has no public query for this;
    its own ``torch.autograd.graph.register_multi_grad_hook`` asks the engine the same way."""
    return torch._C._will_engine_execute_node(get_gradient_edge(param).node)


class InMemoryFunction(torch.autograd.Function):
    """Noisy forward with W; noisy transposed backward; stores (x, δ) on the tile instead of grad W."""

    @staticmethod
    def forward(ctx, x, analog_ctx, weights, tile):
        ctx.tile = tile
        ctx.save_for_backward(x, weights)
        return analog_mvm(x, weights, tile.config.forward, generator=tile.generator)

    @staticmethod
    def backward(ctx, grad_y):
        x, weights = ctx.saved_tensors
        tile = ctx.tile
        if ctx.needs_input_grad[1] and _receives_gradient(tile.analog_ctx):
            tile.record(x.detach(), grad_y.detach())
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = analog_mvm(grad_y, weights.t().contiguous(), tile.config.backward, generator=tile.generator)
        return grad_x, torch.zeros(0, dtype=grad_y.dtype, device=grad_y.device), None, None


class InMemoryTile(nn.Module):
    """A tile trained in memory (module doc).

    Args:
        out_features, in_features: N, K.
        config: an :class:`AnalogConfig` whose ``training`` is an :class:`InMemoryTrainingParameters`
            (see :func:`training_config`).
        seed: int or ``torch.Generator`` for the device-to-device draws, the initial weights and the
            runtime noise (``None``: from torch's global RNG).

    Initial weights: uniform in ±1/sqrt(K) (as ``nn.Linear``), clipped to the devices' bounds.

    The rows (x, δ) a backward stores live as long as the gradient of ``analog_ctx``: ``update``
    consumes them, and a backward after the gradient was reset (``zero_grad()``) drops the rows of
    earlier backward passes, as a reset gradient would. A frozen tile (``analog_ctx`` without
    ``requires_grad``) stores none, nor does a backward that computes no gradient for ``analog_ctx``
    (``torch.autograd.grad(y, x)``). Like gradients, the rows are not copied by ``copy.deepcopy`` or
    pickling.
    """

    def __init__(self, out_features: int, in_features: int, config: AnalogConfig,
                 seed: Union[int, torch.Generator, None] = None) -> None:
        super().__init__()
        for name, value in (("out_features", out_features), ("in_features", in_features)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
            if value < 1:
                raise ValueError(f"{name} = {value!r} is invalid; allowed: an integer >= 1")
        _check_seed(seed)
        if not isinstance(config, AnalogConfig):
            raise TypeError(f"config must be an AnalogConfig, got {type(config).__name__}")
        tc = config.training
        if not isinstance(tc, InMemoryTrainingParameters):
            raise ValueError("InMemoryTile needs config.training to be an InMemoryTrainingParameters "
                             "(use aimc_lab.train.inmemory.training_config(...))")
        self.config = config
        self.training_params = tc
        self.out_features, self.in_features = out_features, in_features
        gen = make_generator(seed)
        self.C = DeviceArray(tc.device, out_features, in_features, seed=gen)
        algo = tc.algorithm
        shape = (out_features, in_features)
        if algo in _TRANSFER:
            self.A = DeviceArray(tc.fast_device or tc.device, out_features, in_features, seed=gen)
            self.A.set_weights(torch.zeros(shape))
        if algo in ("ttv2", "c-ttv2", "agad", "mixed-precision"):
            self.register_buffer("H", torch.zeros(shape))
        if algo in ("c-ttv2", "agad"):
            self.register_buffer("chopper", torch.ones(in_features))
        if algo == "agad":
            self.register_buffer("period_sums", torch.zeros(3, *shape))
            self.register_buffer("period_reads", torch.zeros(in_features, dtype=torch.long))
            self.register_buffer("ref_mean", torch.zeros(shape))
            self.register_buffer("ref_sem", torch.zeros(shape))
            self.register_buffer("has_ref", torch.zeros(in_features, dtype=torch.bool))
        self.register_buffer("update_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("transfer_column", torch.zeros((), dtype=torch.long))
        bound = 1.0 / math.sqrt(in_features)
        init = (torch.rand(shape, generator=gen) * 2 - 1) * bound
        self.C.set_weights(init)
        self.generator = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (1,), generator=gen).item()))
        self.analog_ctx = AnalogContext(self)
        self._pending: List[Tuple[Tensor, Tensor]] = []

    def extra_repr(self) -> str:
        return f"out_features={self.out_features}, in_features={self.in_features}, " \
               f"algorithm={self.training_params.algorithm!r}"

    def _label(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    # -- state ---------------------------------------------------------------------------------

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pending"] = []
        return state

    def get_extra_state(self):
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state) -> None:
        self.generator.set_state(state["generator"])

    def set_weights(self, weights: Tensor) -> None:
        """Program W [N, K] into C directly (clipped to the bounds); A and buffers are cleared."""
        if not isinstance(weights, Tensor):
            raise TypeError(f"weights must be a tensor, got {type(weights).__name__}")
        if tuple(weights.shape) != (self.out_features, self.in_features):
            raise ValueError(f"weights must have shape [{self.out_features}, {self.in_features}], "
                             f"got {tuple(weights.shape)}")
        if not bool(torch.isfinite(weights).all()):
            raise ValueError("weights contain NaN or inf; allowed: finite values")
        self.C.set_weights(weights.detach())
        if hasattr(self, "A"):
            self.A.set_weights(torch.zeros_like(self.A.w))
        for name in ("H", "period_sums", "period_reads", "ref_mean",
                     "ref_sem", "has_ref"):
            if name in self._buffers:
                self._buffers[name].zero_()

    def get_weights(self) -> Tensor:
        """The weight W [N, K] the network uses (C's effective weight, no write noise)."""
        return self.C.weights().detach().clone()

    # -- forward / backward --------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        """y [..., N] = analog(x [..., K] @ W.T); the input is checked before anything changes
        (not a tensor or not of the tile's dtype: TypeError; wrong shape or NaN/inf: ValueError)."""
        check_tile_input(x, self.in_features, self.C.w.dtype, leading_dims=True)
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        weights = self.C.read()
        if torch.is_grad_enabled() and (x2.requires_grad or self.analog_ctx.requires_grad):
            y = InMemoryFunction.apply(x2, self.analog_ctx, weights, self)
        else:
            y = analog_mvm(x2, weights, self.config.forward, generator=self.generator)
        return y.reshape(*lead, self.out_features)

    # -- the stored rows ------------------------------------------------------------------------

    def record(self, x: Tensor, d: Tensor) -> None:
        """Store the rows x [M, K], δ [M, N] of one backward (the backward calls this)."""
        param = self.analog_ctx
        if param.grad is None:  # reset since the stored rows were recorded: they go with it
            self._pending.clear()
            param.grad = torch.zeros_like(param)
        self._pending.append((x, d))

    def discard_rows(self) -> None:
        """Forget the stored rows (what ``zero_grad`` is to a weight gradient)."""
        self._pending.clear()

    def check_update(self, lr: float) -> None:
        """Raise what ``update(lr)`` would meet, changing nothing: ``lr`` not a finite number >= 0,
        stored rows with NaN or inf, a mixed-precision step that would overflow χ."""
        if isinstance(lr, bool) or not isinstance(lr, (int, float)):
            raise TypeError(f"lr must be a number, got {type(lr).__name__} {lr!r}")
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"lr = {lr!r} is invalid; allowed: a finite number >= 0")
        for i, (x, d) in enumerate(self._pending):
            for name, rows in (("x (inputs)", x), ("d (output gradients)", d)):
                if not bool(torch.isfinite(rows).all()):
                    raise ValueError(f"{self._label()}: the rows of backward pass {i} since the last update "
                                     f"contain NaN or inf in {name}; nothing was updated (zero_grad() "
                                     "discards the rows)")
        if self.training_params.algorithm == "mixed-precision" and self._pending:
            # |Δχ| <= lr·Σ_m max|δ_m|·max|x_m| (quantization keeps each row's abs-max)
            total = sum(float(x.double().abs().amax(1) @ d.double().abs().amax(1)) for x, d in self._pending)
            limit = torch.finfo(self.H.dtype).max
            if not (lr < limit and lr * total + float(self.H.abs().max()) < limit):
                raise ValueError(f"lr = {lr!r} is invalid for {self._label()}: the mixed-precision accumulator "
                                 f"would overflow (lr·Σ|δ||x| = {lr * total:.3g}); allowed: lr·Σ|δ||x| + max|χ| "
                                 f"< {limit:.3g}")

    # -- update ---------------------------------------------------------------------------------

    def _pulse_update(self, array: DeviceArray, x: Tensor, d: Tensor, lr: float, desired_bl: int,
                      update_management: bool, bl_management: bool) -> None:
        w_new = pulsed_update(array.w, x, d, lr, array.device_params, array.tensors, desired_bl=desired_bl,
                              update_management=update_management, bl_management=bl_management,
                              generator=self.generator)
        array.commit(w_new, self.generator)

    @torch.no_grad()
    def update(self, lr: float) -> None:
        """Apply the algorithm's update with the rows stored by the backward passes since the last call.

        Validates first (:meth:`check_update`): on an error nothing has changed."""
        self.check_update(lr)
        if not self._pending:
            return
        x = torch.cat([p[0] for p in self._pending]).to(self.C.w.dtype)
        d = torch.cat([p[1] for p in self._pending]).to(self.C.w.dtype)
        self._pending.clear()
        tc = self.training_params
        algo = tc.algorithm
        if algo == "sgd":
            self._pulse_update(self.C, x, d, lr, tc.desired_bl, tc.update_management, tc.bl_management)
        elif algo == "mixed-precision":
            self.H.add_(-lr * _quantize_rows(d, tc.n_d_bins).t() @ _quantize_rows(x, tc.n_x_bins))
        else:
            x_fast = x * self.chopper if algo in ("c-ttv2", "agad") else x
            self._pulse_update(self.A, x_fast, d, lr * tc.fast_lr, tc.desired_bl, tc.update_management,
                               tc.bl_management)
            self.A.after_update(self.generator)
        self.update_count += 1
        if algo != "sgd" and int(self.update_count) % tc.transfer_every == 0:
            self._transfer()
        self.C.after_update(self.generator)

    def _transfer(self) -> None:
        tc = self.training_params
        algo = tc.algorithm
        N, K = self.out_features, self.in_features
        eps = tc.device.dw_min
        if algo == "mixed-precision":
            step = eps * tc.transfer_lr
            n = torch.trunc(self.H / step).clamp(-tc.transfer_bl, tc.transfer_bl)
            if bool((n != 0).any()):
                self.C.commit(signed_counts_update(self.C.w, n, tc.device, self.C.tensors, self.generator),
                              self.generator)
                self.H.sub_(n * step)
            return
        n_cols = min(tc.transfer_columns, K)
        start = int(self.transfer_column)
        cols = torch.tensor([(start + i) % K for i in range(n_cols)], dtype=torch.long)
        self.transfer_column.fill_((start + n_cols) % K)
        onehot = torch.zeros(n_cols, K, dtype=self.C.w.dtype)
        onehot[torch.arange(n_cols), cols] = 1.0
        reads = analog_mvm(onehot, self.A.read(), tc.transfer_io, generator=self.generator).t()  # [N, n_cols]
        if algo == "tiki-taka":
            self._pulse_update(self.C, onehot, -reads.t(), tc.transfer_lr, tc.transfer_bl, True, True)
            return
        if algo == "ttv2":
            self.H[:, cols] += tc.transfer_lr * reads / eps
        elif algo == "c-ttv2":
            self.H[:, cols] += tc.transfer_lr * reads * self.chopper[cols] / eps
            if tc.in_chop_prob > 0:  # no draw without choppers: c-ttv2 then reproduces ttv2 exactly
                flip = torch.rand(n_cols, generator=self.generator) < tc.in_chop_prob
                self.chopper[cols] = torch.where(flip, -self.chopper[cols], self.chopper[cols])
        else:
            self._agad_reads(cols, reads, eps)
        self._threshold_transfer(cols)

    def _agad_reads(self, cols: Tensor, reads: Tensor, eps: float) -> None:
        tc = self.training_params
        period = tc.chop_period
        diff = reads - self.ref_mean[:, cols]
        gate = (diff.abs() > self.ref_sem[:, cols]) & self.has_ref[cols]
        self.H[:, cols] += tc.transfer_lr * self.chopper[cols] * diff * gate / eps
        s = self.period_reads[cols].to(reads.dtype)  # read index inside the period [n_cols]
        self.period_sums[0, :, cols] += reads
        self.period_sums[1, :, cols] += s * reads
        self.period_sums[2, :, cols] += reads * reads
        self.period_reads[cols] += 1
        done = self.period_reads[cols] >= period
        if bool(done.any()):
            dc = cols[done]
            n = float(period)
            s_sum, s2_sum = n * (n - 1) / 2, (n - 1) * n * (2 * n - 1) / 6
            sxx = s2_sum - s_sum * s_sum / n
            r_sum, sr_sum, r2_sum = (self.period_sums[i, :, dc] for i in range(3))
            slope = (sr_sum - s_sum * r_sum / n) / sxx if sxx > 0 else torch.zeros_like(r_sum)
            icpt = (r_sum - slope * s_sum) / n
            rss = (r2_sum - icpt * r_sum - slope * sr_sum).clamp(min=0)
            sigma2 = rss / max(n - 2, 1)
            s_last = n - 1
            lever = 1 / n + ((s_last - s_sum / n) ** 2 / sxx if sxx > 0 else 0.0)
            self.ref_mean[:, dc] = icpt + slope * s_last
            self.ref_sem[:, dc] = (sigma2 * lever).sqrt()
            self.has_ref[dc] = True
            self.chopper[dc] = -self.chopper[dc]
            self.period_sums[:, :, dc] = 0
            self.period_reads[dc] = 0

    def _threshold_transfer(self, cols: Tensor) -> None:
        tc = self.training_params
        h = self.H[:, cols]
        n = torch.trunc(h).clamp(-tc.transfer_bl, tc.transfer_bl)
        if not bool((n != 0).any()):
            return
        counts = torch.zeros_like(self.C.w)
        counts[:, cols] = n
        self.C.commit(signed_counts_update(self.C.w, counts, tc.device, self.C.tensors, self.generator),
                      self.generator)
        if tc.forget_buffer:
            self.H[:, cols] = torch.where(n != 0, tc.momentum * h, h)
        else:
            self.H[:, cols] = h - (1 - tc.momentum) * n


def _check_seed(seed) -> None:
    if seed is None or isinstance(seed, torch.Generator):
        return
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, a torch.Generator or None, got {type(seed).__name__} {seed!r}")
    lo, hi = _SEED_RANGE
    if not lo <= seed <= hi:
        raise ValueError(f"seed = {seed!r} is invalid; allowed: an integer in [{lo}, {hi}]")


def _quantize_rows(v: Tensor, bins: int) -> Tensor:
    """Symmetric quantization of each row to ``bins`` levels of its abs-max (0 = off)."""
    if bins <= 0:
        return v
    scale = v.abs().amax(dim=1, keepdim=True).clamp(min=1e-30) / bins
    return torch.round(v / scale) * scale
