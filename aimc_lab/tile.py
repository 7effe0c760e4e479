"""AnalogTile: the weights of one layer on a grid of physical crossbar tiles, and their programmed state.

A tile object holds the logical weight matrix [N, K] of one layer in *tile units* (``weight``,
|w| <= ~1 maps to g_max) and a digital per-column ``out_scale`` [N] such that the layer's weights are
``weight * out_scale[:, None]``. Physically the matrix is split into S = ceil(K / max_input_size)
slices along the inputs and T = ceil(N / max_output_size) along the outputs; each slice is one
analog MVM (own noise management, bound management, ADC), partial sums are added digitally.

Life cycle (docs/physics.md §2): ``program()`` maps each physical tile to conductance pairs
(s = g_max / max|w|), applies programming noise and samples drift exponents once; ``drift(t)`` starts
again from that programmed state, applies drift and fresh read noise at t seconds, and recomputes
the drift compensation. While programmed, the forward reads the drifted weights; ``unprogram()``
returns to the trained weights. The forward goes through :func:`aimc_lab.kernels.analog_mvm`
(Triton on CUDA, torch otherwise); no code here knows which backend ran.

Deviations from AIHWKIT, by design: the digital output scales (weight scaling ω, learned output
scales, remapping) are per layer or per column, shared by the K-slices of a layer.
"""

from __future__ import annotations

import math
from typing import List, Optional

import torch
from torch import Tensor, nn

from aimc_lab import _dist, _registry
from aimc_lab._checks import all_finite, check_tile_input
from aimc_lab.config import AnalogConfig
from aimc_lab.devices import make_noise_model
from aimc_lab.devices.base import (NoiseModel, check_time, conductance_targets, conductances_to_weights,
                                   mapping_scale)
from aimc_lab.devices.compensation import DriftCompensation, make_compensation
from aimc_lab.devices.pcm import PCMLikeNoise
from aimc_lab.kernels import analog_mvm, analog_mvm_one_hot, input_range_grad
from aimc_lab.kernels.pcm_noise import pcm_at_time, pcm_program
from aimc_lab.kernels.weight_modifier import weight_modifier

__all__ = ["AnalogTile", "make_tile", "InputRangeFunction"]


class InputRangeFunction(torch.autograd.Function):
    """u = clip(x, -r, r) / r per input column, with the learned-input-range gradient (docs/physics.md §3).

    ``r`` [S] holds the range of each K-slice, ``slice_index`` [K] maps inputs to slices, ``ir`` is the
    tile's :class:`~aimc_lab.config.InputRangeParameters`. With ``grad`` = dL/du and g = grad / r the
    gradient w.r.t. the clipped value clip(x) (the output scale r is digital and carries no gradient):

    * r_s: the sum over the slice's entries clipped at +r of min(g, 0) and at -r of -max(g, 0), times
      r_s when ``ir.gradient_relative`` (the same sums of ``grad`` itself), plus decay·r_s when more
      than ``ir.input_min_percentage`` of the slice's entries were inside (|x| < r);
    * x: g everywhere when ``ir.straight_through`` (as the reference toolkit), else g where |x| < r.

    The ranges are copied at the forward, so a later in-place change of ``r`` (the init from data of a
    layer called again before the backward) does not reach this call's backward.

    The backward reads the clipped entries off the output u instead of comparing |x| with r again:
    u = clip(x)/r is exactly ±1 where |x| >= r (r/r = 1) and strictly inside (-1, 1) elsewhere (a
    correctly rounded x/r with |x| < r stays below 1, whose fp32 neighbour is 1 − 2^-24), so
    floor(|u|) is the clipped mask and u itself the sign of x there.
    """

    @staticmethod
    def forward(ctx, x, r, slice_index, ir):
        r_slices = r.detach().clone()  # [S]
        r_cols = r_slices[slice_index]  # [K]
        u = torch.clamp(x, -r_cols, r_cols).div_(r_cols)
        ctx.save_for_backward(u, r_slices, r_cols, slice_index)
        ctx.ir = ir
        return u

    @staticmethod
    def backward(ctx, grad):
        # Float masks throughout: floor, products and sums of float tensors are vectorized on the CPU;
        # bool tensors, torch.where, torch.sign and trunc are 5-40x slower there.
        u, r, r_cols, slice_index = ctx.saved_tensors
        ir = ctx.ir
        need_x, need_r = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if input_range_grad.serves(u, grad, r_cols):  # the element-wise work below in one compiled pass
            grad_x, per_col, n_clipped = input_range_grad.backward(u, grad, r_cols, ir.straight_through, need_x,
                                                                    need_r)
        else:
            clipped = u.abs().floor_()  # [M, K]: 1 where |x| >= r, 0 inside
            grad_x = None
            if need_x:
                grad_x = grad / r_cols  # the gradient w.r.t. the clipped value before scaling
                if not ir.straight_through:
                    grad_x.mul_(1 - clipped)
            if need_r:
                # clipped at +r: min(g, 0); at -r: -max(g, 0); both are min(g·sign(x), 0) = min(g·u, 0) on
                # clipped entries, with g = grad / r (r > 0 per column, so the division waits for the
                # sums); relative to the range: g·r = grad
                per_col = (grad * u).mul_(clipped).clamp_(max=0).sum(0)  # [K]
                n_clipped = clipped.sum(0) if ir.decay > 0 else None
        grad_r = None
        if need_r:
            if not ir.gradient_relative:
                per_col = per_col / r_cols
            grad_r = torch.zeros_like(r).index_add_(0, slice_index, per_col)  # [S]
            if ir.decay > 0:
                n_clipped = torch.zeros_like(r).index_add_(0, slice_index, n_clipped)
                count = torch.zeros_like(r).index_add_(0, slice_index, torch.full_like(per_col, u.shape[0]))
                grad_r = grad_r + ir.decay * r * ((count - n_clipped) / count > ir.input_min_percentage)
        return grad_x, grad_r, None, None


