"""Every pulsed device model and preset stays finite over its valid parameter space, and the n-pulse
closed forms equal the one-pulse-at-a-time recursion (noise-free), corner cases included.

Device parameters are drawn over wide ranges: spreads up to 200 % put drawn bounds on the wrong side
of 0, next to 0 or closer to it than one step (the corner where the closed form once took log1p of a
value below −1 and wrote NaN); steps up to 0.3 on ranges down to 0.01.
"""

import dataclasses

import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aimc_lab.devices import pulsed as P
from aimc_lab.kernels.pulsed_update.reference import apply_mixed_counts, apply_pulse_counts, pulsed_update

N, K = 6, 5
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def small(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def devices(draw, models=P.MODELS, noise=True):
    model = draw(st.sampled_from(models))
    saturating = issubclass(model, P.LinearStep)
    if saturating:  # γ = −gamma/b needs w_min < 0 < w_max
        w_max, w_min = draw(small(0.005, 2.0)), -draw(small(0.005, 2.0))
    else:
        a, b = draw(small(-2.0, 2.0)), draw(small(-2.0, 2.0))
        assume(abs(a - b) > 1e-3)
        w_min, w_max = min(a, b), max(a, b)
    fields = dict(
        dw_min=draw(small(1e-4, 0.3)), dw_min_dtod=draw(small(0.0, 2.0)), dw_min_dtod_log_normal=draw(st.booleans()),
        dw_min_std=draw(small(0.0, 5.0)) if noise else 0.0, mult_noise=draw(st.booleans()),
        up_down=draw(small(-1.0, 1.0)), up_down_dtod=draw(small(0.0, 1.0)), w_max=w_max, w_min=w_min,
        w_max_dtod=draw(small(0.0, 2.0)), w_min_dtod=draw(small(0.0, 2.0)),
        write_noise_std=draw(small(0.0, 100.0)), lifetime=draw(st.sampled_from([0.0, 1.0, 50.0])),
        lifetime_dtod=draw(small(0.0, 1.0)), diffusion=draw(small(0.0, 0.1)), diffusion_dtod=draw(small(0.0, 1.0)),
        reset=draw(small(-1.0, 1.0)), reset_std=draw(small(0.0, 0.5)), reset_dtod=draw(small(0.0, 1.0)),
        subtract_symmetry_point=draw(st.booleans()), reference_std=draw(small(0.0, 0.1)))
    if model is P.LinearStep:
        fields.update(gamma_up=draw(small(0.0, 5.0)), gamma_down=draw(small(0.0, 5.0)))
    elif model is P.ExpStep:
        fields.update(A_up=draw(small(-30.0, 30.0)), A_down=draw(small(-30.0, 30.0)),
                      gamma_up=draw(small(-15.0, 15.0)), gamma_down=draw(small(-15.0, 15.0)),
                      a=draw(small(-2.0, 2.0)), b=draw(small(-2.0, 2.0)))
    elif model is P.PowStep:
        fields.update(pow_gamma=draw(small(0.1, 5.0)))
    elif model is P.PiecewiseStep:
        nodes = st.lists(small(0.0, 3.0), min_size=2, max_size=6).map(tuple)
        fields.update(piecewise_up=draw(nodes), piecewise_down=draw(nodes))
    return model(**fields)


def presets():
    """Each preset, also with large spreads (bounds near or beyond 0)."""
    return st.builds(lambda name, spread: P.PRESETS[name](**({"w_max_dtod": 1.5, "w_min_dtod": 1.5,
                                                               "dw_min_dtod": 1.0} if spread else {})),
                     st.sampled_from(sorted(P.PRESETS)), st.booleans())


def assert_state_ok(array):
    for name, buf in array.named_buffers():
        assert torch.isfinite(buf).all(), name
    assert (array.w <= array.b_max).all() and (array.w >= array.b_min).all()


def exercise(device, seed, lr, x_scale, d_scale, rows):
    """Updates (block and row by row), many mixed pulses, decay/diffusion, reset, pulse response."""
    array = P.DeviceArray(device, N, K, seed=seed)
    g = torch.Generator().manual_seed(seed)
    assert_state_ok(array)
    for block_rows in (None, 1):
        x = torch.randn(rows, K, generator=g) * x_scale
        d = torch.randn(rows, N, generator=g) * d_scale
        w_new = pulsed_update(array.w, x, d, lr, device.pulse_model(array.tensors), generator=g, block_rows=block_rows)
        array.commit(w_new, g)
        array.after_update(g)
        assert_state_ok(array)
    n_up = torch.randint(0, 60, (N, K), generator=g).float()
    n_down = torch.randint(0, 60, (N, K), generator=g).float() * torch.randint(0, 2, (N, K), generator=g)
    array.commit(apply_mixed_counts(array.w, n_up, n_down, device.pulse_model(array.tensors), g), g)
    assert_state_ok(array)
    array.reset_devices(torch.rand(N, K, generator=g) < 0.5, g)
    assert_state_ok(array)
    _, trace = P.pulse_response(device, n_up=15, n_down=15, traces=4, seed=seed)
    assert torch.isfinite(trace).all()


ARGS = dict(seed=st.integers(0, 2 ** 31), lr=st.floats(1e-4, 10.0), x_scale=st.floats(1e-3, 1e2),
            d_scale=st.floats(1e-4, 1e2), rows=st.integers(1, 4))


@SETTINGS
@given(device=devices(), **ARGS)
def test_every_model_stays_finite(device, seed, lr, x_scale, d_scale, rows):
    exercise(device, seed, lr, x_scale, d_scale, rows)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(device=presets(), **ARGS)
def test_every_preset_stays_finite(device, seed, lr, x_scale, d_scale, rows):
    exercise(device, seed, lr, x_scale, d_scale, rows)


CLOSED_FORM = (P.ConstantStep, P.LinearStep, P.SoftBounds)


@SETTINGS
@given(device=devices(CLOSED_FORM, noise=False), seed=st.integers(0, 2 ** 31), n_max=st.integers(1, 200),
       near_bound=st.booleans())
def test_closed_forms_equal_the_recursion(device, seed, n_max, near_bound):
    """Noise-free, float64: n same-direction pulses at once equal n single pulses (also with bounds near
    0, a bound nearer than one step, starts at a bound); ConstantStep also for mixed directions, the
    LinearStep family there within one step (continuous vs even interleaving)."""
    array = P.DeviceArray(device, 8, 8, seed=seed, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    t = P.DeviceTensors(*(v.reshape(-1) for v in array.tensors))
    u = torch.rand(64, generator=g, dtype=torch.float64)
    w = t.b_min + (t.b_max - t.b_min) * (u.round() if near_bound else u)
    n = torch.randint(0, n_max + 1, (64,), generator=g).double()
    up = torch.rand(64, generator=g) < 0.5
    fast = apply_pulse_counts(w, n, up, device.pulse_model(t), None)
    slow = apply_pulse_counts(w, n, up, device.pulse_model(t), None, exact=True)
    assert torch.isfinite(fast).all()
    torch.testing.assert_close(fast, slow, atol=1e-9, rtol=1e-7)
    n_down = torch.randint(0, n_max + 1, (64,), generator=g).double()
    fast = apply_mixed_counts(w, n, n_down, device.pulse_model(t), None)
    slow = apply_mixed_counts(w, n, n_down, device.pulse_model(t), None, exact=True)
    assert torch.isfinite(fast).all()
    if isinstance(device, P.ConstantStep):
        torch.testing.assert_close(fast, slow, atol=1e-9, rtol=1e-7)
    else:
        assert ((fast - slow).abs() <= 2 * torch.maximum(t.dw_up, t.dw_down) + 1e-9).all()


@SETTINGS
@given(device=devices(CLOSED_FORM, noise=False), seed=st.integers(0, 2 ** 31))
def test_noise_off_is_deterministic_and_generator_free(device, seed):
    """Without cycle-to-cycle noise the n-pulse forms draw nothing: same result with or without a generator."""
    device = dataclasses.replace(device, dw_min_std=0.0)
    array = P.DeviceArray(device, 4, 4, seed=seed)
    g = torch.Generator().manual_seed(seed)
    n_up, n_down = torch.randint(0, 20, (4, 4), generator=g).float(), torch.randint(0, 20, (4, 4), generator=g).float()
    a = apply_mixed_counts(array.w, n_up, n_down, device.pulse_model(array.tensors), None)
    b = apply_mixed_counts(array.w, n_up, n_down, device.pulse_model(array.tensors), torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
