"""Tutorial 02's exercises: reference solutions are right, typical mistakes are wrong and say why."""

import torch

import aimc_lab as al
from aimc_lab.devices import pcm
from aimc_lab.exercises import t02

PARAMS = al.NoiseModelParameters(kind="pcm")


def test_every_exercise_has_a_question_and_hint():
    assert len(t02.EXERCISES.names) >= 3
    for name in t02.EXERCISES.names:
        assert t02.question(name) and t02.hint(name).text
        assert "no answer yet" in t02.check(name, None).message


def test_drift_one_day():
    nu = float(pcm.drift_exponent_stats(torch.tensor(PARAMS.g_max), PARAMS)[0])
    answer = 100 * ((86400 + PARAMS.t_0) / PARAMS.t_0) ** -nu
    assert t02.check("drift_one_day", answer)
    assert "percent" in t02.check("drift_one_day", answer / 100).message
    assert not t02.check("drift_one_day", 100 * ((86400 + 20) / 20) ** -0.1)   # the wrong exponent


def test_least_noisy_target():
    g_t = torch.linspace(0, PARAMS.g_max, 101)
    sigma_p = pcm.programming_noise_std(g_t.clone(), PARAMS)
    answer = float(g_t[1:][(sigma_p[1:] / g_t[1:]).argmin()])
    assert t02.check("least_noisy_target", answer)
    wrong = t02.check("least_noisy_target", 2.5)   # a small target: σ_P is smallest there, not σ_P/G_T
    assert not wrong and "σ_P / G_T" in wrong.message
    assert "(0, g_max" in t02.check("least_noisy_target", 40).message


def test_compensation():
    def alpha(ref_readout, readout_t):
        return float(ref_readout.abs().mean() / readout_t.abs().mean().clamp(min=1e-4))

    assert t02.check("compensation", alpha)
    no_abs = t02.check("compensation", lambda r, y: float(r.mean() / y.mean()))
    assert not no_abs and "absolute" in no_abs.message
    assert not t02.check("compensation", lambda r, y: float(r.abs().mean() / y.abs().mean()))   # no floor
    assert "raised ZeroDivisionError" in t02.check("compensation", lambda r, y: 1 / 0).message
    assert "a function" in t02.check("compensation", 1.5).message


def test_read_noise_growth():
    g_p = torch.tensor([10.0])
    relative = []
    for t in (1.0, 3.1536e7):
        g_d = g_p * ((t + 20.0) / 20.0) ** (-0.05)
        relative.append(float(pcm.read_noise_std(g_p, g_d, t + 20.0, PARAMS) / g_d))
    assert t02.check("read_noise_growth", relative[1] / relative[0])
    without_t0 = (torch.tensor(3.1536e7 / 5e-7).log() / torch.tensor(1 / 5e-7).log()).sqrt()
    assert not t02.check("read_noise_growth", float(without_t0))   # forgot t_0 in t
    assert not t02.check("read_noise_growth", 3.1536e7 ** 0.5)
