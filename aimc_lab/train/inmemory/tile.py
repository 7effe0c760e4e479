"""The in-memory training tile: weights on pulsed devices, changed only by pulses (docs/physics.md §4).

Data flow per mini-batch (tile weight W [N, K] read from the devices):

* forward  y = analog_mvm(x, W̃, config.forward), W̃ = W + write noise (devices' ``read()``);
* backward grad_x = analog_mvm(δ, W̃ᵀ, config.backward) (the transposed, noisy read); instead of a
  weight gradient the tile stores (x, δ) for the update; both reads are split into physical tiles of
  ``config.mapping.max_input_size`` / ``max_output_size`` (each slice with its own converters), as
  the summary's tile grid says;
* update(η) hands the stored rows (all rows of all forwards since the last update, in order) to the
  tile's algorithm (``tile.algorithm``, one class per algorithm in this package), then runs C's decay
  and diffusion once.

The forward/backward always read C (AIHWKIT's γ = 0 default of the transfer compounds). No weight
scaling: the weights are the devices' normalized weights (inside their bounds).
"""

from __future__ import annotations

import copy
import math
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from aimc_lab._checks import check_tile_input
from aimc_lab.config import AnalogConfig
from aimc_lab.devices.pulsed import DeviceArray, make_generator
from aimc_lab.kernels import backend
from aimc_lab.kernels.finite import all_finite
from aimc_lab.kernels.analog_mvm import analog_mvm
from aimc_lab.kernels.analog_mvm import compiled as compiled_mvm
from aimc_lab.train.inmemory.parameters import InMemoryTrainingParameters
from aimc_lab.train.inmemory.registry import algorithm_class
from aimc_lab.train.inmemory.transfer import PendingCounts, column_counts_update

__all__ = ["InMemoryTile", "InMemoryFunction", "AnalogContext"]

_SEED_RANGE = (-2 ** 63, 2 ** 64 - 1)  # what torch.Generator.manual_seed accepts


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


def _receives_gradient(ctx, index: int) -> bool:
    """Whether the running backward pass accumulates a gradient into the ``index``-th input of the
    Function whose backward runs (``ctx``; not so under ``torch.autograd.grad(y, x)`` or
    ``backward(inputs=[x])``). torch has no public query for this; its own
    ``torch.autograd.graph.register_multi_grad_hook`` asks the engine the same way, about the input's
    node, which is the ``index``-th of the Function's next functions (cheaper than looking up the
    parameter's gradient edge)."""
    node = ctx.next_functions[index][0]
    return node is not None and torch._C._will_engine_execute_node(node)


