"""Exercises of tutorial 05 · Customization: a noise model, a drift compensation, a conversion handler and a
user-defined pulsed device's symmetry point (docs/extending.md, docs/physics.md §2 and §4).

Each check calls the student's object the way the library will (hooks with a generator, ``reduce`` on a
read-out, a handler with a config) on small inputs, so a check takes milliseconds.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from aimc_lab.exercises import Exercise, ExerciseSet, expect_close, expect_number, right, wrong

__all__ = ["EXERCISES", "check", "hint", "question", "ScaledLinear", "tanh_symmetry_point"]


# ---------------------------------------------------------------------------------------------
# 1 · a noise model
# ---------------------------------------------------------------------------------------------


def _check_constant_noise(answer: Any):
    from aimc_lab.devices.base import NoiseModel

    if answer is None:
        return wrong("no answer yet: give an instance of your NoiseModel subclass, e.g. ConstantNoise().")
    if isinstance(answer, type):
        return wrong(f"{answer.__name__} is the class; give an instance of it, e.g. {answer.__name__}().")
    if not isinstance(answer, NoiseModel):
        return wrong(f"expected an instance of a NoiseModel subclass, got {type(answer).__name__}.")
    g_target = torch.full((20000,), 10.0)
    kept = g_target.clone()
    g1 = answer.programming_noise(g_target, torch.Generator().manual_seed(0))
    if not isinstance(g1, torch.Tensor) or g1.shape != g_target.shape:
        return wrong("programming_noise must return a tensor of the targets' shape "
                     f"{tuple(g_target.shape)}; got {type(g1).__name__} {tuple(getattr(g1, 'shape', ()))}.")
    if not torch.equal(g_target, kept):
        return wrong("programming_noise changed its input g_target in place; hooks must return a new tensor.")
    g2 = answer.programming_noise(g_target, torch.Generator().manual_seed(0))
    if not torch.equal(g1, g2):
        return wrong("two calls with generators of the same seed gave different conductances: draw the noise "
                     "with torch.randn(..., generator=generator).")
    std, mean = float(g1.std()), float(g1.mean())
    if abs(mean - 10.0) > 0.05:
        return wrong(f"at g_T = 10 µS the programmed mean is {mean:.3f} µS; the noise should be zero-mean.")
    if abs(std - 1.0) > 0.05:
        hint = " Your noise seems to scale with g_T." if abs(std - 0.4) < 0.05 or abs(std - 0.1) < 0.02 else ""
        return wrong(f"at g_T = 10 µS the programmed std is {std:.3f} µS; expected 1 µS.{hint}")
    g_low = answer.programming_noise(torch.full((20000,), 0.5), torch.Generator().manual_seed(1))
    if float(g_low.min()) < 0:
        return wrong("at g_T = 0.5 µS some programmed conductances are negative; a conductance cannot be: "
                     "clamp at 0 (.clamp(min=0)).")
    g_again = answer.programming_noise(torch.full((20000,), 20.0), torch.Generator().manual_seed(2))
    if abs(float(g_again.std()) - 1.0) > 0.05:
        return wrong(f"at g_T = 20 µS the std is {float(g_again.std()):.3f} µS: it should be 1 µS at every "
                     "conductance.")
    return right(f"std {std:.3f} µS at 10 µS and {float(g_again.std()):.3f} µS at 20 µS, zero-mean, reproducible "
                 "from the generator, never negative. Register it and every tile of a network uses it.")


# ---------------------------------------------------------------------------------------------
# 2 · a drift compensation
# ---------------------------------------------------------------------------------------------


def _check_rms_compensation(answer: Any):
    from aimc_lab.devices.compensation import DriftCompensation

    if answer is None:
        return wrong("no answer yet: give an instance of your DriftCompensation subclass.")
    if isinstance(answer, type):
        return wrong(f"{answer.__name__} is the class; give an instance of it, e.g. {answer.__name__}().")
    if not isinstance(answer, DriftCompensation):
        return wrong(f"expected an instance of a DriftCompensation subclass, got {type(answer).__name__}.")
    readout = torch.randn(20, 7, generator=torch.Generator().manual_seed(0)) * torch.linspace(0.5, 2.0, 7)
    kept = readout.clone()
    got = answer.reduce(readout)
    expected = readout.pow(2).mean(dim=0).sqrt()
    if not torch.equal(readout, kept):
        return wrong("reduce changed the read-out in place; return a new tensor.")
    if not isinstance(got, torch.Tensor):
        return wrong(f"reduce must return a tensor, got {type(got).__name__}.")
    if got.numel() == 1:
        return wrong("reduce returned one number for the whole tile (a global factor); the exercise asks for one "
                     "factor per output column: reduce over the inputs only (dim=0).")
    if tuple(got.shape) != (7,):
        return wrong(f"for a read-out [K=20, N=7] reduce must return [N=7], got {tuple(got.shape)} (reduce over "
                     "dim 0, the inputs).")
    if torch.allclose(got, readout.abs().mean(dim=0), rtol=1e-4):
        return wrong("that is the mean |read-out| per column (PerColumnDriftCompensation); the exercise asks for "
                     "the root-mean-square: sqrt(mean(readout²)).")
    if not torch.allclose(got, expected, rtol=1e-4, atol=1e-6):
        return wrong(f"reduce gives {got[:3].tolist()} ... for the first columns, expected the RMS "
                     f"{expected[:3].tolist()} ...")
    return right("one RMS per output column; the tile multiplies each column by ref / current RMS after drift.")


# ---------------------------------------------------------------------------------------------
# 3 · a conversion handler
# ---------------------------------------------------------------------------------------------


class ScaledLinear(nn.Module):
    """A digital layer y = scale · (W x + b), as some models use after a normalization is folded away."""

    def __init__(self, in_features: int, out_features: int, scale: float = 2.5) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.linear(x)


def _check_scaled_handler(answer: Any):
    from aimc_lab.config import AnalogConfig, IOParameters
    from aimc_lab.nn.container import named_analog_tiles

    if answer is None:
        return wrong("no answer yet: give your handler function handler(module, config) -> analog module.")
    if not callable(answer) or isinstance(answer, nn.Module):
        return wrong(f"expected a function handler(module, config), got {type(answer).__name__}.")
    torch.manual_seed(0)
    module = ScaledLinear(6, 4, scale=2.5)
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y_ref = module(x)
    config = AnalogConfig(forward=IOParameters(is_perfect=True))
    new = answer(module, config)
    if not isinstance(new, nn.Module):
        return wrong(f"the handler must return an nn.Module, got {type(new).__name__}.")
    if not list(named_analog_tiles(new)):
        return wrong(f"the handler returned a {type(new).__name__} without analog tiles: the layer would stay "
                     "digital. Build an AnalogLinear (or a module holding one).")
    if any(t.config != config for _, t in named_analog_tiles(new)):
        return wrong("the analog tiles do not use the config given to the handler: pass config=config.")
    new.eval()
    with torch.no_grad():
        y = new(x)
    if tuple(y.shape) != tuple(y_ref.shape):
        return wrong(f"the analog layer gives outputs of shape {tuple(y.shape)}, expected {tuple(y_ref.shape)}.")
    if torch.allclose(y, y_ref, rtol=1e-4, atol=1e-4):
        return right("the analog layer computes scale·(Wx + b) with a perfect MVM; the scale is folded into "
                     "the weights and the bias (or applied digitally), so nothing is lost.")
    ratio = float((y_ref.norm() / y.norm()))
    if abs(ratio - module.scale) < 0.05:
        return wrong("the outputs are 2.5x too small: the handler lost the scale. Multiply the weights and the "
                     "bias by module.scale (or apply it digitally after the layer).")
    if torch.allclose(y, y_ref - module.scale * module.linear.bias.detach() + module.linear.bias.detach(),
                      rtol=1e-4, atol=1e-4):
        return wrong("the weights are scaled but the bias is not: y = scale·W x + scale·b.")
    return wrong(f"the analog outputs differ from the digital ones (max difference "
                 f"{float((y - y_ref).abs().max()):.3g}); copy the weights and bias with set_weights.")


# ---------------------------------------------------------------------------------------------
# 4 · a user-defined pulsed device
# ---------------------------------------------------------------------------------------------


def tanh_symmetry_point(up_down: float, kappa: float) -> float:
    """w* of the tutorial's TanhStep device without spreads: Δ⁺(1 − tanh κw) = Δ⁻(1 + tanh κw) with
    Δ⁺ = dw_min·(1 + min(up_down, 0)), Δ⁻ = dw_min·(1 − max(up_down, 0)) (docs/physics.md §4)."""
    up, down = 1 + min(up_down, 0.0), 1 - max(up_down, 0.0)
    return math.atanh((up - down) / (up + down)) / kappa


def _check_symmetry_point(answer: Any):
    if answer is None:
        return wrong("no answer yet: give w* as a number.")
    bad = expect_number(answer, "w*")
    if bad is not None:
        return bad
    expected = tanh_symmetry_point(0.2, 2.0)
    value = float(answer)
    why = ("With up_down = 0.2, Δ⁺ = dw_min and Δ⁻ = 0.8·dw_min; equal steps need tanh(κw*) = "
           "(Δ⁺ − Δ⁻)/(Δ⁺ + Δ⁻) = 1/9, so w* = atanh(1/9)/κ.")
    if abs(value) < 1e-6:
        return wrong("w* = 0 is the symmetry point of the symmetric device (up_down = 0). " + why)
    if abs(value + expected) < 0.02 * expected:
        return wrong("right size, wrong sign: the up step is the larger one, so the device settles where the "
                     "up step has shrunk, above 0.")
    return expect_close(value, expected, rel=0.02, what="w*", why=why)


EXERCISES = ExerciseSet("05 · Customization", [
    Exercise(
        "constant_noise",
        "Write a NoiseModel subclass ConstantNoise whose programming noise is Gaussian with a standard deviation "
        "of 1 µS at every conductance (not relative to it), clamped at 0, drawn from the generator it gets; "
        "leave drift and read noise as the base class has them. Answer with an instance (g_max = 25 µS).",
        "Override programming_noise(self, g_target, generator): torch.randn(g_target.shape, "
        "generator=generator) gives ξ; return (g_target + 1.0 * ξ).clamp(min=0). Do not change g_target in place.",
        _check_constant_noise),
    Exercise(
        "rms_compensation",
        "Write a DriftCompensation subclass whose reduce(readout) gives one factor per output column: the "
        "root-mean-square of that column's read-out, sqrt(mean over the inputs of readout²). Answer with an "
        "instance.",
        "readout is [K_s, N] (inputs x outputs). One value per column means reducing over dim 0: "
        "readout.pow(2).mean(dim=0).sqrt().",
        _check_rms_compensation),
    Exercise(
        "scaled_handler",
        "aimc_lab.exercises.t05.ScaledLinear is a digital layer y = scale·(W x + b) (its nn.Linear is "
        "module.linear, its scale module.scale). Write the conversion handler handler(module, config) that "
        "register_conversion(ScaledLinear, handler) would use: it returns an analog layer computing the same "
        "function on an analog tile. Answer with the function.",
        "al.AnalogLinear(in, out, config=config) builds the analog layer; layer.set_weights(weight, bias) "
        "copies weights in. Fold the scale into both: module.scale * module.linear.weight.detach(), and the "
        "same for the bias.",
        _check_scaled_handler),
    Exercise(
        "symmetry_point",
        "The TanhStep device of section 4 steps up by Δ⁺·(1 − tanh(κw)) and down by Δ⁻·(1 + tanh(κw)). For "
        "TanhStep(up_down=0.2, kappa=2.0) without device-to-device spread (Δ⁺ = dw_min, Δ⁻ = 0.8·dw_min), at "
        "which weight w* are the up and down steps equal? Answer with the number.",
        "Set Δ⁺(1 − t) = Δ⁻(1 + t) with t = tanh(κw*) and solve for t, then w* = atanh(t)/κ "
        "(math.atanh). DeviceArray(device, 1, 1).symmetry_point() lets you check it numerically.",
        _check_symmetry_point),
])

check = EXERCISES.check
hint = EXERCISES.hint
question = EXERCISES.question
