"""Exercises of tutorial 04 · hardware-aware training (docs/physics.md §1 and §3).

Each check runs the student's answer on fresh inputs and compares it with the library's own
computation (the calibration quantile, the tile's remapping, the ADC step, the config tree), so a
right answer is one that agrees with the simulator, not with a stored number.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

from aimc_lab.config import AnalogConfig, ClipParameters
from aimc_lab.exercises import Exercise, ExerciseSet, Feedback, expect_close, right, wrong
from aimc_lab.presets import standard_hwa

__all__ = ["EXERCISES", "check", "hint", "question"]


def _not_callable(answer: Any, what: str) -> Feedback:
    if answer is None:
        return wrong(f"no answer yet: define {what} and pass the function itself (no parentheses).")
    return wrong(f"the answer should be a function {what}; got {type(answer).__name__} {answer!r:.60}.")


def _call(fn: Callable, *args) -> Any:
    with torch.no_grad():
        return fn(*args)


def _check_calibrated_range(answer: Any) -> Feedback:
    if not callable(answer):
        return _not_callable(answer, "my_range(x, q)")
    g = torch.Generator().manual_seed(4)
    for q in (0.5, 0.9, 0.999):
        x = torch.randn(300, 24, generator=g) * torch.rand(24, generator=g).add(0.2)     # [M, K]
        x[x.abs() < 0.3] = 0.0                                                           # ReLU-like zeros
        expected = float(torch.quantile(x.abs().flatten(), q))
        got = _call(answer, x.clone(), q)
        if got is None:
            return wrong("my_range returned None: return the range r (a number or a 0-d tensor).")
        if isinstance(got, torch.Tensor):
            if got.numel() != 1:
                return wrong(f"my_range returned a tensor of shape {tuple(got.shape)}; one slice has one range: "
                             "reduce over all entries of x (flatten it first).")
            got = got.item()
        try:
            value = float(got)
        except (TypeError, ValueError):
            return wrong(f"my_range returned {type(got).__name__}; it should return a number.")
        signed = float(torch.quantile(x.flatten(), q))
        if abs(value - expected) > 1e-4 * max(1.0, expected):
            if abs(value - signed) <= 1e-4 * max(1.0, abs(signed)):
                return wrong(f"for q = {q} you return {value:.4g}, the quantile of x itself; the range must cover "
                             f"negative inputs too, so take the quantile of |x| ({expected:.4g}).")
            return wrong(f"for q = {q} you return {value:.4g}; the quantile q of |x| over all entries is "
                         f"{expected:.4g}.")
    return right("the range is the quantile q of |x|: a share 1 − q of the inputs lies beyond it and is clipped.")


def _check_remap(answer: Any) -> Feedback:
    if not callable(answer):
        return _not_callable(answer, "remap(w)")
    g = torch.Generator().manual_seed(5)
    w = torch.randn(7, 11, generator=g) * torch.linspace(0.1, 2.0, 7).unsqueeze(1)    # [N, K], rows of all sizes
    got = _call(answer, w.clone())
    if not (isinstance(got, (tuple, list)) and len(got) == 2
            and all(isinstance(v, torch.Tensor) for v in got)):
        return wrong("remap should return a pair of tensors (w_tile [N, K], out_scale [N]); got "
                     f"{type(got).__name__}.")
    w_tile, out_scale = got
    if tuple(w_tile.shape) != (7, 11) or out_scale.numel() != 7:
        return wrong(f"shapes: w_tile {tuple(w_tile.shape)} should be [7, 11] for w [7, 11], out_scale "
                     f"{tuple(out_scale.shape)} should hold 7 values (one per row).")
    out_scale = out_scale.reshape(7)
    if not torch.allclose(w_tile * out_scale.unsqueeze(1), w, atol=1e-5):
        return wrong("w_tile * out_scale[:, None] does not give w back: the scale that remapping takes out of the "
                     "tile must move into the digital output scale.")
    row_max = w_tile.abs().amax(dim=1)
    if torch.allclose(row_max.max(), torch.tensor(1.0)) and not torch.allclose(row_max, torch.ones(7), atol=1e-5):
        return wrong("only the largest row reaches 1: that is a layer-wise remap (one scale for the layer). "
                     "Channelwise remapping gives every row its own scale, max_j |w_ij| per row i.")
    if not torch.allclose(row_max, torch.ones(7), atol=1e-5):
        return wrong(f"the largest |w_tile| per row should be 1; got {row_max.numpy().round(3).tolist()}.")
    return right("every row fills the conductance range, and the logical weights are unchanged "
                 "(as AnalogTile.remap('channelwise') does).")


def _check_adc_step(answer: Any) -> Feedback:
    if answer is None:
        return wrong("no answer yet: set adc_step to a number.")
    bound, res = 10.0, 1 / 254
    expected = 2 * bound * res
    try:
        value = float(answer)
    except (TypeError, ValueError):
        value = None
    if value is not None and abs(value - bound * res) <= 1e-3 * bound * res:
        return wrong(f"{value:.4g} is half the step: the ADC covers −b_out … +b_out, a span of 2·b_out, so "
                     "Δ_out = 2·b_out·out_res (docs/physics.md §1).")
    return expect_close(answer, expected, rel=0.01, what="Δ_out",
                        why="Δ_out = 2·b_out·out_res = 20/254: an output error of up to half a step, "
                            "about 0.04, for every column.")


def _check_hwa_config(answer: Any) -> Feedback:
    if answer is None:
        return wrong("no answer yet: build my_config from al.presets.standard_hwa().")
    if not isinstance(answer, AnalogConfig):
        return wrong(f"the answer should be an AnalogConfig; got {type(answer).__name__}.")
    mod, clip = answer.modifier, answer.clip
    if mod.kind != "add_normal" or abs(mod.std_dev - 0.1) > 1e-9:
        return wrong(f"modifier is kind={mod.kind!r}, std_dev={mod.std_dev}; wanted additive Gaussian noise "
                     "(kind 'add_normal') with std_dev 0.1 (standard_hwa(modifier_std=0.1) sets both).")
    if clip.kind != "layer_gaussian" or abs(clip.sigma - 2.5) > 1e-9:
        return wrong(f"clip is kind={clip.kind!r}, sigma={clip.sigma}; wanted kind 'layer_gaussian' with "
                     "sigma 2.5 (ClipParameters).")
    reference = dataclasses.replace(standard_hwa(modifier_std=0.1), clip=ClipParameters(kind="layer_gaussian",
                                                                                        sigma=2.5))
    changed = [f.name for f in dataclasses.fields(AnalogConfig)
               if getattr(answer, f.name) != getattr(reference, f.name)]
    if changed:
        return wrong(f"modifier and clip are right, but {', '.join(changed)} differ from the standard preset: "
                     "start from al.presets.standard_hwa() and replace only what was asked "
                     "(dataclasses.replace).")
    return right("noise injection 0.1·max|W| per batch, clipping at ±2.5·std(W) after every step, the rest of "
                 "the standard preset unchanged.")


EXERCISES = ExerciseSet("04 · Hardware-aware training", [
    Exercise("calibrated_range",
             "Write my_range(x, q): the input range that cache-quantile calibration sets for inputs x [M, K] "
             "(one slice, no all-zero rows).",
             "docs/physics.md §3: r = quantile_q(|x|) over all entries of the slice. torch.quantile wants a "
             "1-d tensor: flatten |x| first.",
             _check_calibrated_range),
    Exercise("remap_channelwise",
             "Write remap(w) -> (w_tile, out_scale) for channelwise remapping of weights [N, K].",
             "The scale of row i is c_i = max_j |w_ij|; w_tile = w / c[:, None], out_scale = c "
             "(w.abs().amax(dim=1)).",
             _check_remap),
    Exercise("adc_step",
             "How large is one ADC step with out_res = 1/254 and out_bound = 10?",
             "docs/physics.md §1: Δ_out = 2·out_bound·out_res — the ADC spans −b_out to +b_out.",
             _check_adc_step),
    Exercise("hwa_config",
             "Build an AnalogConfig: the standard preset with add-normal weight noise 0.1 and layer-gaussian "
             "clipping at 2.5 std.",
             "al.presets.standard_hwa(modifier_std=0.1) gives the noise; then dataclasses.replace(config, "
             "clip=al.ClipParameters(kind='layer_gaussian', sigma=2.5)).",
             _check_hwa_config),
])

check = EXERCISES.check
hint = EXERCISES.hint
question = EXERCISES.question