class InMemoryFunction(torch.autograd.Function):
    """Noisy forward with W; noisy transposed backward; stores (x, δ) on the tile instead of grad W."""

    @staticmethod
    def forward(ctx, x, analog_ctx, weights, tile):
        ctx.tile = tile
        ctx.save_for_backward(x, weights)
        return tile.forward_mvm(x, weights)

    @staticmethod
    def backward(ctx, grad_y):
        x, weights = ctx.saved_tensors
        tile = ctx.tile
        if ctx.needs_input_grad[1] and _receives_gradient(ctx, 1):
            tile.record(x.detach(), grad_y.detach())
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = tile.backward_mvm(grad_y, weights)
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
        shape = (out_features, in_features)
        self.algorithm = algorithm_class(tc.algorithm)(tc)
        self.algorithm.build(self, gen)
        self.register_buffer("update_count", torch.zeros((), dtype=torch.long))
        bound = 1.0 / math.sqrt(in_features)
        init = (torch.rand(shape, generator=gen) * 2 - 1) * bound
        self.C.set_weights(init)
        self.generator = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (1,), generator=gen).item()))
        self.analog_ctx = AnalogContext(self)
        self._pending: List[Tuple[Tensor, Tensor]] = []
        self._writes: Optional[PendingCounts] = None

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
        """Program W [N, K] into C directly (clipped to the bounds); the algorithm's state (A, buffers) is
        cleared."""
        if not isinstance(weights, Tensor):
            raise TypeError(f"weights must be a tensor, got {type(weights).__name__}")
        if tuple(weights.shape) != (self.out_features, self.in_features):
            raise ValueError(f"weights must have shape [{self.out_features}, {self.in_features}], "
                             f"got {tuple(weights.shape)}")
        if not bool(torch.isfinite(weights).all()):
            raise ValueError("weights contain NaN or inf; allowed: finite values")
        self.C.set_weights(weights.detach())
        self.algorithm.reset(self)

    def get_weights(self) -> Tensor:
        """The weight W [N, K] the network uses (C's effective weight, no write noise)."""
        return self.C.weights().detach().clone()

    # -- forward / backward --------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        """y [..., N] = analog(x [..., K] @ W.T); the input is checked before anything changes
        (not a tensor or not of the tile's dtype: TypeError; wrong shape or NaN/inf: ValueError)."""
        array = self.C
        check_tile_input(x, self.in_features, array.w.dtype, leading_dims=True, finite=_finite)
        x2 = x if x.dim() == 2 else x.reshape(-1, self.in_features)
        weights = array.read()
        ctx = self.analog_ctx
        if torch.is_grad_enabled() and (x2.requires_grad or ctx.requires_grad):
            y = InMemoryFunction.apply(x2, ctx, weights, self)
        else:
            y = self.forward_mvm(x2, weights)
        return y if x.dim() == 2 else y.reshape(*x.shape[:-1], self.out_features)

    def forward_mvm(self, x: Tensor, weights: Tensor) -> Tensor:
        """x [M, K] -> [M, N] through the array as the chip reads it: the inputs split into physical tiles of
        ``mapping.max_input_size`` rows, each with its own converters (as :class:`~aimc_lab.tile.AnalogTile`)."""
        io = self.config.forward
        in_size = min(self.in_features, self.config.mapping.max_input_size)
        if in_size == self.in_features and _small_compiled(x, io):
            return compiled_mvm.mvm_forward(x, weights, io, None, self.generator)
        return analog_mvm(x, weights, io, in_size=in_size, generator=self.generator)

    def backward_mvm(self, d: Tensor, weights: Tensor) -> Tensor:
        """d [M, N] -> [M, K] through the transposed array, split into ``mapping.max_output_size`` slices."""
        io = self.config.backward
        in_size = min(self.out_features, self.config.mapping.max_output_size)
        if in_size == self.out_features and _small_compiled(d, io):
            return compiled_mvm.mvm_forward(d, weights, io, None, self.generator, transposed=True)
        return analog_mvm(d, weights.t().contiguous(), io, in_size=in_size, generator=self.generator)

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
            if all_finite(x) and all_finite(d):  # min and max of each, no bool temporaries
                continue
            for name, rows in (("x (inputs)", x), ("d (output gradients)", d)):
                if not bool(torch.isfinite(rows).all()):
                    raise ValueError(f"{self._label()}: the rows of backward pass {i} since the last update "
                                     f"contain NaN or inf in {name}; nothing was updated (zero_grad() "
                                     "discards the rows)")
        self.algorithm.check_rows(self, self._pending, lr)

    # -- update ---------------------------------------------------------------------------------

    @torch.no_grad()
    def update(self, lr: float) -> None:
        """Apply the algorithm's update with the rows stored by the backward passes since the last call.

        Validates first (:meth:`check_update`): on an error nothing has changed."""
        self.check_update(lr)
        self.apply_update(lr)

    @torch.no_grad()
    def apply_update(self, lr: float, writes: Optional[PendingCounts] = None) -> bool:
        """:meth:`update` without the validation, for a caller that ran :meth:`check_update` with the
        same ``lr`` and rows just before (``AnalogSGD.step`` validates every tile before changing any).

        ``writes``: collect the algorithm's digitally decided writes into C (:meth:`write_counts`) there
        instead of applying them; the caller then applies them (``writes.apply()``, one kernel call for
        all its tiles) and calls :meth:`finish_update` of each tile for which this returned True.
        Returns whether there were rows (an update happened)."""
        if not self._pending:
            return False
        if len(self._pending) == 1:
            x, d = self._pending[0]
        else:
            x = torch.cat([p[0] for p in self._pending])
            d = torch.cat([p[1] for p in self._pending])
        dtype = self.C.w.dtype
        self._pending.clear()
        if x.shape[0] == 0:  # an empty batch is no update (an auto-scaled rate would be the mean of no rows)
            return False
        self._writes = writes
        try:
            self.algorithm.update(self, x.to(dtype), d.to(dtype), float(lr))
        finally:
            self._writes = None
        if writes is None:
            self.finish_update()
        return True

    @torch.no_grad()
    def finish_update(self) -> None:
        """The end of an update call, after C's writes: count it, then C's decay and diffusion."""
        self.update_count.add_(1)  # in place: `+=` would go through Module.__setattr__
        self.C.after_update(self.generator)

    @torch.no_grad()
    def write_counts(self, cols: Optional[Tensor], counts: Tensor) -> None:
        """|counts| pulses of direction sign(counts) to C[:, cols] (counts [N, n]; ``cols`` None: all of C,
        counts [N, K]), for algorithms that decide pulse counts digitally. Inside
        ``apply_update(lr, writes)`` they are queued in ``writes``, otherwise applied now."""
        writes = getattr(self, "_writes", None)  # absent on tiles pickled before it existed
        if writes is not None:
            writes.add(self.C, cols, counts, self.generator)
        elif cols is None:
            self.C.signed_counts_update(counts, generator=self.generator)
        else:
            column_counts_update(self.C, cols, counts, self.generator)

    @torch.no_grad()
    def write_flat_counts(self, idx: Tensor, counts: Tensor) -> None:
        """:meth:`write_counts` of all of C given as its devices with pulses only: flat indices ``idx``
        (ascending, int64) and their nonzero ``counts`` (the same draws as the dense counts)."""
        writes = getattr(self, "_writes", None)
        if writes is None:  # a joint write of this array alone
            writes = PendingCounts()
            writes.add_flat(self.C, idx, counts, self.generator)
            writes.apply()
        else:
            writes.add_flat(self.C, idx, counts, self.generator)


def _finite(x: Tensor) -> bool:
    """The forward's finiteness test of its input (compiled where it can: the input may carry a gradient)."""
    return all_finite(x.detach())


def _small_compiled(x: Tensor, io) -> bool:
    """Whether a read of one slice goes straight to the compiled small MVM (the path the fast CPU
    backend would take for it, without its dispatch): no gradient is recorded through it."""
    return (compiled_mvm.supports(x, io, 1, False, False) and not (torch.is_grad_enabled() and x.requires_grad)
            and backend.resolve(x.device) == "torch")


def _check_seed(seed) -> None:
    if seed is None or isinstance(seed, torch.Generator):
        return
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, a torch.Generator or None, got {type(seed).__name__} {seed!r}")
    lo, hi = _SEED_RANGE
    if not lo <= seed <= hi:
        raise ValueError(f"seed = {seed!r} is invalid; allowed: an integer in [{lo}, {hi}]")
