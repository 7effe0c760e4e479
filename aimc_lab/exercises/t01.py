"""Exercises of tutorial 01 · the analog matrix-vector multiply (docs/physics.md §1, §2).

Every check that needs numbers computes them here, on the tutorial's reference experiment (W ~ N(0, 0.246²) clipped to ±1, inputs uniform in ±1 with half of them zero; 256 input vectors),
so a student's answer is compared with the simulator, not with a stored value. The checks use a
256×256 tile and 128 input vectors (the tutorial's fast size) to stay within a second; the output-bound
check uses the tile size of the notebook (512 unless ``AIMC_LAB_FAST=1``), since the best bound grows
with the number of inputs.
"""

from __future__ import annotations

import os
from dataclasses import replace
from functools import lru_cache
from typing import Any

import torch

from aimc_lab.exercises import Exercise, ExerciseSet, expect_close, expect_number, right, wrong

__all__ = ["EXERCISES", "check", "hint", "question"]

_NO_ANSWER = "no answer yet: replace None by your answer and run the cell again."


@lru_cache(maxsize=2)
def _experiment(size: int = 256, n_vectors: int = 128):
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(size, size, generator=g) * 0.246).clamp(-1, 1)     # [N, K]
    x = torch.rand(n_vectors, size, generator=g) * 2 - 1                # [M, K]
    x[torch.rand(n_vectors, size, generator=g) < 0.5] = 0.0
    return w, x, x @ w.T


def _clean():
    from aimc_lab import IOParameters

    return IOParameters(inp_res=0, out_res=0, out_noise=0.0, out_bound=1e6, bound_management="none")


def _notebook_size() -> int:
    return 256 if os.environ.get("AIMC_LAB_FAST", "0") == "1" else 512


def _mvm_error(io, size: int = 256) -> float:
    from aimc_lab import analog_mvm

    w, x, ideal = _experiment(size)
    y = analog_mvm(x, w, io, generator=torch.Generator().manual_seed(1))
    return float((y - ideal).norm() / ideal.norm())


# --- 1. DAC bits ------------------------------------------------------------------------------------

def _check_dac_factor(answer: Any):
    if answer is None:
        return wrong(_NO_ANSWER)
    bad = expect_number(answer, "the factor per bit")
    if bad is not None:
        return bad
    value = float(answer)
    if 0 < value < 1:
        return wrong(f"{value:.3g} is below 1: that is how much the error is *multiplied* by per bit. The question "
                     "asks by what factor it *shrinks*: err(b) / err(b + 1).")
    return expect_close(value, 2.0, rel=0.2, what="the factor per bit",
                        why="Each bit halves the DAC step Δ_in, and the rounding error is uniform within a step, so "
                            "its standard deviation Δ_in/√12 halves too.")


# --- 2. ADC output bound ----------------------------------------------------------------------------

_BOUNDS = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 14.0, 16.0, 24.0, 40.0, 100.0]


@lru_cache(maxsize=128)
def _adc8_error(bound: float, size: int) -> float:
    return _mvm_error(replace(_clean(), out_res=1 / 254, out_bound=bound), size)


def _check_adc_bound(answer: Any):
    if answer is None:
        return wrong(_NO_ANSWER)
    bad = expect_number(answer, "the output bound")
    if bad is not None:
        return bad
    bound = float(answer)
    if not 0 < bound <= 1e4:
        return wrong(f"the output bound is a positive number of normalized output units (up to 1e4); got {bound:g}.")
    size = _notebook_size()
    best_bound = min(_BOUNDS, key=lambda b: _adc8_error(b, size))
    best, yours = _adc8_error(best_bound, size), _adc8_error(bound, size)
    _, _, ideal = _experiment(size)
    largest = float(ideal.abs().max())
    if yours <= 1.25 * best:
        return right(f"±{bound:g} gives {100 * yours:.2f} % (the best bound of a sweep, ±{best_bound:g}, gives "
                     f"{100 * best:.2f} %). The largest |Wx| is {largest:.1f}, but only a few outputs come near it: "
                     "a bound a little below it clips those few and spends the 8 bits on the values that occur.")
    if bound < best_bound:
        return wrong(f"±{bound:g} gives {100 * yours:.2f} % (a better bound gives {100 * best:.2f} %): too small, "
                     f"it clips many outputs (the largest |Wx| is {largest:.1f}).")
    return wrong(f"±{bound:g} gives {100 * yours:.2f} % (a better bound gives {100 * best:.2f} %): too large, the "
                 "ADC step 2·b_out/254 grows with the bound and wastes resolution on outputs that never occur.")


