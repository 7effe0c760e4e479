"""Device models: per-pulse step formulas, bounds, symmetry point, validation, presets."""

import dataclasses
import math

import pytest
import torch

from aimc_lab.config import from_dict, to_dict
from aimc_lab.devices import pulsed as P
from aimc_lab.kernels.pulsed_update.reference import apply_pulse_counts

NO_SPREAD = dict(dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0, dw_min_std=0.0)


def one_pulse(device, w, up):
    """Apply exactly one noise-free pulse to devices at weights ``w`` (1-d), with the library's own
    per-device steps and bounds (``draw_device_tensors``; no spread: the nominal values)."""
    n = w.numel()
    t = P.draw_device_tensors(device, (n,), torch.Generator().manual_seed(0))
    upm = torch.full((n,), up)
    return apply_pulse_counts(w, torch.ones(n), upm, device.pulse_model(t), None, exact=True) - w, t


W = torch.linspace(-0.5, 0.5, 11)


@pytest.mark.parametrize("up", [True, False])
def test_step_formulas(up):
    d = 1.0 if up else -1.0
    cs = P.ConstantStep(up_down=0.2, **NO_SPREAD)
    dw, t = one_pulse(cs, W, up)
    delta = t.dw_up if up else t.dw_down
    torch.testing.assert_close(dw, d * delta)
    assert abs(t.dw_up[0] - 0.001) < 1e-9 and abs(t.dw_down[0] - 0.0008) < 1e-9  # up_down > 0 shrinks down

    ls = P.LinearStep(gamma_up=0.5, gamma_down=0.3, **NO_SPREAD)
    dw, t = one_pulse(ls, W, up)
    gamma = -0.5 / 0.6 if up else -0.3 / -0.6
    torch.testing.assert_close(dw, d * 0.001 * (1 + gamma * W))

    sb = P.SoftBounds(**NO_SPREAD)
    dw, _ = one_pulse(sb, W, up)
    torch.testing.assert_close(dw, d * 0.001 * (1 - W / (0.6 if up else -0.6)))

    es = P.ExpStep(**NO_SPREAD)
    dw, _ = one_pulse(es, W, up)
    z = 2 * es.a * W / 1.2 + es.b
    y = 1 - (es.A_up * torch.exp(es.gamma_up * z) if up else es.A_down * torch.exp(-es.gamma_down * z))
    torch.testing.assert_close(dw, d * 0.001 * y.clamp(min=0))

    ps = P.PowStep(pow_gamma=2.0, **NO_SPREAD)
    dw, _ = one_pulse(ps, W, up)
    omega = (0.6 - W) / 1.2
    torch.testing.assert_close(dw, d * 0.001 * (omega ** 2 if up else (1 - omega) ** 2))

    pw = P.PiecewiseStep(piecewise_up=(2.0, 1.0, 0.0), piecewise_down=(0.0, 1.0, 2.0), **NO_SPREAD)
    dw, _ = one_pulse(pw, W, up)
    pos = (W + 0.6) / 1.2 * 2  # in node units
    expected = (2 - pos) if up else pos
    torch.testing.assert_close(dw, d * 0.001 * expected, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("up_down, dw_up, dw_down", [(0.2, 0.001, 0.0008), (-0.3, 0.0007, 0.001), (0.0, 0.001, 0.001)])
def test_draw_device_tensors_nominal_steps_and_bounds(up_down, dw_up, dw_down):
    """Δ⁺ = dw_min·(1 + min(up_down, 0)), Δ⁻ = dw_min·(1 − max(up_down, 0)) (docs/physics.md §4), by hand."""
    device = P.ConstantStep(dw_min=0.001, up_down=up_down, w_max=0.7, w_min=-0.4, **NO_SPREAD)
    t = P.draw_device_tensors(device, (3, 4), torch.Generator().manual_seed(0))
    torch.testing.assert_close(t.dw_up, torch.full((3, 4), dw_up), rtol=1e-6, atol=0)
    torch.testing.assert_close(t.dw_down, torch.full((3, 4), dw_down), rtol=1e-6, atol=0)
    assert torch.equal(t.b_max, torch.full((3, 4), 0.7)) and torch.equal(t.b_min, torch.full((3, 4), -0.4))


@pytest.mark.parametrize("log_normal", [False, True])
def test_draw_device_tensors_spread_statistics(log_normal):
    """Device-to-device spread over 200k devices against hand-derived moments: gain g = 1 + a·ξ (or
    exp(a·ξ)), r = b·ξ', Δ± = dw_min·(g ± r + asymmetry), bounds w·(1 + c·ξ''). Means, standard
    deviations and the correlation of Δ⁺ and Δ⁻, (Var g − b²)/(Var g + b²), within 4 standard errors."""
    a, b, c_max, c_min, up_down = 0.2, 0.05, 0.3, 0.1, -0.1
    device = P.ConstantStep(dw_min=0.01, up_down=up_down, dw_min_dtod=a, up_down_dtod=b,
                            dw_min_dtod_log_normal=log_normal, w_max=0.8, w_min=-0.5, w_max_dtod=c_max,
                            w_min_dtod=c_min, dw_min_std=0.0)
    n = 200_000
    t = P.draw_device_tensors(device, (n, 1), torch.Generator().manual_seed(1), torch.float64)
    if log_normal:
        mean_g, var_g = math.exp(a * a / 2), (math.exp(a * a) - 1) * math.exp(a * a)
    else:
        mean_g, var_g = 1.0, a * a
    sd = math.sqrt(var_g + b * b)
    for got, mean in ((t.dw_up, 0.01 * (mean_g + up_down)), (t.dw_down, 0.01 * mean_g)):
        assert abs(float(got.mean()) - mean) < 4 * 0.01 * sd / math.sqrt(n)
        assert abs(float(got.std()) / (0.01 * sd) - 1) < 4 * math.sqrt(0.5 / n) * (3 if log_normal else 1)
    rho = float(torch.corrcoef(torch.stack([t.dw_up.reshape(-1), t.dw_down.reshape(-1)]))[0, 1])
    assert abs(rho - (var_g - b * b) / (var_g + b * b)) < 0.01
    for got, w, spread in ((t.b_max, 0.8, c_max), (t.b_min, -0.5, c_min)):
        assert abs(float(got.mean()) - w) < 4 * abs(w) * spread / math.sqrt(n)
        assert abs(float(got.std()) / (abs(w) * spread) - 1) < 0.01
    # reproducible from the generator; the steps are >= 0 and b_min <= b_max on every device
    again = P.draw_device_tensors(device, (n, 1), torch.Generator().manual_seed(1), torch.float64)
    assert all(torch.equal(u, v) for u, v in zip(t, again))
    assert (t.dw_up >= 0).all() and (t.dw_down >= 0).all() and (t.b_min <= t.b_max).all()


@pytest.mark.parametrize("factory", [P.ConstantStep, P.LinearStep, P.SoftBounds, P.ExpStep, P.PowStep,
                                     P.PiecewiseStep, *P.PRESETS.values()])
def test_bounds_never_exceeded(factory):
    device = factory() if factory in P.PRESETS.values() else factory(dw_min=0.05, dw_min_std=0.5)
    idx, w = P.pulse_response(device, 120, 120, traces=16, seed=1)
    array = P.DeviceArray(device, 16, 1, seed=1)
    assert (w <= array.b_max + 1e-6).all() and (w >= array.b_min - 1e-6).all()
    assert idx.shape == (241,) and w.shape == (16, 241)


def test_soft_bounds_symmetry_point():
    dev = P.SoftBounds(up_down=0.3, w_max=0.8, w_min=-0.5, **NO_SPREAD)
    array = P.DeviceArray(dev, 2, 3, seed=0)
    up, down = array.dw_up[0, 0].item(), array.dw_down[0, 0].item()
    formula = (up - down) / (up / 0.8 - down / -0.5)
    torch.testing.assert_close(array.symmetry_point(), torch.full((2, 3), formula), atol=1e-6, rtol=0)
    # alternating up/down pulses park the device at the symmetry point
    directions = torch.tensor([1.0, -1.0] * 3000)
    from aimc_lab.kernels.pulsed_update.reference import apply_pulse_sequence
    trace = apply_pulse_sequence(torch.tensor([0.3, -0.2]), directions,
                                 dev.pulse_model(P.DeviceTensors(*(t.reshape(-1)[:2] for t in array.tensors))), None)
    torch.testing.assert_close(trace[:, -1], torch.full((2,), formula), atol=2e-3, rtol=0)


def test_reference_device_subtracts_symmetry_point():
    dev = P.SoftBounds(up_down=0.3, subtract_symmetry_point=True)
    array = P.DeviceArray(dev, 4, 5, seed=0)
    torch.testing.assert_close(array.reference, array.symmetry_point())
    torch.testing.assert_close(array.weights(), torch.zeros(4, 5), atol=1e-6, rtol=0)
    target = torch.full((4, 5), 0.1)
    array.set_weights(target)
    torch.testing.assert_close(array.weights(), target)


def test_calibrated_reference_estimates_the_symmetry_point_by_pulses():
    dev = P.SoftBounds(dw_min=0.01, up_down=-0.3, w_max=0.9, w_min=-0.7, dw_min_std=0.3, dw_min_dtod=0.3,
                       w_max_dtod=0.1, w_min_dtod=0.1)
    settled = P.DeviceArray(dev, 20, 20, seed=1)
    err = settled.calibrate_reference(n_alternating=1000, generator=2)
    # settled: unbiased, spread of a few steps (cycle-to-cycle noise around w*)
    assert abs(err.mean().item()) < 1.0 * dev.dw_min and err.std().item() < 5 * dev.dw_min
    torch.testing.assert_close(settled.weights(), torch.zeros(20, 20))  # parked at effective weight 0
    torch.testing.assert_close(settled.reference, settled.w)
    # the symmetry point also becomes the reference of later programming
    settled.set_weights(torch.full((20, 20), 0.05))
    torch.testing.assert_close(settled.weights(), torch.full((20, 20), 0.05), atol=1e-6, rtol=0)
    # the fitting protocol's 200 alternating pulses stop before the device settles: biased toward the
    # last side it came from (200 down pulses end near w_min, below w* = about -0.14 for this device)
    short = P.DeviceArray(dev, 20, 20, seed=1)
    bias = short.calibrate_reference(n_alternating=200, generator=2).mean().item()
    assert bias < -2 * dev.dw_min
    # same seeds, same estimate; bad counts name the parameter
    again = P.DeviceArray(dev, 20, 20, seed=1)
    again.calibrate_reference(n_alternating=200, generator=2)
    assert torch.equal(again.reference, short.reference)
    with pytest.raises(ValueError, match="n_alternating"):
        short.calibrate_reference(n_alternating=-1)


def test_dtod_drawn_once_and_reproducible():
    dev = P.SoftBounds()
    a, b = P.DeviceArray(dev, 8, 8, seed=3), P.DeviceArray(dev, 8, 8, seed=3)
    for name in ("dw_up", "dw_down", "b_max", "b_min"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert a.dw_up.std() > 0.1 * dev.dw_min


def test_write_noise_decay_diffusion_reset():
    dev = P.ConstantStep(write_noise_std=5.0, lifetime=10.0, diffusion=0.01, reset=0.1, **NO_SPREAD)
    array = P.DeviceArray(dev, 6, 6, seed=0)
    array.set_weights(torch.full((6, 6), 0.5))
    g = torch.Generator().manual_seed(0)
    new_w = array.w.clone()
    new_w[0] += 0.01
    array.commit(new_w, g)
    assert (array.write_noise[0] != 0).all() and (array.write_noise[1:] == 0).all()
    assert not torch.equal(array.read(), array.weights())
    before = array.w.clone()
    array.after_update(g)
    assert (array.w - 0.1).abs().mean() < (before - 0.1).abs().mean()
    array.reset_devices(generator=g)
    torch.testing.assert_close(array.w, torch.full((6, 6), 0.1))


@pytest.mark.parametrize("kwargs, field", [
    (dict(dw_min=-0.001), "dw_min"), (dict(w_min=0.6, w_max=0.6), "w_min"), (dict(w_min=1.0, w_max=0.5), "w_min"),
    (dict(dw_min_std=-1.0), "dw_min_std"), (dict(up_down=2.0), "up_down"),
])
def test_bad_parameters_raise(kwargs, field):
    with pytest.raises(ValueError, match=f"ConstantStep.{field}"):
        P.ConstantStep(**kwargs)


def test_bad_model_parameters_raise():
    with pytest.raises(ValueError, match="PowStep.pow_gamma"):
        P.PowStep(pow_gamma=0.0)
    with pytest.raises(ValueError, match="PiecewiseStep.piecewise_up"):
        P.PiecewiseStep(piecewise_up=(1.0,))
    with pytest.raises(ValueError, match="LinearStep.gamma_up"):
        P.LinearStep(gamma_up=-1.0)


def test_presets_documented_and_serializable():
    for name, factory in P.PRESETS.items():
        device = factory()
        assert factory.__doc__ and ("AIHWKIT" in factory.__doc__)
        assert from_dict(None, to_dict(device)) == device
    assert P.reram_sb().subtract_symmetry_point
    assert P.reram_sb(dw_min=0.01).dw_min == 0.01


@pytest.mark.parametrize("factory, kwargs, field", [
    (P.ConstantStep, dict(w_max=float("inf")), "w_max"), (P.ConstantStep, dict(w_min=float("-inf")), "w_min"),
    (P.ConstantStep, dict(w_max=float("nan")), "w_max"), (P.ConstantStep, dict(dw_min_std=float("inf")), "dw_min_std"),
    (P.ConstantStep, dict(dw_min=float("nan")), "dw_min"), (P.ConstantStep, dict(diffusion=float("inf")), "diffusion"),
    (P.ConstantStep, dict(write_noise_std=float("nan")), "write_noise_std"),
    (P.ConstantStep, dict(lifetime=float("inf")), "lifetime"), (P.ConstantStep, dict(reset=float("nan")), "reset"),
    (P.ConstantStep, dict(w_max_dtod=20.0), "w_max_dtod"), (P.ConstantStep, dict(dw_min=1e6), "dw_min"),
    (P.LinearStep, dict(w_min=0.0, gamma_down=0.5), "w_min"), (P.LinearStep, dict(w_max=-0.1, w_min=-0.5, gamma_up=1.0),
                                                                "w_max"),
    (P.LinearStep, dict(gamma_up=float("nan")), "gamma_up"), (P.SoftBounds, dict(gamma_down=2.0), "gamma_down"),
    (P.SoftBounds, dict(w_min=0.1), "w_min"), (P.ExpStep, dict(A_up=float("inf")), "A_up"),
    (P.PowStep, dict(pow_gamma=float("inf")), "pow_gamma"),
    (P.PiecewiseStep, dict(piecewise_up=(1.0, float("inf"))), "piecewise_up"),
    (P.PiecewiseStep, dict(piecewise_down=(1.0, float("nan"), 2.0)), "piecewise_down"),
])
def test_non_finite_and_cross_field_values_raise_naming_the_field(factory, kwargs, field):
    with pytest.raises(ValueError, match=rf"{factory.__name__}\.{field} = .* is invalid; allowed: .*"):
        factory(**kwargs)


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="ConstantStep.w_max"):
        P.ConstantStep(w_max="1")
    with pytest.raises(TypeError, match="PiecewiseStep.piecewise_up"):
        P.PiecewiseStep(piecewise_up=("a", 1.0))
    assert P.LinearStep(w_min=0.0, w_max=1.0).w_min == 0.0  # no down slope: any bounds
    assert P.PiecewiseStep(piecewise_up=[1, 2]).piecewise_up == (1.0, 2.0)


# --- the per-pulse rule (docs/physics.md §4): cycle-to-cycle noise on every pulse, own step per direction ---

def noisy_loop(w, directions, dw_up, dw_down, b_max, b_min, sigma, gen, soft=True):
    """Independent one-pulse-at-a-time soft-bounds (or constant-step) loop with additive noise."""
    for direction in directions:
        up = direction > 0
        delta, bound = (dw_up, b_max) if up else (dw_down, b_min)
        f = (1 - w / bound) if soft else torch.ones_like(w)
        step = delta * (f + sigma * torch.randn(w.shape, generator=gen, dtype=w.dtype))
        w = torch.clamp(w + step if up else w - step, min=b_min, max=b_max)
    return w


def test_device_at_its_bound_diffuses_off_it():
    """Additive noise acts on every pulse: a device at b_max keeps receiving noisy up pulses and leaves it."""
    dev = P.SoftBounds(dw_min=0.01, mult_noise=False, **{**NO_SPREAD, "dw_min_std": 1.0})
    array = P.DeviceArray(dev, 100, 100, seed=0)
    trace = array.replay(torch.ones(20), w0=0.6, generator=1)  # start exactly at b_max = 0.6
    final = trace[:, -1]
    assert (final == 0.6).float().mean() < 0.2  # the old rule left every device frozen at the bound
    # a walk reflected at the bound, as the independent loop: distance about sqrt(20)·σ·Δ·0.8 ≈ 0.036
    ones = torch.ones(10_000)
    loop = noisy_loop(0.6 * ones, [1.0] * 20, 0.01 * ones, 0.01 * ones, 0.6 * ones, -0.6 * ones, 1.0,
                      torch.Generator().manual_seed(3))
    se = loop.std().item() / 100
    assert abs(final.mean().item() - loop.mean().item()) < 5 * se * 2 ** 0.5
    assert abs(final.std().item() / loop.std().item() - 1) < 0.05
    # multiplicative noise scales the vanishing step: a device at its soft bound stays there
    mult = P.DeviceArray(dataclasses.replace(dev, mult_noise=True), 10, 10, seed=0)
    assert torch.equal(mult.replay(torch.ones(5), w0=0.6, generator=1)[:, -1], torch.full((100,), 0.6))


@pytest.mark.parametrize("mult_noise", [False, True])
def test_noise_amplitude_scales_with_each_devices_own_step(mult_noise):
    """Up and down steps differ (up_down and device-to-device spread): the noise of one pulse is σ·Δ^d."""
    dev = P.ConstantStep(dw_min=0.001, up_down=0.5, dw_min_dtod=0.3, dw_min_std=0.5, mult_noise=mult_noise,
                         w_max_dtod=0.0, w_min_dtod=0.0)
    array = P.DeviceArray(dev, 200, 100, seed=0)  # 2·10⁴ devices
    n = array.w.numel()
    for direction, delta in ((1.0, array.dw_up), (-1.0, array.dw_down)):
        trace = array.replay(torch.tensor([direction]), w0=0.0, generator=2)
        moving = delta.reshape(-1) > 0  # a few down steps are clamped at 0 by the spread
        z = ((trace[:, 1] - trace[:, 0]) * direction / delta.reshape(-1) - 1)[moving]  # ~ N(0, σ²)
        assert abs(z.mean().item()) < 4 * 0.5 / n ** 0.5
        assert abs(z.std().item() / 0.5 - 1) < 0.03
    # up_down = 0.5 halves the nominal down step: its noise is half as large in weight units
    assert abs(array.dw_down.mean().item() / array.dw_up.mean().item() - 0.5) < 0.02


def test_pulse_response_update_path_and_independent_loop_agree():
    """ReRAM-SB, 10⁴ devices from effective weight 0: 200 up then 200 down pulses. pulse_response, the
    update path (n pulses per device at once) and a loop written here give the same mean and spread."""
    dev = P.reram_sb()
    traces = 10_000
    _, resp = P.pulse_response(dev, n_up=200, n_down=200, traces=traces, seed=0)
    array = P.DeviceArray(dev, traces, 1, seed=0)  # pulse_response draws the same devices from seed 0
    assert torch.equal(resp[:, 0], array.w.reshape(-1))  # effective 0: hidden start = the reference
    # update path: all 200 up pulses of a device at once, then all 200 down pulses
    from aimc_lab.kernels.pulsed_update.reference import signed_counts_update
    g = torch.Generator().manual_seed(5)
    after_up = signed_counts_update(array.w, torch.full_like(array.w, 200.0), dev.pulse_model(array.tensors), g)
    after_down = signed_counts_update(after_up, torch.full_like(array.w, -200.0), dev.pulse_model(array.tensors), g)
    # independent loop
    gl = torch.Generator().manual_seed(6)
    flat = [v.reshape(-1) for v in array.tensors]
    loop_up = noisy_loop(array.w.reshape(-1), [1.0] * 200, *flat, dev.dw_min_std, gl)
    loop_down = noisy_loop(loop_up, [-1.0] * 200, *flat, dev.dw_min_std, gl)
    for resp_col, update, loop in ((resp[:, 200], after_up, loop_up), (resp[:, 400], after_down, loop_down)):
        se = loop.std().item() / traces ** 0.5
        for got in (resp_col, update.reshape(-1)):
            assert abs(got.mean().item() - loop.mean().item()) < 5 * se * 2 ** 0.5
            assert abs(got.std().item() / loop.std().item() - 1) < 0.05
            # the fraction of devices sitting exactly at b_max agrees too (the old rule froze 81 % there)
            at_bound = (got == array.b_max.reshape(-1)).float().mean().item()
            assert abs(at_bound - (loop == array.b_max.reshape(-1)).float().mean().item()) < 0.02


def test_pulse_response_starts_from_the_effective_weight():
    dev = P.SoftBounds(up_down=0.3, subtract_symmetry_point=True, dw_min_std=0.0)
    _, w = P.pulse_response(dev, n_up=3, n_down=0, traces=50, seed=4, w0=0.1)
    array = P.DeviceArray(dev, 50, 1, seed=4)
    torch.testing.assert_close(w[:, 0], array.clip(array.reference + 0.1).reshape(-1))
    for bad in (float("nan"), float("inf"), 10**400, 1e4):
        with pytest.raises(ValueError, match="w0"):
            P.pulse_response(dev, w0=bad)
    with pytest.raises(TypeError, match="w0"):
        P.pulse_response(dev, w0="0.1")


# --- every real-valued field: huge ints, bools and float32-unsafe lifetimes are refused up front ---

MODELS = [P.Ideal, P.ConstantStep, P.LinearStep, P.SoftBounds, P.ExpStep, P.PowStep, P.PiecewiseStep]


def real_fields(model):
    """(name, is_tuple) of every real-valued field of ``model``."""
    return [(f.name, "Tuple" in str(f.type)) for f in dataclasses.fields(model) if "float" in str(f.type)]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_int_too_large_for_a_float_raises_value_error_naming_the_field(model):
    from aimc_lab.config import replace_path
    from aimc_lab.train import training_config

    config = training_config("sgd", device=model())
    for name, is_tuple in real_fields(model):
        huge = (10 ** 400, 1.0) if is_tuple else 10 ** 400
        pattern = rf"{model.__name__}\.{name}.* is invalid; allowed: "
        with pytest.raises(ValueError, match=pattern):
            model(**{name: huge})
        with pytest.raises(ValueError, match=pattern):
            replace_path(config, f"training.device.{name}", huge)
        with pytest.raises(ValueError, match=pattern):
            from_dict(None, dict(to_dict(model()), **{name: list(huge) if is_tuple else huge}))


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_bools_are_refused_for_real_valued_fields(model):
    for name, is_tuple in real_fields(model):
        with pytest.raises(TypeError, match=rf"{model.__name__}\.{name}"):
            model(**{name: (True, 1.0) if is_tuple else True})
        with pytest.raises(TypeError, match=rf"{model.__name__}\.{name}"):
            model(**{name: (1.0, False) if is_tuple else False})


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_lifetime_has_a_float32_safe_upper_limit(model):
    with pytest.raises(ValueError, match=rf"{model.__name__}\.lifetime = 1e\+300 is invalid; allowed: .*1e\+12"):
        model(lifetime=1e300)
    array = P.DeviceArray(model(lifetime=P.MAX_LIFETIME, lifetime_dtod=10.0), 4, 4, seed=0)
    array.after_update(torch.Generator().manual_seed(0))
    assert torch.isfinite(array.decay_rate).all() and (array.decay_rate > 0).all()
    assert torch.isfinite(array.w).all()
