"""Tutorial 04's exercises: every check is right on the reference solution and wrong, with a helpful
message, on typical wrong answers (and on None, the unanswered notebook)."""

import dataclasses
import time

import pytest
import torch

import aimc_lab as al
from aimc_lab.exercises import t04
from aimc_lab.train import calibrate_input_ranges


# ----------------------------------------------------------------------------------------- references

def my_range(x, q):
    return torch.quantile(x.abs().flatten(), q)


def remap(w):
    c = w.abs().amax(dim=1)
    return w / c.unsqueeze(1), c


ADC_STEP = 2 * 10.0 / 254


def my_config():
    return dataclasses.replace(al.presets.standard_hwa(modifier_std=0.1),
                               clip=al.ClipParameters(kind="layer_gaussian", sigma=2.5))


REFERENCES = {"calibrated_range": my_range, "remap_channelwise": remap, "adc_step": ADC_STEP,
              "hwa_config": my_config()}


def test_every_exercise_has_a_reference_and_a_question_and_hint():
    assert set(t04.EXERCISES.names) == set(REFERENCES)
    for name in t04.EXERCISES.names:
        assert t04.question(name) and "Hint" in str(t04.hint(name))


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_solution_is_right_and_fast(name):
    start = time.perf_counter()
    feedback = t04.check(name, REFERENCES[name])
    assert feedback.correct, feedback.message
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_unanswered_is_not_yet_without_an_exception(name):
    feedback = t04.check(name, None)
    assert not feedback.correct and "no answer yet" in feedback.message


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_garbage_of_any_type_gets_feedback(name):
    for answer in ("ten", [1, 2], object(), lambda *a: "x"):
        feedback = t04.check(name, answer)
        assert not feedback.correct and feedback.message


def test_reference_range_is_what_the_library_calibrates():
    # the exercise's statement agrees with calibrate_input_ranges on one tile without all-zero rows
    layer = al.AnalogLinear(16, 4, config=al.presets.standard_hwa())
    x = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    ranges = calibrate_input_ranges(layer, x, quantile=0.99, max_samples=1000)
    assert float(ranges["tile"][0]) == pytest.approx(float(my_range(x, 0.99)), rel=1e-5)


def test_reference_remap_matches_the_tile():
    w = torch.randn(5, 9)
    tile = al.AnalogTile(5, 9)
    tile.set_weights(w)
    tile.remap("channelwise")
    w_tile, scale = remap(w)
    assert torch.allclose(tile.weight, w_tile, atol=1e-6) and torch.allclose(tile.out_scale, scale, atol=1e-6)


@pytest.mark.parametrize("answer, words", [
    (lambda x, q: torch.quantile(x.flatten(), q), "quantile of |x|"),                  # signed quantile
    (lambda x, q: x.abs().max(), "quantile q of |x|"),                                 # the max
    (lambda x, q: torch.quantile(x.abs(), q, dim=0), "one range"),                     # per column
    (lambda x, q: None, "returned None"),
    (my_range(torch.ones(3, 3), 0.5), "should be a function"),                         # a value, not a function
])
def test_calibrated_range_wrong_answers(answer, words):
    feedback = t04.check("calibrated_range", answer)
    assert not feedback.correct and words in feedback.message


def layerwise(w):
    c = w.abs().max()
    return w / c, c.expand(w.shape[0])


@pytest.mark.parametrize("answer, words", [
    (layerwise, "layer-wise remap"),
    (lambda w: (w / w.abs().amax(dim=1, keepdim=True), torch.ones(w.shape[0])), "does not give w back"),
    (lambda w: w / w.abs().amax(dim=1, keepdim=True), "pair of tensors"),
    (lambda w: (w.T, w.abs().amax(dim=1)), "shapes"),
])
def test_remap_wrong_answers(answer, words):
    feedback = t04.check("remap_channelwise", answer)
    assert not feedback.correct and words in feedback.message


@pytest.mark.parametrize("answer, words", [(10 / 254, "half the step"), (1 / 254, "too small"),
                                          (20, "too large"), (float("nan"), "finite")])
def test_adc_step_wrong_answers(answer, words):
    feedback = t04.check("adc_step", answer)
    assert not feedback.correct and words in feedback.message


def test_adc_step_accepts_a_tensor():
    assert t04.check("adc_step", torch.tensor(ADC_STEP)).correct


@pytest.mark.parametrize("answer, words", [
    (al.presets.standard_hwa(modifier_std=0.1), "clip is kind='fixed'"),
    (dataclasses.replace(al.presets.standard_hwa(), clip=al.ClipParameters(kind="layer_gaussian", sigma=2.5)),
     "std_dev=0.0"),
    (dataclasses.replace(al.AnalogConfig(), modifier=al.WeightModifierParameters(kind="add_normal", std_dev=0.1),
                         clip=al.ClipParameters(kind="layer_gaussian", sigma=2.5)), "differ from the standard preset"),
    (al.presets.standard_hwa, "should be an AnalogConfig"),
])
def test_hwa_config_wrong_answers(answer, words):
    feedback = t04.check("hwa_config", answer)
    assert not feedback.correct and words in feedback.message
