"""The fast CPU pulsed update (kernels/pulsed_update/cpu_fast.py) against the spec (reference.py).

Both make the same random draws, so seeded calls must agree to float rounding, for every closed-form
device kind, both noise types, odd shapes, the pulse-loop regime (few pulses) and the closed-form
regime (``LOOP_PULSES = 0``), empty and zero-pulse cases; the other kinds run the spec itself.
Each test runs twice: with the compiled pulse loop (kernels/pulsed_update/compiled.py) and the eager one.
"""

import dataclasses

import pytest
import torch

from aimc_lab.devices import pulsed as P
from aimc_lab.kernels import backend
from aimc_lab.kernels import pulsed_update as dispatch
from aimc_lab.kernels.pulsed_update import compiled
from aimc_lab.kernels.pulsed_update import cpu_fast as F
from aimc_lab.kernels.pulsed_update import reference as R

DEVICES = [
    P.ConstantStep(dw_min=0.01, dw_min_std=0.3),
    P.ConstantStep(dw_min=0.01, dw_min_std=0.5, mult_noise=False, up_down=0.3),
    P.LinearStep(dw_min=0.01, gamma_up=0.5, gamma_down=0.8, dw_min_std=0.3),
    P.LinearStep(dw_min=0.01, gamma_up=0.5, gamma_down=0.8, dw_min_std=0.3, mult_noise=False),
    P.SoftBounds(dw_min=0.01, up_down=0.2, dw_min_std=0.3),
    P.reram_sb(),
    P.SoftBounds(dw_min=0.02, dw_min_std=0.0),
]
IDS = ["const-mult", "const-add", "linear-mult", "linear-add", "soft-mult", "reram_sb", "soft-quiet"]


def array_near_bounds(device, n, k, seed=0):
    """An array with a third of the devices at a bound (so the pulse loop runs next to closed forms)."""
    array = P.DeviceArray(device, n, k, seed=seed)
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(n, k, generator=g) - 0.5
    w = torch.where(torch.rand(n, k, generator=g) < 0.15, array.b_max, w)
    w = torch.where(torch.rand(n, k, generator=g) < 0.15, array.b_min, w)
    array.w.copy_(array.clip(w))
    return array


def seeded(fn, *args, seed=3, **kw):
    return fn(*args, generator=torch.Generator().manual_seed(seed), **kw)


@pytest.fixture(autouse=True, params=["compiled-loop", "eager-loop"])
def loop_gear(request, monkeypatch):
    """Every test runs with the compiled pulse loop (numba, when installed) and with the eager one."""
    if request.param == "compiled-loop" and not compiled.available():
        pytest.skip("numba is not installed: the eager loop serves")
    monkeypatch.setenv("AIMC_LAB_NUMBA", "1" if request.param == "compiled-loop" else "0")
    return request.param


@pytest.fixture(params=[None, 0], ids=["loop-for-few-pulses", "closed-forms"])
def loop_pulses(request, monkeypatch):
    if request.param is not None:
        monkeypatch.setattr(R, "LOOP_PULSES", request.param)
    return R.LOOP_PULSES


@pytest.mark.parametrize("device", DEVICES, ids=IDS)
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (33, 65)])
def test_fast_update_equals_the_spec_with_the_same_draws(device, shape, loop_pulses):
    n, k = shape
    array = array_near_bounds(device, n, k)
    g = torch.Generator().manual_seed(1)
    for m, lr in ((5, 0.1), (3, 1.0)):
        x = torch.rand(m, k, generator=g) * 2 - 1
        d = torch.randn(m, n, generator=g) * 0.3
        model = array.pulse_model()
        w0 = array.w.clone()
        want = seeded(R.pulsed_update, array.w, x, d, lr, model)
        got = seeded(F.pulsed_update, array.w, x, d, lr, model)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
        assert torch.equal(array.w, w0)  # inputs unchanged
        assert (got <= array.b_max).all() and (got >= array.b_min).all()


