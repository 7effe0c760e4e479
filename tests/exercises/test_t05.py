"""Tutorial 05's exercises: every check is right on the reference solution and wrong, with a helpful
message, on typical wrong answers (and on None, the unanswered notebook)."""

import math

import pytest
import torch

import aimc_lab as al
from aimc_lab.devices.compensation import DriftCompensation, PerColumnDriftCompensation
from aimc_lab.exercises import t05


class ConstantNoise(al.NoiseModel):
    def programming_noise(self, g_target, generator):
        xi = torch.randn(g_target.shape, generator=generator, dtype=g_target.dtype)
        return (g_target + xi).clamp(min=0)


class RelativeNoise(al.NoiseModel):  # typical wrong answer: 4 % of g
    def programming_noise(self, g_target, generator):
        xi = torch.randn(g_target.shape, generator=generator)
        return (g_target * (1 + 0.04 * xi)).clamp(min=0)


class GlobalRNoise(al.NoiseModel):  # typical wrong answer: torch's global RNG
    def programming_noise(self, g_target, generator):
        return (g_target + torch.randn(g_target.shape)).clamp(min=0)


class Unclamped(al.NoiseModel):
    def programming_noise(self, g_target, generator):
        return g_target + torch.randn(g_target.shape, generator=generator)


class RMS(DriftCompensation):
    def reduce(self, readout):
        return readout.pow(2).mean(dim=0).sqrt()


class GlobalRMS(DriftCompensation):
    def reduce(self, readout):
        return readout.pow(2).mean().sqrt()


def scaled_handler(module, config):
    layer = al.AnalogLinear(module.linear.in_features, module.linear.out_features, config=config)
    layer.set_weights(module.scale * module.linear.weight.detach(), module.scale * module.linear.bias.detach())
    return layer


def unscaled_handler(module, config):
    layer = al.AnalogLinear(module.linear.in_features, module.linear.out_features, config=config)
    layer.set_weights(module.linear.weight.detach(), module.linear.bias.detach())
    return layer


def bias_unscaled_handler(module, config):
    layer = al.AnalogLinear(module.linear.in_features, module.linear.out_features, config=config)
    layer.set_weights(module.scale * module.linear.weight.detach(), module.linear.bias.detach())
    return layer


def digital_handler(module, config):
    return module


REFERENCE = {
    "constant_noise": ConstantNoise(),
    "rms_compensation": RMS(),
    "scaled_handler": scaled_handler,
    "symmetry_point": math.atanh(1 / 9) / 2.0,
}

WRONG = {  # (answer, a phrase the feedback must contain)
    "constant_noise": [(RelativeNoise(), "scale with g_T"), (GlobalRNoise(), "generator"),
                       (Unclamped(), "clamp"), (ConstantNoise, "is the class"), (al.NoiseModel(), "std")],
    "rms_compensation": [(GlobalRMS(), "per output column"), (PerColumnDriftCompensation(), "root-mean-square"),
                         (RMS, "is the class"), ("rms", "DriftCompensation")],
    "scaled_handler": [(unscaled_handler, "lost the scale"), (bias_unscaled_handler, "bias"),
                       (digital_handler, "without analog tiles"), (3, "function")],
    "symmetry_point": [(0.0, "symmetric device"), (-math.atanh(1 / 9) / 2.0, "wrong sign"), (0.08, "too large"),
                       ("w*", "number")],
}


def test_every_exercise_has_a_reference_and_wrong_answers():
    assert set(t05.EXERCISES.names) == set(REFERENCE) == set(WRONG)
    assert len(t05.EXERCISES.names) >= 3


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_solution_is_right(name):
    feedback = t05.check(name, REFERENCE[name])
    assert feedback.correct, feedback.message


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_answers_are_wrong_with_a_reason(name):
    for answer, phrase in WRONG[name]:
        feedback = t05.check(name, answer)
        assert not feedback.correct, (answer, feedback.message)
        assert phrase in feedback.message, (answer, feedback.message)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_unanswered_gets_not_yet_and_hints_exist(name):
    feedback = t05.check(name, None)
    assert not feedback.correct and "no answer yet" in feedback.message
    assert t05.question(name) and "Hint" in str(t05.hint(name))


def test_symmetry_point_matches_the_library_bisection():
    """The closed form the check uses agrees with DeviceArray.symmetry_point on the notebook's device."""
    import dataclasses

    from aimc_lab.devices import pulsed

    # not registered, and named apart: the config registry is keyed by class name, and registering a
    # second "TanhStep" would replace tests/test_extensions.py's in every later test of the session
    @dataclasses.dataclass(frozen=True)
    class BisectedTanhStep(pulsed.PulsedDevice):
        kappa: float = 2.0

        def step(self, w, up, dw_up, dw_down, b_max, b_min):
            t = torch.tanh(self.kappa * w)
            return torch.where(up, dw_up * (1 - t), dw_down * (1 + t))

    dev = BisectedTanhStep(up_down=0.2, kappa=2.0, dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0)
    w_star = float(pulsed.DeviceArray(dev, 1, 1, seed=0).symmetry_point())
    assert w_star == pytest.approx(t05.tanh_symmetry_point(0.2, 2.0), rel=1e-4)
    assert t05.check("symmetry_point", w_star).correct