# --- 3. Weight read noise alone ---------------------------------------------------------------------

def _check_read_noise(answer: Any):
    if answer is None:
        return wrong(_NO_ANSWER)
    bad = expect_number(answer, "the relative error (%)")
    if bad is not None:
        return bad
    expected = 100 * _mvm_error(replace(_clean(), w_noise=0.0175, w_noise_type="pcm_read"))
    value = float(answer)
    if abs(100 * value - expected) <= 0.15 * expected:
        return wrong(f"{value:g} looks like a fraction, not a percentage: multiply by 100 (about {expected:.2g} %).")
    return expect_close(value, expected, rel=0.15, what="the relative error (%)",
                        why="σ_w = 0.0175 alone costs about that; the paper's 13 % comes mostly from elsewhere.")


# --- 4. Which PCM noise source dominates at 1 s -----------------------------------------------------

_SOURCES = {"programming": "prog_noise_scale", "drift": "drift_scale", "read": "read_noise_scale"}


@lru_cache(maxsize=1)
def _pcm_errors():
    """Relative error of the standard preset + PCM at 1 s, with all sources and with each one off."""
    from aimc_lab import AnalogTile, presets
    from aimc_lab.config import replace_path

    w, x, ideal = _experiment()
    base = replace_path(presets.standard_hwa(), "input_range.enable", False)

    def error(config) -> float:
        tile = AnalogTile(w.shape[0], w.shape[1], config)
        tile.set_weights(w)
        tile.eval()
        tile.generator = torch.Generator().manual_seed(11)
        tile.program(torch.Generator().manual_seed(12))
        tile.drift(1.0, torch.Generator().manual_seed(13))
        with torch.no_grad():
            return float((tile(x) - ideal).norm() / ideal.norm())

    errors = {"all": error(base)}
    for name, field in _SOURCES.items():
        errors[name] = error(replace_path(base, f"noise_model.{field}", 0.0))
    return errors


def _check_pcm_source(answer: Any):
    if answer is None:
        return wrong(_NO_ANSWER)
    if not isinstance(answer, str) or answer.strip().lower() not in _SOURCES:
        return wrong(f"answer one of {sorted(_SOURCES)} (a string); got {answer!r:.60}.")
    errors = _pcm_errors()
    gains = {name: errors["all"] - errors[name] for name in _SOURCES}
    main = max(gains, key=gains.get)
    table = ", ".join(f"without {name}: {100 * errors[name]:.1f} %" for name in _SOURCES)
    said = answer.strip().lower()
    text = f"All sources: {100 * errors['all']:.1f} %; {table}."
    if said == main:
        return right(f"{text} Programming noise is drawn once and never averages out; at 1 s drift has barely "
                     "started (t₀ = 20 s) and global compensation removes most of its common part."
                     if main == "programming" else text)
    return wrong(f"switching {said} noise off lowers the error less than switching {main} noise off. {text}")


EXERCISES = ExerciseSet("01 · The analog matrix-vector multiply", [
    Exercise("dac_factor",
             "By what factor does the DAC-only error shrink per extra DAC bit? Compute it from `err_dac` "
             "(e.g. the geometric mean of err_dac[i] / err_dac[i + 1] over neighbouring bits).",
             "err_dac[i] / err_dac[i + 1] for each i, then their geometric mean: "
             "np.exp(np.mean(np.log(np.array(err_dac[:-1]) / np.array(err_dac[1:])))).",
             _check_dac_factor),
    Exercise("adc_bound",
             "Which output bound b_out gives the smallest error with an 8-bit ADC (out_res = 1/254) on this "
             "notebook's experiment (everything else clean)? Answer a number.",
             "Sweep it: for b in (2, 4, 6, 8, 10, 12, 20): rel_error(analog(replace(clean, out_res=1/254, "
             "out_bound=b))). Compare with the largest |Wx| printed above.",
             _check_adc_bound),
    Exercise("read_noise",
             "How large, in percent, is the relative error caused by PCM read noise σ_w = 0.0175 alone "
             "(everything else clean)?",
             "100 * rel_error(analog(replace(clean, w_noise=0.0175, w_noise_type='pcm_read')))",
             _check_read_noise),
    Exercise("pcm_source",
             "Which PCM noise source adds most of the error at 1 s: 'programming', 'drift' or 'read'?",
             "Rebuild the tile of section 11 three times, each with one of "
             "al.config.replace_path(config, 'noise_model.prog_noise_scale', 0.0) (or drift_scale, "
             "read_noise_scale), and compare the errors.",
             _check_pcm_source),
])

check = EXERCISES.check
hint = EXERCISES.hint
question = EXERCISES.question