@pytest.mark.parametrize("device", DEVICES, ids=IDS)
def test_fast_counts_equal_the_spec(device, loop_pulses):
    """signed_counts_update and apply_mixed_counts: mixed and single directions, zero counts, up to
    60 pulses (both regimes), all zero (no draws, a copy)."""
    array = array_near_bounds(device, 40, 50)
    g = torch.Generator().manual_seed(2)
    counts = torch.randint(-40, 41, (40, 50), generator=g).float() * (torch.rand(40, 50, generator=g) < 0.5)
    model = array.pulse_model()
    want = R.signed_counts_update(array.w, counts, model, torch.Generator().manual_seed(4))
    got = F.signed_counts_update(array.w, counts, model, torch.Generator().manual_seed(4))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    n_up = torch.randint(0, 31, (40, 50), generator=g).float()
    n_down = torch.randint(0, 31, (40, 50), generator=g).float() * (torch.rand(40, 50, generator=g) < 0.5)
    want = seeded(R.apply_mixed_counts, array.w, n_up, n_down, model)
    got = seeded(F.apply_mixed_counts, array.w, n_up, n_down, model)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    zero = torch.zeros(40, 50)
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    out = F.signed_counts_update(array.w, zero, model, gen)
    assert torch.equal(out, array.w) and out.data_ptr() != array.w.data_ptr()
    assert torch.equal(gen.get_state(), state)  # nothing drawn


def test_fast_loop_in_stretches_equals_the_spec(monkeypatch):
    """Many pulses on a few devices, the precomputed stretch of pulses capped at a few elements (the
    memory bound of large tiles), for both closed-form kinds and both noise types."""
    monkeypatch.setattr(F, "_LOOP_BLOCK", 7)
    for device in DEVICES:
        array = array_near_bounds(device, 3, 5)
        n_up = torch.randint(0, 30, (3, 5), generator=torch.Generator().manual_seed(0)).float()
        n_down = torch.randint(0, 30, (3, 5), generator=torch.Generator().manual_seed(1)).float()
        want = seeded(R.apply_mixed_counts, array.w, n_up, n_down, array.pulse_model())
        got = seeded(F.apply_mixed_counts, array.w, n_up, n_down, array.pulse_model())
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_loop_order_is_the_running_remainder_of_the_spec():
    """Pulse k of T (n⁺ up) goes up when (k − 1)·n⁺ mod T + n⁺ >= T: the same even interleaving as the
    running remainder r ← r + n⁺, up (and r ← r − T) when r reaches T."""
    for T in range(1, 13):
        for U in range(0, T + 1):
            rem, want = 0, []
            for _ in range(T):
                rem += U
                want.append(rem >= T)
                rem -= T * (rem >= T)
            idx, u, t, live = R.loop_order(torch.tensor([float(U)]), torch.tensor([float(T - U)]))
            got = [bool(((k - 1) * u % t + u >= t).item()) for k in range(1, T + 1)]
            assert got == want and sum(got) == U and live == [1] * T


def test_loop_for_few_pulses_has_the_law_of_the_closed_forms(monkeypatch):
    """Few pulses per device run the pulse loop, more run the closed forms: both have the law of
    one pulse at a time (the loop is the spec itself), so the two regimes agree in mean and spread."""
    device = P.reram_sb()
    array = P.DeviceArray(device, 60, 60, seed=0)
    g = torch.Generator().manual_seed(0)
    n_up = torch.randint(0, 6, (60, 60), generator=g).float()
    n_down = torch.randint(0, 6, (60, 60), generator=g).float()
    model = array.pulse_model()
    loop = torch.stack([F.apply_mixed_counts(array.w, n_up, n_down, model, g) for _ in range(20)]) - array.w
    monkeypatch.setattr(R, "LOOP_PULSES", 0)
    closed = torch.stack([F.apply_mixed_counts(array.w, n_up, n_down, model, g) for _ in range(20)]) - array.w
    se = float(loop.std()) / loop.numel() ** 0.5
    assert abs(float(loop.mean() - closed.mean())) < 5 * se
    assert abs(float(loop.std() / closed.std()) - 1) < 0.03
    z = (loop.mean(0) - closed.mean(0)) / ((loop.var(0) + closed.var(0)) / 20).clamp(min=1e-12).sqrt()
    assert float((z ** 2).mean()) < 1.3  # per device


