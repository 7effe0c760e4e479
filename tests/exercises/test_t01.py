"""Tutorial 01's exercises: every check accepts the reference solution and rejects typical wrong answers
with a message that says why; an unanswered cell (None) gets "not yet", never an exception."""

from dataclasses import replace

import numpy as np
import pytest
import torch

import aimc_lab as al
from aimc_lab.exercises import t01


@pytest.fixture(scope="module")
def experiment():
    """The notebook's reference experiment at its fast size (what the checks use)."""
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(256, 256, generator=g) * 0.246).clamp(-1, 1)
    x = torch.rand(128, 256, generator=g) * 2 - 1
    x[torch.rand(128, 256, generator=g) < 0.5] = 0.0
    ideal = x @ w.T
    clean = al.IOParameters(inp_res=0, out_res=0, out_noise=0.0, out_bound=1e6, bound_management="none")

    def rel_error(io):
        y = al.analog_mvm(x, w, io, generator=torch.Generator().manual_seed(1))
        return float((y - ideal).norm() / ideal.norm())

    return clean, rel_error


def test_every_exercise_has_a_question_and_hint():
    assert len(t01.EXERCISES.names) >= 3
    for name in t01.EXERCISES.names:
        assert t01.question(name) and "click to open" in t01.hint(name)._repr_html_()
        feedback = t01.check(name, None)
        assert not feedback and "no answer yet" in feedback.message


def test_dac_factor(experiment):
    clean, rel_error = experiment
    err_dac = [rel_error(replace(clean, inp_res=1 / (2 ** b - 2))) for b in range(2, 11)]
    factor = float(np.exp(np.mean(np.log(np.array(err_dac[:-1]) / np.array(err_dac[1:])))))
    assert t01.check("dac_factor", factor)
    inverse = t01.check("dac_factor", 1 / factor)
    assert not inverse and "shrinks" in inverse.message
    assert not t01.check("dac_factor", 4.0)
    assert "should be a number" in t01.check("dac_factor", "two").message


def test_adc_bound(monkeypatch, experiment):
    monkeypatch.setenv("AIMC_LAB_FAST", "1")
    clean, rel_error = experiment
    bounds = [2, 4, 6, 8, 10, 12, 20]
    best = min(bounds, key=lambda b: rel_error(replace(clean, out_res=1 / 254, out_bound=b)))
    assert t01.check("adc_bound", best)
    small, large = t01.check("adc_bound", 2), t01.check("adc_bound", 60)
    assert not small and "clips" in small.message
    assert not large and "wastes resolution" in large.message
    assert "positive" in t01.check("adc_bound", -3).message


def test_read_noise(experiment):
    clean, rel_error = experiment
    answer = 100 * rel_error(replace(clean, w_noise=0.0175, w_noise_type="pcm_read"))
    assert t01.check("read_noise", answer)
    fraction = t01.check("read_noise", answer / 100)
    assert not fraction and "percentage" in fraction.message
    assert not t01.check("read_noise", 13.0)


def test_pcm_source():
    feedback = t01.check("pcm_source", "programming")
    assert feedback and "without programming" in feedback.message
    assert not t01.check("pcm_source", "drift")
    assert "one of" in t01.check("pcm_source", 3).message
