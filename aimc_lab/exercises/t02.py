"""Exercises of tutorial 02 · PCM devices, drift, and a network over a year (docs/physics.md §2).

The expected values come from the library's own PCM model (``aimc_lab.devices.pcm``) with its
published defaults, so the checks follow the model if its defaults change.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from aimc_lab.exercises import Exercise, ExerciseSet, expect_close, expect_number, right, wrong

__all__ = ["EXERCISES", "check", "hint", "question"]

_NO_ANSWER = "no answer yet: replace None by your answer and run the cell again."
_DAY = 86400.0
_YEAR = 3.1536e7


def _params():
    from aimc_lab import NoiseModelParameters

    return NoiseModelParameters(kind="pcm")


# --- 1. Drift after one day -------------------------------------------------------------------------

def _check_drift_one_day(answer: Any):
    from aimc_lab.devices import pcm

    if answer is None:
        return wrong(_NO_ANSWER)
    bad = expect_number(answer, "the conductance kept (%)")
    if bad is not None:
        return bad
    params = _params()
    nu = float(pcm.drift_exponent_stats(torch.tensor(params.g_max), params)[0])
    expected = 100 * ((_DAY + params.t_0) / params.t_0) ** -nu
    value = float(answer)
    if abs(100 * value - expected) <= 0.01 * expected:
        return wrong(f"{value:g} looks like a fraction: the question asks for percent (about {expected:.1f} %).")
    return expect_close(value, expected, rel=0.01, what="the conductance kept (%)",
                        why=f"With the mean exponent ν = {nu:.4f} at g_max, G_D/G_P = ((t + t₀)/t₀)^(−ν) at "
                            "t = 1 day: "
                            f"{100 - expected:.0f} % of the conductance is gone after a day, and drift goes on.")


# --- 2. The target with the smallest relative programming noise -------------------------------------

def _check_least_noisy_target(answer: Any):
    from aimc_lab.devices import pcm

    if answer is None:
        return wrong(_NO_ANSWER)
    bad = expect_number(answer, "the target conductance (µS)")
    if bad is not None:
        return bad
    params = _params()
    g = torch.linspace(0.05, 1.0, 400, dtype=torch.float64) * params.g_max
    relative = pcm.programming_noise_std(g.clone(), params) / g
    best = float(g[int(relative.argmin())])
    value = float(answer)
    if not 0 < value <= params.g_max:
        return wrong(f"a target conductance lies in (0, g_max = {params.g_max:g} µS]; got {value:g}.")
    mine = float(pcm.programming_noise_std(torch.tensor(value, dtype=torch.float64), params) / value)
    low = float(relative.min())
    if mine <= 1.02 * low:
        return right(f"σ_P/G_T is smallest at G_T ≈ {best:.3g} µS ({100 * low:.1f} %); at 2.5 µS it is "
                     f"{100 * float(pcm.programming_noise_std(torch.tensor(2.5), params)) / 2.5:.0f} %. σ_P has a "
                     "floor c₀ that does not shrink with the target, so small weights are relatively the noisiest: "
                     "map the weights so that the largest ones use the full range.")
    return wrong(f"at {value:g} µS σ_P/G_T is {100 * mine:.1f} %, more than the smallest value on the "
                 f"curve ({100 * low:.1f} %). Plot σ_P / G_T, not σ_P.")


# --- 3. Global drift compensation as a function -----------------------------------------------------

def _check_compensation(answer: Any):
    if answer is None:
        return wrong(_NO_ANSWER)
    if not callable(answer):
        return wrong(f"answer a function alpha(ref_readout, readout_t) -> float; got {type(answer).__name__}.")
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(64, 32, generator=g)                   # [K, N] read-out right after programming
    cases = [("a drifted read-out", ref * 0.6 + 0.02 * torch.randn(64, 32, generator=g)),
             ("a read-out with the sign of some outputs flipped", ref * -0.5),
             ("an all-zero read-out (the floor 1e-4)", torch.zeros(64, 32))]
    for what, now in cases:
        expected = float(ref.abs().mean() / now.abs().mean().clamp(min=1e-4))
        try:
            got = float(answer(ref.clone(), now.clone()))
        except Exception as err:  # the student's function failed: say where
            return wrong(f"your function raised {type(err).__name__}: {err} (on {what}).")
        if not math.isfinite(got) or abs(got - expected) > 1e-4 * abs(expected):
            return wrong(f"on {what} it returned {got:.6g}; expected {expected:.6g} = mean|ref| / "
                         "max(mean|F(W(t); I)|, 1e-4). Mean of the absolute values, ratio the right way up, and "
                         "a floor so a dead tile does not divide by zero.")
    return right("α(t) = mean|F(W_P; I)| / max(mean|F(W(t); I)|, 1e-4), as docs/physics.md §2 states: one number "
                 "per tile that undoes the common decay, never the device-to-device spread of ν.")


# --- 4. How much read noise grows in a year ---------------------------------------------------------

def _check_read_noise_growth(answer: Any):
    from aimc_lab.devices import pcm

    if answer is None:
        return wrong(_NO_ANSWER)
    bad = expect_number(answer, "the growth factor")
    if bad is not None:
        return bad
    params = _params()
    g_p = torch.tensor([10.0], dtype=torch.float64)

    def relative(t_inf: float) -> float:
        g_d = g_p * ((t_inf + params.t_0) / params.t_0) ** -0.05
        return float(pcm.read_noise_std(g_p, g_d, t_inf + params.t_0, params) / g_d)

    expected = relative(_YEAR) / relative(1.0)
    return expect_close(answer, expected, rel=0.03, what="the growth factor of σ_R/G_D from 1 s to 1 year",
                        why="σ_R/G_D grows only like sqrt(ln((t + t_read)/(2 t_read))): 1/f noise accumulates "
                            "over decades of time, so a year adds less than the first second did. What falls "
                            "over a year is G_D itself, and with it the signal.")


EXERCISES = ExerciseSet("02 · PCM devices, drift, and a network over a year", [
    Exercise("drift_one_day",
             "What percentage of its programmed conductance does a device at g_max keep one day after "
             "programming, with the mean drift exponent of that target?",
             "nu = float(pcm.drift_exponent_stats(torch.tensor(g_max), params)[0]); then "
             "100 * ((t + t0) / t0) ** -nu with t = 86400 s and t0 = params.t_0.",
             _check_drift_one_day),
    Exercise("least_noisy_target",
             "At which target conductance G_T (µS) is programming *relatively* most precise, i.e. where is "
             "σ_P / G_T smallest?",
             "Divide the curve of section 1 by g_t (skip g_t = 0) and find the argmin: "
             "g_t[1:][(sigma_p[1:] / g_t[1:]).argmin()].",
             _check_least_noisy_target),
    Exercise("compensation",
             "Write global drift compensation: a function alpha(ref_readout, readout_t) that takes the tile's "
             "read-outs of the identity input after programming and at time t (tensors [K, N]) and returns "
             "the factor every output is multiplied by.",
             "Section 4's formula: the ratio of the mean absolute read-outs, then guard the denominator with "
             "a floor of 1e-4 (torch's .clamp(min=...)).",
             _check_compensation),
    Exercise("read_noise_growth",
             "By what factor does the relative read noise σ_R/G_D of a device grow between 1 s and 1 year "
             "after programming?",
             "Take the 'G_P = 10 µS' curve of section 3 (`curves`) at t = 1 s and at t = 1 year, or compute "
             "pcm.read_noise_std for both times (remember t includes t₀ = 20 s).",
             _check_read_noise_growth),
])

check = EXERCISES.check
hint = EXERCISES.hint
question = EXERCISES.question