def test_other_kinds_and_options_run_the_spec():
    """ExpStep (no closed form), the ideal device, exact=True and block_rows: bit for bit the spec."""
    array = array_near_bounds(P.ExpStep(dw_min=0.01, dw_min_std=0.3), 9, 11)
    x, d = torch.rand(4, 11) - 0.5, torch.randn(4, 9) * 0.2
    model = array.pulse_model()
    assert torch.equal(seeded(F.pulsed_update, array.w, x, d, 0.3, model),
                       seeded(R.pulsed_update, array.w, x, d, 0.3, model))
    soft = array_near_bounds(P.SoftBounds(dw_min=0.01), 9, 11)
    for kw in (dict(exact=True), dict(block_rows=2)):
        assert torch.equal(seeded(F.pulsed_update, soft.w, x, d, 0.3, soft.pulse_model(), **kw),
                           seeded(R.pulsed_update, soft.w, x, d, 0.3, soft.pulse_model(), **kw))
    ideal = P.DeviceArray(P.Ideal(), 9, 11, seed=0)
    torch.testing.assert_close(F.pulsed_update(ideal.w, x, d, 0.3, ideal.pulse_model()),
                               R.pulsed_update(ideal.w, x, d, 0.3, ideal.pulse_model()))
    with pytest.raises(ValueError, match="desired_bl"):
        F.pulsed_update(soft.w, x, d, 0.3, soft.pulse_model(), desired_bl=0)
    zero = F.pulsed_update(soft.w, torch.zeros(4, 11), d, 0.3, soft.pulse_model())
    assert torch.equal(zero, soft.w) and zero.data_ptr() != soft.w.data_ptr()


def test_backend_dispatch(monkeypatch):
    """``torch`` (auto on the CPU) runs the fast path, ``reference`` the spec."""
    called = []
    monkeypatch.setattr(F, "pulsed_update", lambda *a, **k: called.append("fast"))
    monkeypatch.setattr(R, "pulsed_update", lambda *a, **k: called.append("spec"))
    array = P.DeviceArray(P.SoftBounds(), 3, 4, seed=0)
    x, d = torch.rand(2, 4), torch.rand(2, 3)
    with backend.use_backend("torch"):
        dispatch.pulsed_update(array.w, x, d, 0.1, array.pulse_model())
    with backend.use_backend("reference"):
        dispatch.pulsed_update(array.w, x, d, 0.1, array.pulse_model())
    assert called == ["fast", "spec"]


def test_training_step_is_the_same_on_both_paths():
    """An in-memory SGD step of a small tile gives the same weights on the torch and reference backends."""
    device = dataclasses.replace(P.reram_sb(), write_noise_std=0.0)
    arrays = [P.DeviceArray(device, 16, 24, seed=0) for _ in range(2)]
    g = torch.Generator().manual_seed(0)
    x, d = torch.rand(5, 24, generator=g), torch.randn(5, 16, generator=g) * 0.2
    for array, name in zip(arrays, ("torch", "reference")):
        with backend.use_backend(name):
            for step in range(3):
                array.pulsed_update(x, d, 0.1, generator=torch.Generator().manual_seed(step))
    torch.testing.assert_close(arrays[0].w, arrays[1].w, rtol=0, atol=1e-6)


def test_pulse_model_is_cached_until_the_device_tensors_change():
    """DeviceArray.pulse_model() is built once; an in-place change, load_state_dict, a new device
    model or a dtype change rebuilds it (so the slopes −γ/b always follow the bounds)."""
    array = P.DeviceArray(P.SoftBounds(), 4, 5, seed=0)
    first = array.pulse_model()
    assert array.pulse_model() is first
    array.b_max.mul_(0.9)
    second = array.pulse_model()
    assert second is not first and torch.equal(second.gamma_up, -1 / array.b_max)
    state = {k: v.clone() for k, v in array.state_dict().items()}
    state["b_min"] *= 1.1
    array.load_state_dict(state)
    assert torch.equal(array.pulse_model().gamma_down, -1 / array.b_min)
    array.device_params = P.SoftBounds(dw_min=0.5)
    assert array.pulse_model().dw_min == 0.5
    array.double()
    assert array.pulse_model().tensors.dw_up.dtype == torch.float64