class AnalogTile(nn.Module):
    """One layer's weight matrix [N, K] on analog tiles: HWA-trainable, programmable, driftable."""

    #: Buffers that exist only while programmed (None otherwise), with their number of [N, K] planes:
    #: ``g_target`` the signed targets g⁺ − g⁻ in µS (g± = clip(±g_target, 0)); ``g_prog`` and ``nu``
    #: the programmed conductances and drift exponents of (G⁺, G⁻) [2, N, K] (None for the noise-free
    #: base model, whose devices are their targets); ``w_read`` the weights read at the last drift.
    _PROGRAMMED_STATE = {"g_target": 1, "g_prog": 2, "nu": 2, "w_read": 1}
    #: The per-device [N, K] buffers of checkpoints written before the state above was lazy.
    _LEGACY_STATE = ("g_target_pos", "g_target_neg", "g_prog_pos", "g_prog_neg", "nu_pos", "nu_neg")

    def __init__(self, out_features: int, in_features: int, config: Optional[AnalogConfig] = None,
                 noise_model: Optional[NoiseModel] = None,
                 compensation: Optional[DriftCompensation] = None) -> None:
        super().__init__()
        for name, value in (("out_features", out_features), ("in_features", in_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} = {value!r} is invalid; allowed: an integer >= 1")
        config = AnalogConfig() if config is None else config
        if not isinstance(config, AnalogConfig):
            raise TypeError(f"config must be an AnalogConfig or None, got {type(config).__name__}")
        self.config = config
        self.out_features, self.in_features = out_features, in_features
        N, K = out_features, in_features
        self.in_size = min(K, config.mapping.max_input_size)
        self.n_slices = math.ceil(K / self.in_size)
        self.noise_model = noise_model if noise_model is not None else make_noise_model(config.noise_model)
        self.compensation = compensation if compensation is not None else make_compensation(
            config.drift_compensation.kind)
        self.generator: Optional[torch.Generator] = None  # forward noise source (None: torch's global RNG)
        # The torch.distributed group whose ranks average each input-range init step, so the ranges stay
        # identical on every rank (set by aimc_lab.distributed.wrap; None: this process alone).
        self.range_group = None
        # Weight-noise injection's source when it must differ from the forward noise's (None: generator).
        # Under torch.distributed every rank shares it, so a global batch sees one weight-noise draw as in
        # one process, while each rank's forward noise is its own (aimc_lab.distributed.wrap).
        self.modifier_generator: Optional[torch.Generator] = None

        self.weight = nn.Parameter(torch.zeros(N, K))
        if config.mapping.learn_out_scaling:
            self.out_scale = nn.Parameter(torch.ones(N))
        else:
            self.register_buffer("out_scale", torch.ones(N))
        ir = config.input_range
        if ir.enable:
            r = torch.full((self.n_slices,), float(ir.init_value))
            self.input_range = nn.Parameter(r, requires_grad=ir.learn_input_range)
            self.register_buffer("input_range_batches", torch.zeros((), dtype=torch.long))
        else:
            self.input_range = None
        self.register_buffer("slice_index", torch.arange(K) // self.in_size, persistent=False)
        # programmed state (docs/physics.md §2); the [N, K]-sized parts exist only while programmed
        # (see _PROGRAMMED_STATE): an unprogrammed tile holds its weights and a few vectors
        self.register_buffer("programmed", torch.zeros((), dtype=torch.bool))
        self.register_buffer("t_inference", torch.zeros(()))
        for name in self._PROGRAMMED_STATE:
            self.register_buffer(name, None)
        self.register_buffer("map_scale", torch.ones(self.n_slices))
        self.register_buffer("drift_ref", torch.ones(self.n_slices, N))
        self.register_buffer("drift_alpha", torch.ones(self.n_slices, N))

    # ---------------------------------------------------------------------------------------------
    # weights
    # ---------------------------------------------------------------------------------------------

    @property
    def physical_grid(self):
        """(slices along K, tiles along N)."""
        return self.n_slices, math.ceil(self.out_features / self.config.mapping.max_output_size)

    def _check_matrix(self, w: Tensor, name: str) -> Tensor:
        if not isinstance(w, Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(w).__name__}")
        if tuple(w.shape) != (self.out_features, self.in_features):
            raise ValueError(f"{name} must have shape [{self.out_features}, {self.in_features}], "
                             f"got {tuple(w.shape)}")
        if not torch.isfinite(w).all():
            raise ValueError(f"{name} contains NaN or inf")
        return w

    @torch.no_grad()
    def set_weights(self, w: Tensor) -> None:
        """Set the layer weights [N, K]; with weight scaling ω > 0 they are normalized so that
        max|w| = ω per layer (or per column) and the rest goes into the digital ``out_scale``."""
        w = self._check_matrix(w, "weights").to(self.weight)
        omega = self.config.mapping.weight_scaling_omega
        if omega > 0:
            if self.config.mapping.weight_scaling_columnwise:
                c = w.abs().amax(dim=1)
            else:
                c = w.abs().max().expand(self.out_features)
            scale = torch.where(c > 0, c / omega, torch.ones_like(c))
        else:
            scale = torch.ones(self.out_features, dtype=w.dtype, device=w.device)
        self.weight.copy_(w / scale.unsqueeze(1))
        self.out_scale.copy_(scale)
        self.unprogram()

    @torch.no_grad()
    def get_weights(self) -> Tensor:
        """The layer weights [N, K] (tile weights times the digital output scales)."""
        return self.weight * self.out_scale.unsqueeze(1)

    @torch.no_grad()
    def remap(self, kind: str) -> None:
        """Rescale so that max|w| = 1 per layer (``"layer"``) or per output column (``"channelwise"``);
        the scale moves into ``out_scale`` (docs/physics.md §3)."""
        if kind == "none":
            return
        if kind == "layer":
            c = self.weight.abs().max().expand(self.out_features)
        elif kind == "channelwise":
            c = self.weight.abs().amax(dim=1)
        else:
            raise ValueError(f"remap kind = {kind!r} is invalid; allowed: 'none', 'layer', 'channelwise'")
        c = torch.where(c > 0, c, torch.ones_like(c))
        self.weight.div_(c.unsqueeze(1))
        self.out_scale.mul_(c)

    # ---------------------------------------------------------------------------------------------
    # forward
    # ---------------------------------------------------------------------------------------------

    def _forward_weight(self) -> Tensor:
        if bool(self.programmed):
            return self.w_read
        mod = self.config.modifier
        if mod.kind != "none" and (self.training or mod.enable_during_test):
            source = self.generator if self.modifier_generator is None else self.modifier_generator
            noisy = weight_modifier(self.weight.detach(), mod, source)
            return self.weight + (noisy - self.weight.detach())
        return self.weight

    def _slice_ranges(self, x: Tensor) -> Optional[Tensor]:
        """The input ranges [S] after this training batch's init-from-data step (docs/physics.md §3: the
        running mean of α_std·std(x) per slice over the first ``init_from_data`` batches), or None when
        there is no step: eval mode, the init is done, or a slice holds fewer than two values (an empty
        batch, or one row on a one-column slice: no std), in which case the batch does not count.
        Nothing is changed here: :meth:`forward` commits the ranges once the batch has gone through."""
        ir = self.config.input_range
        n = int(self.input_range_batches)
        smallest_slice = self.in_features - (self.n_slices - 1) * self.in_size
        if not self.training or n >= ir.init_from_data or x.shape[0] * smallest_slice < 2:
            return None
        with torch.no_grad():
            xs = x.detach()
            std = torch.stack([part.std() for part in torch.split(xs, self.in_size, dim=1)])
            top = torch.finfo(std.dtype).max
            if not bool(torch.isfinite(std).all()):
                # the variance of inputs near the dtype's limit overflows: std of x / max|x|, times max|x|
                peak = xs.abs().amax().clamp(min=torch.finfo(xs.dtype).tiny)
                std = peak * torch.stack([part.std() for part in torch.split(xs / peak, self.in_size, dim=1)])
            target = (ir.init_std_alpha * std).clamp(1e-6, top)
            if self.range_group is not None:  # every rank sees its own shard of the global batch
                _dist.average_(target, self.range_group)
            if n == 0:
                return target
            return (self.input_range.detach() * (n / (n + 1)) + target / (n + 1)).clamp(max=top)

    def forward(self, x: Tensor) -> Tensor:
        """y [M, N] = analog(x [M, K] @ weight.T) * out_scale.

        The input is checked before anything changes: not a tensor, or not of the tile's dtype:
        TypeError; wrong shape, or NaN/inf entries: ValueError. An empty batch gives y [0, N]. A finite
        input so large that y overflows the dtype raises ValueError too, and the input-range init of
        this batch is then not committed: a rejected input leaves the tile as it was.
        """
        check_tile_input(x, self.in_features, self.weight.dtype)
        u, scales, r_new = x, None, None
        if self.input_range is not None:
            r_new = self._slice_ranges(x)
            # the new ranges' values, with the gradient going to the parameter
            r = self.input_range if r_new is None else r_new + (self.input_range - self.input_range.detach())
            u = InputRangeFunction.apply(x, r, self.slice_index, self.config.input_range)
            scales = r.detach().clone().unsqueeze(1).expand(self.n_slices, self.out_features)
        if bool(self.programmed) and self.config.drift_compensation.kind != "none":
            scales = self.drift_alpha if scales is None else scales * self.drift_alpha
        if x.shape[0] == 0:  # an empty batch: the exact empty product keeps the autograd graph
            y = (u @ self.weight.t()) * self.out_scale
        elif torch.is_grad_enabled() and self.out_scale.requires_grad:
            y = analog_mvm(u, self._forward_weight(), self.config.forward, in_size=self.in_size,
                           out_scales=scales, generator=self.generator) * self.out_scale
        else:  # no gradient for the digital output scale: it joins the kernel's per-slice scales (a pass less)
            column = self.out_scale.detach().unsqueeze(0)  # [1, N]
            scales = column if scales is None else scales * column
            y = analog_mvm(u, self._forward_weight(), self.config.forward, in_size=self.in_size,
                           out_scales=scales.expand(self.n_slices, self.out_features), generator=self.generator)
        if not all_finite(y):
            raise ValueError(f"the tile output overflows {y.dtype} for this input (max|x| = "
                             f"{float(x.detach().abs().max()):.3g}); allowed: inputs small enough that "
                             "x @ W.T stays finite: scale them down")
        if r_new is not None:
            with torch.no_grad():
                self.input_range.copy_(r_new)
                self.input_range_batches += 1
        return y

    # ---------------------------------------------------------------------------------------------
    # programming, drift, compensation
    # ---------------------------------------------------------------------------------------------

    def _slices(self, w: Tensor) -> List[Tensor]:
        return list(torch.split(w, self.in_size, dim=1))

    @torch.no_grad()
    def _readout(self, w: Tensor) -> List[Tensor]:
        """Each physical tile's response to its one-hot inputs through the full noisy forward: [K_s, N].

        One MVM per slice with that slice's identity: a one-hot input reads nothing from the other
        slices (all-zero slice inputs give exactly 0), so feeding the identity of all K inputs through
        every slice would cost S times more for the same result. :func:`analog_mvm_one_hot` is that
        MVM of the identity without its matmuls on the CPU (the same numbers)."""
        return [analog_mvm_one_hot(ws, self.config.forward, generator=self.generator) for ws in self._slices(w)]

    def _noise_free(self) -> bool:
        """The base :class:`NoiseModel` (kind "none"): the programmed devices are their targets and
        never drift, so no per-device state is stored."""
        return type(self.noise_model) is NoiseModel

    def _fused_pcm(self) -> bool:
        """The library's PCM model itself (not a user subclass with its own hooks) goes through
        :mod:`aimc_lab.kernels.pcm_noise`: G⁺ and G⁻ of the tile in one element-wise pass (a Triton
        kernel on CUDA, the torch reference otherwise)."""
        return type(self.noise_model) is PCMLikeNoise

    def _compensated(self) -> bool:
        return self.config.drift_compensation.kind != "none"

    @staticmethod
    def _pair(g_target: Tensor) -> Tensor:
        """(g⁺, g⁻) targets [2, N, K] in µS from the signed targets g⁺ − g⁻."""
        g = g_target.new_empty((2, *g_target.shape))
        torch.clamp(g_target, min=0.0, out=g[0])
        torch.neg(g_target, out=g[1]).clamp_(min=0.0)
        return g

    def _weights_from(self, g_pos: Tensor, g_neg: Tensor) -> Tensor:
        scale_cols = self.map_scale[self.slice_index]  # [K]
        return conductances_to_weights(g_pos, g_neg, scale_cols)

    @torch.no_grad()
    def program(self, generator: Optional[torch.Generator] = None) -> None:
        """Program the current weights: conductance mapping (s = g_max / max|w| per physical tile; an
        all-zero one maps as if max|w| = 1), programming noise, drift exponents; then ``drift(0)``."""
        w = self._check_matrix(self.weight.detach(), "weight")
        nm = self.noise_model
        map_scale = mapping_scale(torch.stack([ws.abs().max() for ws in self._slices(w)]), nm.g_max)  # [S]
        g_target = conductance_targets(w, map_scale[self.slice_index], nm.g_max)  # [N, K], signed
        g_prog = nu = None
        if not self._noise_free():
            targets = self._pair(g_target)
            if self._fused_pcm():
                g_prog, nu = pcm_program(targets, nm.params, generator)
            else:
                g_prog, nu = torch.empty_like(targets), torch.empty_like(targets)
                for sign, target in enumerate(targets):
                    g_prog[sign] = nm.programming_noise(target, generator)
                    nu[sign] = nm.drift_exponents(target, generator)
            del targets
        # state changes only from here on: a failing hook above leaves the tile as it was
        self.map_scale.copy_(map_scale)
        self.g_target, self.g_prog, self.nu, self.w_read = g_target, g_prog, nu, torch.empty_like(g_target)
        self.programmed.fill_(True)
        if self._compensated():
            self.drift_ref.copy_(self.compensation.reference(self._readout(self._programmed_weights())))
        else:
            self.drift_ref.fill_(1.0)
        self.drift(0.0, generator)

    def _programmed_weights(self) -> Tensor:
        """The weights the devices hold right after programming (before any drift): [N, K]."""
        if self.g_prog is None:
            return self.g_target / self.map_scale[self.slice_index]
        return self._weights_from(self.g_prog[0], self.g_prog[1])

    @torch.no_grad()
    def remeasure_compensation(self, reference_generator: Optional[torch.Generator] = None,
                               readout_generator: Optional[torch.Generator] = None) -> None:
        """Measure the drift compensation again through the current ``config.forward`` (e.g. after a
        converter or noise setting changed), keeping the programmed devices and the drift time: the
        reference from the programmed weights, as :meth:`program` measures it (read noise from
        ``reference_generator``), and the factor from the current read weights, as :meth:`drift`
        does (``readout_generator``); ``None``: the tile's own generator. Nothing to do on an
        unprogrammed or uncompensated tile."""
        if not bool(self.programmed) or not self._compensated():
            return
        own = self.generator
        try:
            self.generator = own if reference_generator is None else reference_generator
            self.drift_ref.copy_(self.compensation.reference(self._readout(self._programmed_weights())))
            self.generator = own if readout_generator is None else readout_generator
            self.drift_alpha.copy_(self.compensation.alpha(self.drift_ref, self._readout(self.w_read)))
        finally:
            self.generator = own

    @torch.no_grad()
    def drift(self, t_inference: float, generator: Optional[torch.Generator] = None) -> None:
        """Conductances at ``t_inference`` seconds after programming (from the programmed state)."""
        t = check_time(t_inference)
        if not bool(self.programmed):
            raise RuntimeError("drift() needs a programmed tile: call program() first")
        nm = self.noise_model
        scale_cols = self.map_scale[self.slice_index]  # [K]
        if self.g_prog is None:  # noise-free: w = (g⁺ − g⁻)/s = g_target/s
            torch.div(self.g_target, scale_cols, out=self.w_read)
        else:
            if self._fused_pcm():
                g = pcm_at_time(self.g_prog, self.nu, t, nm.params, generator)
            else:
                targets = self._pair(self.g_target)
                g = torch.stack([nm.at_time(self.g_prog[sign], self.nu[sign], targets[sign], t, generator)
                                 for sign in range(2)])
            torch.sub(g[0], g[1], out=self.w_read).div_(scale_cols)
            del g
        self.t_inference.fill_(t)
        if self._compensated():
            self.drift_alpha.copy_(self.compensation.alpha(self.drift_ref, self._readout(self.w_read)))
        else:
            self.drift_alpha.fill_(1.0)

    @torch.no_grad()
    def unprogram(self) -> None:
        """Forget (and free) the programmed state: the forward uses the trained weights again."""
        self.programmed.fill_(False)
        self.drift_alpha.fill_(1.0)
        for name in self._PROGRAMMED_STATE:
            setattr(self, name, None)

    def conductances(self) -> dict:
        """Target, programmed and current (read at the last drift time) conductances, in µS."""
        if not bool(self.programmed):
            raise RuntimeError("conductances() needs a programmed tile: call program() first")
        targets = self._pair(self.g_target)
        g_prog = targets if self.g_prog is None else self.g_prog
        return {"target_pos": targets[0], "target_neg": targets[1],
                "prog_pos": g_prog[0].clone(), "prog_neg": g_prog[1].clone(),
                "read_diff": self.w_read * self.map_scale[self.slice_index], "t_inference": float(self.t_inference)}

    def _per_device(self, name: str, sign: int) -> Optional[Tensor]:
        """Device ``sign`` (0: G⁺, 1: G⁻) of ``g_target``, ``g_prog`` or ``nu`` [N, K] (None unprogrammed)."""
        if not bool(self.programmed):
            return None
        if name == "g_target" or (name == "g_prog" and self.g_prog is None):
            return self._pair(self.g_target)[sign]
        if self.nu is None:
            return torch.zeros_like(self.g_target)
        return getattr(self, name)[sign]

    # the per-device [N, K] arrays under the names of the buffers they were before the state was lazy
    g_target_pos = property(lambda self: self._per_device("g_target", 0), doc="G⁺ targets, µS")
    g_target_neg = property(lambda self: self._per_device("g_target", 1), doc="G⁻ targets, µS")
    g_prog_pos = property(lambda self: self._per_device("g_prog", 0), doc="G⁺ programmed, µS")
    g_prog_neg = property(lambda self: self._per_device("g_prog", 1), doc="G⁻ programmed, µS")
    nu_pos = property(lambda self: self._per_device("nu", 0), doc="G⁺ drift exponents")
    nu_neg = property(lambda self: self._per_device("nu", 1), doc="G⁻ drift exponents")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """Shape the programmed state like the incoming one before loading it: allocate what a
        programmed state holds (so a missing part is reported as missing), drop everything [N, K] for
        an unprogrammed one, and accept the per-device [N, K] buffers of earlier checkpoints (zeros
        when unprogrammed). A floating-point entry with NaN or inf is refused (ValueError naming its
        key) before anything changes."""
        check_finite_state(state_dict, prefix)
        state = {k: v for k, v in state_dict.items() if k.startswith(prefix)}
        flag = state.get(prefix + "programmed")
        flag = bool(flag) if isinstance(flag, Tensor) and flag.numel() == 1 else None
        legacy = [prefix + name for name in self._LEGACY_STATE]
        if flag is False:
            for name in (*self._LEGACY_STATE, *self._PROGRAMMED_STATE):
                state.pop(prefix + name, None)
            for name in self._PROGRAMMED_STATE:
                setattr(self, name, None)
        else:
            had_legacy = any(key in state for key in legacy)
            shape = (self.out_features, self.in_features)
            if all(isinstance(state.get(key), Tensor) and tuple(state[key].shape) == shape for key in legacy):
                pos, neg, g_pos, g_neg, nu_pos, nu_neg = (state.pop(key) for key in legacy)
                state[prefix + "g_target"] = pos - neg
                state[prefix + "g_prog"] = torch.stack((g_pos, g_neg))
                state[prefix + "nu"] = torch.stack((nu_pos, nu_neg))
            pair = had_legacy or any(prefix + name in state for name in ("g_prog", "nu"))
            for name, planes in self._PROGRAMMED_STATE.items():
                required = flag and (planes == 1 or pair)
                if prefix + name in state or required:
                    setattr(self, name, self.weight.new_zeros(shape if planes == 1 else (planes, *shape)))
                elif flag:
                    setattr(self, name, None)
        super()._load_from_state_dict(state, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    # ---------------------------------------------------------------------------------------------
    # transposed read (in-memory training) and helpers
    # ---------------------------------------------------------------------------------------------

    def backward_mvm(self, d: Tensor) -> Tensor:
        """d [M, N] -> [M, K] through the transposed array with the backward IO parameters."""
        in_size = min(self.out_features, self.config.mapping.max_output_size)
        return analog_mvm(d, self.weight.detach().t().contiguous(), self.config.backward, in_size=in_size,
                          generator=self.generator)

    def extra_repr(self) -> str:
        S, T = self.physical_grid
        return (f"out={self.out_features}, in={self.in_features}, tiles={S}x{T}, "
                f"programmed={bool(self.programmed)}, noise_model={self.noise_model!r}")


def check_finite_state(state_dict, prefix: str = "") -> None:
    """ValueError naming the first floating-point entry under ``prefix`` with a NaN or inf; analog layers
    call it on load_state_dict before anything of theirs is copied."""
    for key, value in state_dict.items():
        if key.startswith(prefix) and isinstance(value, Tensor) and value.is_floating_point() \
                and not bool(torch.isfinite(value).all()):
            raise ValueError(f"load_state_dict: state_dict entry {key!r} contains NaN or inf; allowed: finite "
                             "values (nothing was loaded into this layer)")


def make_tile(out_features: int, in_features: int, config: Optional[AnalogConfig] = None,
              **kwargs) -> nn.Module:
    """The tile for ``config``: an in-memory-training tile when ``config.training`` is set, else
    an :class:`AnalogTile`.

    ``kwargs`` go to that tile's constructor (e.g. ``seed`` for an in-memory tile, ``noise_model`` for an
    AnalogTile); a keyword the chosen tile does not take raises ``TypeError`` naming it."""
    import inspect

    if config is None:
        config = AnalogConfig()
    if not isinstance(config, AnalogConfig):
        raise TypeError(f"config must be an AnalogConfig or None, got {type(config).__name__}")
    if config.training is not None:
        tile_type = _registry.tile_class(config.training)
    else:
        tile_type = AnalogTile
    allowed = [name for name in inspect.signature(tile_type).parameters
               if name not in ("out_features", "in_features", "config")]
    unknown = [name for name in kwargs if name not in allowed]
    if unknown:
        raise TypeError(f"make_tile: unknown keyword argument(s) {', '.join(map(repr, unknown))} for an "
                        f"{tile_type.__name__}; allowed: {', '.join(map(repr, allowed))}")
    return tile_type(out_features, in_features, config, **kwargs)
