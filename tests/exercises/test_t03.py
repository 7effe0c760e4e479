"""Tutorial 03's exercises: reference solutions are right, typical mistakes are wrong and say why."""

import torch

from aimc_lab.devices import pulsed
from aimc_lab.devices.fitting import simulate_response
from aimc_lab.exercises import t03

DEVICE = pulsed.SoftBounds(dw_min=0.005, up_down=0.2, w_max=1.0, w_min=-0.5, dw_min_std=0.0)


def test_every_exercise_has_a_question_and_hint():
    assert len(t03.EXERCISES.names) >= 3
    for name in t03.EXERCISES.names:
        assert t03.question(name) and t03.hint(name).text
        assert "no answer yet" in t03.check(name, None).message


def test_symmetry_point():
    up, down = DEVICE.dw_min, DEVICE.dw_min * (1 - DEVICE.up_down)
    formula = (up - down) / (up / DEVICE.w_max - down / DEVICE.w_min)
    assert t03.check("symmetry_point", formula)
    trace = simulate_response(DEVICE, torch.tensor([1.0, -1.0]).repeat(500))
    assert t03.check("symmetry_point", float(trace[-2:].mean()))
    sign = t03.check("symmetry_point", -formula)
    assert not sign and "wrong sign" in sign.message
    assert not t03.check("symmetry_point", 0.0)


def test_pulses_to_half():
    trace = simulate_response(DEVICE, torch.ones(500))
    answer = int((trace >= 0.5).nonzero()[0])
    assert t03.check("pulses_to_half", answer)
    linear = t03.check("pulses_to_half", 100)          # 0.5 / dw_min: a constant step
    assert not linear and "shrinks" in linear.message
    assert "whole number" in t03.check("pulses_to_half", 12.5).message


def test_mixed_precision():
    def transfer(chi, eps):
        n = torch.trunc(chi / eps)
        return n, chi - n * eps

    assert t03.check("mixed_precision", transfer)
    floor = t03.check("mixed_precision", lambda c, e: (torch.floor(c / e), c - torch.floor(c / e) * e))
    assert not floor and "trunc" in floor.message
    forgets = t03.check("mixed_precision", lambda c, e: (torch.trunc(c / e), torch.zeros_like(c)))
    assert not forgets and "stays in the accumulator" in forgets.message
    assert "two tensors" in t03.check("mixed_precision", lambda c, e: 3).message
