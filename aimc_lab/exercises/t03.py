"""Exercises of tutorial 03 · training in memory (docs/physics.md §4).

The device answers are checked against the library's own pulse rule (``simulate_response`` replays
pulses on one noise-free device with the nominal parameters), not against a stored number.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from aimc_lab.exercises import Exercise, ExerciseSet, expect_number, right, wrong

__all__ = ["EXERCISES", "check", "hint", "question"]

_NO_ANSWER = "no answer yet: replace None by your answer and run the cell again."


def _device():
    """The device of exercises 1 and 2: soft bounds, more up than down, asymmetric bounds."""
    from aimc_lab.devices import pulsed

    return pulsed.SoftBounds(dw_min=0.005, up_down=0.2, w_max=1.0, w_min=-0.5, dw_min_std=0.0)


def _simulate(device, directions, w0: float = 0.0) -> torch.Tensor:
    from aimc_lab.devices.fitting import simulate_response

    return simulate_response(device, directions, w0=w0)


# --- 1. The symmetry point --------------------------------------------------------------------------

def _check_symmetry_point(answer: Any):
    if answer is None:
        return wrong(_NO_ANSWER)
    bad = expect_number(answer, "w*")
    if bad is not None:
        return bad
    alternating = torch.tensor([1.0, -1.0]).repeat(400)
    # the device ends oscillating by one step around w*: the mean of the last two reads, from two starts
    ends = [float(_simulate(_device(), alternating, w0)[-2:].mean()) for w0 in (-0.4, 0.9)]
    expected = sum(ends) / len(ends)
    value = float(answer)
    if abs(value - expected) <= 0.01:
        return right(f"w* = {value:+.3f}; 800 alternating pulses from two starts end at "
                     + ", ".join(f"{e:+.3f}" for e in ends) + ". Where the up step Δ⁺(1 − w/b_max) equals the "
                     "down step Δ⁻(1 − w/b_min), equal numbers of up and down pulses cancel.")
    if abs(value + expected) <= 0.01:
        return wrong(f"{value:+.3f} has the wrong sign: this device's up step is the larger one (up_down > 0), so "
                     "its steps balance where the up step has shrunk, above 0.")
    return wrong(f"w* = {value:+.3f} is off by {abs(value - expected):.3f} (expected within 0.01). With up_down = +0.2 "
                 "the *down* step shrinks: Δ⁺ = dw_min, Δ⁻ = dw_min·(1 − 0.2). Solve Δ⁺(1 − w/b_max) = "
                 "Δ⁻(1 − w/b_min) for w.")


# --- 2. Pulses to reach a weight --------------------------------------------------------------------

def _check_pulses_to_half(answer: Any):
    if answer is None:
        return wrong(_NO_ANSWER)
    bad = expect_number(answer, "the number of pulses")
    if bad is not None:
        return bad
    trace = _simulate(_device(), torch.ones(1000))
    reached = (trace >= 0.5).nonzero()
    expected = int(reached[0]) if len(reached) else -1
    value = float(answer)
    if value != int(value):
        return wrong(f"a number of pulses is a whole number; got {value:g}.")
    linear = math.ceil(0.5 / 0.005)
    if abs(value - expected) <= 1:
        return right(f"{expected} pulses (a constant step would need {linear}): each pulse moves the device by "
                     "dw_min·(1 − w/b_max), smaller and smaller on the way up, so w(n) = b_max(1 − (1 − dw_min/b_max)^n).")
    if value == linear:
        return wrong(f"{linear} pulses would do it with a constant step of 0.005; a soft-bounds step shrinks as w "
                     "grows. Replay the pulses (simulate_response) or use w(n) = b_max(1 − (1 − dw_min/b_max)^n).")
    return wrong(f"{int(value)} pulses is {'too many' if value > expected else 'too few'}: count the first pulse "
                 "after which w >= 0.5, starting from w = 0.")


# --- 3. The mixed-precision transfer ----------------------------------------------------------------

def _check_mixed_precision(answer: Any):
    if answer is None:
        return wrong(_NO_ANSWER)
    if not callable(answer):
        return wrong(f"answer a function transfer(chi, eps) -> (pulses, chi_left); got {type(answer).__name__}.")
    chi = torch.tensor([0.0237, -0.0237, 0.0099, -0.0301, 0.0, 0.05])
    eps = 0.01
    n = torch.trunc(chi / eps)
    left = chi - n * eps
    try:
        got = answer(chi.clone(), eps)
        pulses, rest = (torch.as_tensor(v, dtype=torch.float64) for v in got)
    except Exception as err:  # the student's function failed or returned something else
        return wrong(f"transfer(chi, eps) should return two tensors (pulses, chi_left); it gave "
                     f"{type(err).__name__}: {err}.")
    if pulses.shape != chi.shape or rest.shape != chi.shape:
        return wrong(f"both results should have chi's shape {tuple(chi.shape)}; got {tuple(pulses.shape)} and "
                     f"{tuple(rest.shape)}.")
    if torch.allclose(pulses, torch.floor(chi / eps).double()) and not torch.allclose(pulses, n.double()):
        return wrong("negative χ rounds the wrong way: floor(−2.37) = −3 writes one pulse too many; the "
                     "transfer truncates toward zero (torch.trunc), so −0.0237 gives −2 pulses and keeps −0.0037.")
    if not torch.allclose(pulses, n.double()):
        return wrong(f"pulses for χ = {chi.tolist()} with ε = {eps}: expected {n.tolist()}, got {pulses.tolist()}.")
    if not torch.allclose(rest, left.double(), atol=1e-7):
        return wrong(f"the pulses are right, but χ keeps {rest.tolist()}; it should keep χ − n·ε = "
                     f"{[round(v, 6) for v in left.tolist()]} (what was not written stays in the accumulator).")
    return right("n = trunc(χ/ε) whole device steps go to the array and χ − n·ε stays in digital memory, so no "
                 "gradient is ever lost, only delayed: that is why mixed precision comes close to floating point, "
                 "at the price of a digital matrix as large as the weights.")


EXERCISES = ExerciseSet("03 · Training in memory", [
    Exercise("symmetry_point",
             "Where is the symmetry point w* of pulsed.SoftBounds(dw_min=0.005, up_down=0.2, w_max=1.0, "
             "w_min=-0.5, dw_min_std=0.0)?",
             "Either replay many alternating pulses as in section 2 (simulate_response(device, "
             "torch.tensor([1.0, -1.0]).repeat(500))[-1]) or solve Δ⁺(1 − w/b_max) = Δ⁻(1 − w/b_min) with "
             "Δ⁺ = dw_min and Δ⁻ = dw_min·(1 − up_down) (up_down > 0 shrinks the down step).",
             _check_symmetry_point),
    Exercise("pulses_to_half",
             "Starting from w = 0, after how many up pulses does that same device first reach w >= 0.5?",
             "trace = simulate_response(device, torch.ones(500)); int((trace >= 0.5).nonzero()[0])",
             _check_pulses_to_half),
    Exercise("mixed_precision",
             "Write the mixed-precision transfer: a function transfer(chi, eps) that takes the digital "
             "accumulator χ (a tensor) and the device step ε and returns (pulses, chi_left): the signed number "
             "of whole steps written to each device, and what stays in χ.",
             "docs/physics.md §4: n = trunc(χ/ε) (toward zero, also for negative χ), χ ← χ − n·ε.",
             _check_mixed_precision),
])

check = EXERCISES.check
hint = EXERCISES.hint
question = EXERCISES.question
