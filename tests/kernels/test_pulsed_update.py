"""Pulse-train update: expectation, update/BL management, bounds, closed form vs pulse loop, Triton."""

import pytest
import torch

from aimc_lab.devices import pulsed as P
from aimc_lab.kernels import backend
from aimc_lab.kernels.pulsed_update import pulsed_update
from aimc_lab.kernels.pulsed_update.reference import (apply_mixed_counts, apply_pulse_counts, block_pulse_counts,
                                                      pulse_train_factors,
                                                      pulsed_update as reference)

NO_SPREAD = dict(dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0)


@pytest.fixture
def closed_forms(monkeypatch):
    """The closed forms of the LinearStep family also for calls with few pulses (which run the loop)."""
    from aimc_lab.kernels.pulsed_update import reference as R

    monkeypatch.setattr(R, "LOOP_PULSES", 0)

try:  # a jitted helper resolves names in this module's globals
    import triton
    import triton.language as tl

    from aimc_lab.kernels.pulsed_update.triton_impl import _philox_offset

    @triton.jit
    def _offsets_kernel(out_ptr, slot, BLOCK: tl.constexpr):
        idx = tl.arange(0, BLOCK) * 16383  # element offsets up to 512·512
        tl.store(out_ptr + tl.arange(0, BLOCK), _philox_offset(slot, idx))
except ImportError:  # pragma: no cover - triton is a dependency on Linux x86-64
    _offsets_kernel = None


def mean_update(device, x, d, lr, trials, seed=0, **kw):
    array = P.DeviceArray(device, d.shape[1], x.shape[1], seed=seed)
    g = torch.Generator().manual_seed(seed)
    acc = torch.zeros_like(array.w)
    for _ in range(trials):
        acc += reference(array.w, x, d, lr, device.pulse_model(array.tensors), generator=g, **kw) - array.w
    return acc / trials


@pytest.mark.parametrize("um, blm, block_rows", [(True, True, None), (False, False, None), (True, False, None),
                                                 (True, True, 1), (False, False, 2)])
def test_constant_step_mean_equals_sgd(um, blm, block_rows):
    torch.manual_seed(0)
    device = P.ConstantStep(dw_min=0.001, dw_min_std=0.3, **NO_SPREAD)
    x = torch.rand(3, 12) * 0.9 + 0.1
    d = -(torch.rand(3, 10) * 0.09 + 0.01)  # all products of one sign: no cancellation between rows
    lr = 0.02  # keeps every firing probability below 1 (no saturation)
    got = mean_update(device, x, d, lr, 400, update_management=um, bl_management=blm, block_rows=block_rows)
    target = -lr * d.t() @ x
    assert ((got - target).norm() / target.norm()) < 0.05


def test_update_and_bl_management_factors():
    x = torch.tensor([[0.5, -0.25, 0.0]])
    d = torch.tensor([[0.02, -0.01]])
    lr, dw_min = 0.1, 0.001
    bl, p, q = pulse_train_factors(x, d, lr, dw_min, 31, True, True)
    # BL = ceil(lr·x_max·d_max/dw_min) = ceil(1.0) = 1
    assert bl.tolist() == [1]
    base = (lr / (dw_min * 1)) ** 0.5
    a, b = base * (0.5 / 0.02) ** 0.5, base * (0.02 / 0.5) ** 0.5
    torch.testing.assert_close(q, (a * d.abs()).clamp(max=1))
    torch.testing.assert_close(p, (b * x.abs()).clamp(max=1))
    # the managed probabilities are balanced: max p == max q
    torch.testing.assert_close(p.max(), q.max())
    bl, p, q = pulse_train_factors(x * 40, d * 40, lr, dw_min, 31, False, True)
    assert bl.tolist() == [31]  # capped at desired_bl
    bl, p, q = pulse_train_factors(x, d, lr, dw_min, 7, False, False)
    assert bl.tolist() == [7]
    torch.testing.assert_close(p, ((lr / (dw_min * 7)) ** 0.5 * x.abs()).clamp(max=1))
    with pytest.raises(ValueError, match="desired_bl"):
        reference(torch.zeros(2, 3), x, d, lr, P.DeviceArray(P.ConstantStep(), 2, 3).pulse_model(), desired_bl=0)


def test_bounds_and_inputs_unchanged():
    device = P.SoftBounds(dw_min=0.05, dw_min_std=1.0)
    array = P.DeviceArray(device, 16, 20, seed=0)
    x, d = torch.randn(8, 20), torch.randn(8, 16)
    w0, x0, d0 = array.w.clone(), x.clone(), d.clone()
    g = torch.Generator().manual_seed(0)
    w = array.w
    for _ in range(20):
        w = reference(w, x, d, 1.0, device.pulse_model(array.tensors), generator=g)
        assert (w <= array.b_max + 1e-6).all() and (w >= array.b_min - 1e-6).all()
    assert torch.equal(array.w, w0) and torch.equal(x, x0) and torch.equal(d, d0)


def test_generator_reproducible_and_zero_rows():
    device = P.ConstantStep()
    array = P.DeviceArray(device, 5, 4, seed=0)
    x, d = torch.randn(3, 4), torch.randn(3, 5) * 0.1
    a = reference(array.w, x, d, 0.1, device.pulse_model(array.tensors), generator=torch.Generator().manual_seed(7))
    b = reference(array.w, x, d, 0.1, device.pulse_model(array.tensors), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    zero = reference(array.w, torch.zeros(3, 4), d, 0.1, device.pulse_model(array.tensors))
    assert torch.equal(zero, array.w)


def test_ideal_device_is_exact():
    device = P.Ideal()
    array = P.DeviceArray(device, 5, 4, seed=0)
    x, d = torch.randn(3, 4) * 0.1, torch.randn(3, 5) * 0.1
    torch.testing.assert_close(reference(array.w, x, d, 0.5, device.pulse_model(array.tensors)) - array.w, -0.5 * d.t() @ x)


@pytest.mark.parametrize("device", [P.SoftBounds(dw_min=0.01, up_down=0.2, dw_min_std=0.3),
                                    P.LinearStep(dw_min=0.01, gamma_up=0.5, gamma_down=0.8, dw_min_std=0.3,
                                                 mult_noise=False)])
def test_closed_form_matches_pulse_loop(device, closed_forms):
    """The closed-form n-pulse map agrees in mean and spread with pulse-by-pulse application."""
    array = P.DeviceArray(device, 32, 32, seed=0)
    array.set_weights(torch.rand(32, 32) - 0.5)
    x, d = torch.rand(2, 32), -torch.rand(2, 32) * 0.5
    g = torch.Generator().manual_seed(0)
    fast = [reference(array.w, x, d, 0.5, device.pulse_model(array.tensors), generator=g) - array.w for _ in range(30)]
    slow = [reference(array.w, x, d, 0.5, device.pulse_model(array.tensors), generator=g, exact=True) - array.w
            for _ in range(30)]
    fast, slow = torch.stack(fast), torch.stack(slow)
    assert abs(fast.mean() / slow.mean() - 1) < 0.03
    assert abs(fast.std() / slow.std() - 1) < 0.05


def _z_scores(tri: torch.Tensor, ref: torch.Tensor):
    """Per-device z-scores of the difference of means of two samples [S, N, K] (the reference's
    variance, well estimated from many draws, for both), and the pooled ratio of their variances."""
    var_r = ref.var(0).clamp(min=1e-30)
    z = (tri.mean(0) - ref.mean(0)) / (var_r * (1 / tri.shape[0] + 1 / ref.shape[0])).sqrt()
    return z, float(tri.var(0).mean() / var_r.mean())


def test_triton_matches_reference_per_device():
    """Triton kernel (interpreter) vs the reference's row-by-row pulse loop, device by device: per-device
    z-scores of the mean update and the pooled variance ratio; up and down devices with their own
    asymmetric steps (up_down, spread), multiplicative noise, a 16×13 tile (one block, masked column)."""
    pytest.importorskip("triton")
    from aimc_lab.kernels.pulsed_update import triton_impl

    device = P.SoftBounds(dw_min=0.02, up_down=0.3, dw_min_std=0.5, dw_min_dtod=0.3)
    array = P.DeviceArray(device, 16, 13, seed=0)
    gen = torch.Generator().manual_seed(0)  # fixed inputs, independent of test order
    array.set_weights(torch.rand(16, 13, generator=gen) * 0.6 - 0.3)
    x = torch.rand(1, 13, generator=gen) * 0.8 + 0.2
    d = (torch.rand(1, 16, generator=gen) * 0.3 + 0.1) * torch.tensor([1.0, -1.0]).repeat(8)  # up and down rows
    model = array.pulse_model()
    kw = dict(desired_bl=8, bl_management=False)
    tri_w = torch.stack([triton_impl.pulsed_update(array.w, x, d, 0.5, model,
                                                   generator=torch.Generator().manual_seed(s), **kw) for s in range(8)])
    tri = tri_w - array.w
    ref = torch.stack([reference(array.w, x, d, 0.5, model, exact=True, generator=torch.Generator().manual_seed(100 + s),
                                 **kw) for s in range(400)]) - array.w
    z, var_ratio = _z_scores(tri, ref)
    print(f"z: max |z| {float(z.abs().max()):.2f}, mean {float(z.mean()):.3f}, std {float(z.std()):.3f}; "
          f"variance ratio {var_ratio:.3f}")
    assert z.abs().max() < 4.5, z
    assert abs(float(z.mean())) < 0.5 and 0.6 < float(z.std()) < 1.4
    assert 0.75 < var_ratio < 1.3
    assert ((array.w + tri) <= array.b_max + 1e-6).all() and ((array.w + tri) >= array.b_min - 1e-6).all()
    # the dispatcher runs the kernel on the Triton backend (the same draws as calling it), and the
    # reference, bit for bit, for a model the kernel lacks (a generic step function)
    with backend.use_backend("triton"):
        out = pulsed_update(array.w, x, d, 0.5, model, generator=torch.Generator().manual_seed(0), **kw)
        es_array = P.DeviceArray(P.ExpStep(), 4, 3, seed=0)
        es_out = pulsed_update(es_array.w, torch.ones(1, 3), torch.ones(1, 4), 0.1, es_array.pulse_model(),
                               generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, tri_w[0])
    es_ref = reference(es_array.w, torch.ones(1, 3), torch.ones(1, 4), 0.1, es_array.pulse_model(),
                       generator=torch.Generator().manual_seed(3))
    assert torch.equal(es_out, es_ref) and not torch.equal(es_out, es_array.w)


def test_block_counts_bf16_exact_and_chunked(monkeypatch):
    """bf16 count matmuls (chunks of <= 256 slots) give the same integers as fp32, also for > 256 slots."""
    from aimc_lab.kernels.pulsed_update import reference as ref_mod

    monkeypatch.setattr(ref_mod, "_FP32_SLOTS", ref_mod._BF16_SLOTS)  # same chunks: same random stream
    g = torch.Generator().manual_seed(0)
    p, q = torch.rand(3, 40, generator=g), torch.rand(3, 30, generator=g)
    sx, sd = torch.sign(torch.randn(3, 40, generator=g)), torch.sign(torch.randn(3, 30, generator=g))
    bl = torch.tensor([300, 5, 200])  # one row alone exceeds a bf16 chunk
    a = block_pulse_counts(p, q, bl, sx, sd, torch.Generator().manual_seed(1), torch.bfloat16)
    b = block_pulse_counts(p, q, bl, sx, sd, torch.Generator().manual_seed(1), torch.float32)
    for u, v in zip(a, b):
        assert torch.equal(u, v) and torch.equal(u, u.round())
    n_up, n_down = a
    assert (n_up + n_down).max() > 256  # beyond bf16's exact range, still exact
    # expectation: E[n_up + n_down] = Σ_m bl·q_i·p_j; direction from the signs
    expected = (bl[:, None, None] * q[:, :, None] * p[:, None, :]).sum(0)
    assert ((n_up + n_down - expected).abs() <= 6 * expected.sqrt() + 3).all()
    single = block_pulse_counts(p[:1], q[:1], bl[:1], sx[:1], sd[:1], g)
    up_dir = (sd[0][:, None] * sx[0][None, :]) < 0
    assert (single[1][up_dir] == 0).all() and (single[0][~up_dir] == 0).all()


def test_mixed_counts_constant_step_exact_sum():
    device = P.ConstantStep(dw_min=0.01, dw_min_std=0.0, up_down=0.2)
    array = P.DeviceArray(device, 6, 5, seed=0)
    g = torch.Generator().manual_seed(0)
    n_up, n_down = torch.randint(0, 5, (6, 5), generator=g).float(), torch.randint(0, 5, (6, 5), generator=g).float()
    got = apply_mixed_counts(array.w, n_up, n_down, device.pulse_model(array.tensors), None)
    torch.testing.assert_close(got, array.clip(array.w + n_up * array.dw_up - n_down * array.dw_down))
    slow = apply_mixed_counts(array.w, n_up, n_down, device.pulse_model(array.tensors), None, exact=True)
    torch.testing.assert_close(got, slow)


@pytest.mark.parametrize("device", [P.SoftBounds(dw_min=0.01, up_down=0.2, dw_min_std=0.3),
                                    P.LinearStep(dw_min=0.01, gamma_up=0.5, gamma_down=0.8, dw_min_std=0.3,
                                                 mult_noise=False)])
def test_mixed_closed_form_matches_interleaved_loop(device, closed_forms):
    """Interleaved up+down pulses: the closed form (continuous interleaving) vs the evenly interleaved
    pulse loop; noise-free means agree closely, the noise spreads within 10 %."""
    import dataclasses

    array = P.DeviceArray(device, 64, 64, seed=0)
    g = torch.Generator().manual_seed(0)
    array.set_weights(torch.rand(64, 64, generator=g) - 0.5)
    n_up = torch.randint(0, 30, (64, 64), generator=g).float()
    n_down = torch.randint(0, 30, (64, 64), generator=g).float()
    quiet = dataclasses.replace(device, dw_min_std=0.0)
    fast0 = apply_mixed_counts(array.w, n_up, n_down, quiet.pulse_model(array.tensors), None) - array.w
    slow0 = apply_mixed_counts(array.w, n_up, n_down, quiet.pulse_model(array.tensors), None, exact=True) - array.w
    assert (fast0 - slow0).abs().mean() < 0.05 * slow0.abs().mean()  # only near the bounds (clip order)
    assert (fast0 - slow0).abs().max() < 0.1 * slow0.abs().max()
    fast = torch.stack([apply_mixed_counts(array.w, n_up, n_down, device.pulse_model(array.tensors), g) - array.w - fast0
                        for _ in range(5)])
    slow = torch.stack([apply_mixed_counts(array.w, n_up, n_down, device.pulse_model(array.tensors), g, exact=True)
                        - array.w - slow0 for _ in range(5)])
    assert abs(fast.std() / slow.std() - 1) < 0.1


@pytest.mark.parametrize("device", [P.SoftBounds(dw_min=0.01, up_down=0.2, dw_min_std=0.3),
                                    P.ExpStep(dw_min=0.01, dw_min_std=0.3)])
def test_block_update_matches_row_by_row(device):
    """The default block update (all rows at once) agrees with the hardware order (exact, row by row)."""
    array = P.DeviceArray(device, 24, 24, seed=0)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 24, generator=gen) * 2 - 1
    d = torch.randn(16, 24, generator=gen) * 0.05
    g = torch.Generator().manual_seed(1)
    block = torch.stack([reference(array.w, x, d, 0.1, device.pulse_model(array.tensors), generator=g) - array.w
                         for _ in range(40)])
    exact = torch.stack([reference(array.w, x, d, 0.1, device.pulse_model(array.tensors), generator=g, exact=True) - array.w
                         for _ in range(40)])
    # per-device means agree within their sampling error (mean z² ≈ 1 when the distributions agree)
    z2 = (block.mean(0) - exact.mean(0)) ** 2 / ((block.var(0) + exact.var(0)) / 40).clamp(min=1e-12)
    assert z2.mean() < 1.5
    assert (block.mean() - exact.mean()).abs() < 0.05 * exact.mean(0).abs().mean()
    assert abs(block.std() / exact.std() - 1) < 0.05
    with pytest.raises(ValueError, match="block_rows"):
        reference(array.w, x, d, 0.1, device.pulse_model(array.tensors), block_rows=0)


@pytest.mark.parametrize("device", [P.reram_sb(), P.SoftBounds(), P.LinearStep(gamma_up=0.5, gamma_down=0.5)])
def test_update_stays_finite_when_bounds_lie_within_a_step(device, closed_forms):
    """Issue: one lr-0.1 step wrote NaN where a bound drawn with spread lies nearer to 0 than one step
    (log1p of a value below −1), and into devices without pulses (0·NaN)."""
    array = P.DeviceArray(device, 256, 256, seed=0)
    gen = torch.Generator().manual_seed(0)
    x, d = torch.randn(32, 256, generator=gen), torch.randn(32, 256, generator=gen)
    d[:, :8] = 0  # rows of devices that get no pulse
    out = reference(array.w, x, d, 0.1, device.pulse_model(array.tensors), generator=gen)
    assert torch.isfinite(out).all()
    assert torch.equal(out[:8], array.w[:8])
    assert (out <= array.b_max).all() and (out >= array.b_min).all()


def hand_tensors(b_max, b_min, dw_up=0.01, dw_down=0.01):
    n = len(b_max)
    return P.DeviceTensors(torch.full((n,), dw_up), torch.full((n,), dw_down), torch.tensor(b_max),
                           torch.tensor(b_min))


@pytest.mark.parametrize("device", [P.SoftBounds(dw_min_std=0.0), P.LinearStep(gamma_up=2.0, gamma_down=0.3,
                                                                               dw_min_std=0.0),
                                    P.ConstantStep(dw_min_std=0.0)])
def test_closed_forms_equal_the_recursion_in_corner_cases(device, closed_forms):
    """Noise-free: bounds of either sign, a bound nearer than one step, start at a bound, beyond the
    fixed point; the n-pulse forms equal one pulse at a time."""
    t = hand_tensors([0.005, 0.6, 0.6, -0.1, 0.3, 0.02, 1e-4], [-0.6, -0.004, -0.6, -0.3, 0.1, -0.02, -1e-4])
    w = torch.tensor([0.0, 0.0, 0.6, -0.2, 0.2, 0.02, 0.0])
    for n in (1, 3, 40):
        for up in (True, False):
            n_t, up_t = torch.full((7,), float(n)), torch.full((7,), up)
            fast = apply_pulse_counts(w, n_t, up_t, device.pulse_model(t), None)
            slow = apply_pulse_counts(w, n_t, up_t, device.pulse_model(t), None, exact=True)
            assert torch.isfinite(fast).all()
            torch.testing.assert_close(fast, slow, atol=1e-6, rtol=1e-5)
        n_up, n_down = torch.tensor([3.0, 0, 5, 2, 7, 1, 4]), torch.tensor([2.0, 4, 0, 6, 7, 9, 4])
        fast = apply_mixed_counts(w, n_up, n_down, device.pulse_model(t), None)
        slow = apply_mixed_counts(w, n_up, n_down, device.pulse_model(t), None, exact=True)
        assert torch.isfinite(fast).all()
        torch.testing.assert_close(fast, slow, atol=2e-4, rtol=0)  # continuous vs even interleaving


@pytest.mark.parametrize("device", [P.ConstantStep(dw_min=0.01, dw_min_std=0.5, mult_noise=False, up_down=0.3),
                                    P.SoftBounds(dw_min=0.01, dw_min_std=1.0, mult_noise=False),
                                    P.LinearStep(dw_min=0.01, gamma_up=0.5, gamma_down=0.5, dw_min_std=0.5)])
def test_multi_pulse_noise_has_the_distribution_of_single_pulses(device, closed_forms):
    """n noisy pulses at once (closed form, pulse loop near the bounds) vs one at a time: mean, spread and
    the mass at the bound agree, for devices far from and right at their bounds (~10⁴ devices)."""
    array = P.DeviceArray(device, 100, 100, seed=0)
    start = torch.where(torch.arange(100)[:, None] < 50, torch.tensor(0.0), array.b_max)  # half at b_max
    array.w.copy_(start)
    n_up = torch.randint(0, 30, (100, 100), generator=torch.Generator().manual_seed(1)).float()
    n_down = torch.where(torch.arange(100)[None, :] < 50, torch.zeros(()), n_up.flip(0))  # single and mixed
    g = torch.Generator().manual_seed(2)
    fast = apply_mixed_counts(array.w, n_up, n_down, device.pulse_model(array.tensors), g)
    slow = apply_mixed_counts(array.w, n_up, n_down, device.pulse_model(array.tensors), g, exact=True)
    for part in (slice(0, 50), slice(50, 100)):
        a, b = (fast - array.w)[part], (slow - array.w)[part]
        se = b.std().item() / b.numel() ** 0.5
        assert abs(a.mean().item() - b.mean().item()) < 5 * se * 2 ** 0.5 + 2e-4 * b.abs().mean().item()
        assert abs(a.std().item() / b.std().item() - 1) < 0.05
        at_a = (fast[part] == array.b_max[part]).float().mean().item()
        assert abs(at_a - (slow[part] == array.b_max[part]).float().mean().item()) < 0.02


def test_triton_offsets_are_64_bit_and_the_launcher_checks_sizes():
    """32-bit offsets slot·N·K + offs overflowed for a 512×512 tile from 265 rows (BL 31) on."""
    if _offsets_kernel is None:
        pytest.skip("triton is not installed")
    from aimc_lab.kernels.pulsed_update import triton_impl

    out = torch.empty(16, dtype=torch.int64)
    slot = 300 * 31
    _offsets_kernel[(1,)](out, slot, BLOCK=16)
    expected = slot * 2 ** 32 + torch.arange(16, dtype=torch.int64) * 16383
    assert torch.equal(out, expected)  # distinct and never wrapped (int32 would have wrapped)
    triton_impl.check_launch_size(10 ** 6, 512, 512, 31)  # a large batch is fine
    with pytest.raises(ValueError, match="N·K"):
        triton_impl.check_launch_size(1, 2 ** 16, 2 ** 15, 31)
    with pytest.raises(ValueError, match="M·BL"):
        triton_impl.check_launch_size(2 ** 27, 16, 16, 31)


def test_triton_follows_the_per_pulse_noise_rule_at_the_bounds():
    """Additive noise σ·Δ^d on every pulse: the kernel (interpreter) and the reference's pulse loop give
    the same mean and spread for devices at b_max getting up pulses and for asymmetric up/down steps."""
    pytest.importorskip("triton")
    from aimc_lab.kernels.pulsed_update import triton_impl

    device = P.SoftBounds(dw_min=0.02, up_down=0.4, dw_min_std=1.0, mult_noise=False, dw_min_dtod=0.2)
    array = P.DeviceArray(device, 16, 16, seed=0)
    array.w.copy_(torch.where(torch.arange(16)[:, None] < 8, array.b_max, torch.zeros(())))
    x = torch.ones(1, 16)
    d = torch.cat([-torch.ones(8), torch.ones(8)])[None, :] * 0.35  # rows 0-7 up, 8-15 down; q = 0.875
    kw = dict(desired_bl=8, bl_management=False, update_management=False)
    tri = torch.stack([triton_impl.pulsed_update(array.w, x, d, 1.0, device.pulse_model(array.tensors),
                                                 generator=torch.Generator().manual_seed(s), **kw)
                       for s in range(6)])
    ref = torch.stack([reference(array.w, x, d, 1.0, device.pulse_model(array.tensors), exact=True,
                                 generator=torch.Generator().manual_seed(100 + s), **kw) for s in range(24)])
    for part in (slice(0, 8), slice(8, 16)):
        a, b = tri[:, part] - array.w[part], ref[:, part] - array.w[part]
        assert abs(a.mean().item() - b.mean().item()) < 0.1 * b.abs().mean().item()
        assert abs(a.std().item() / b.std().item() - 1) < 0.1
    assert (tri[:, :8] < array.b_max[:8]).float().mean() > 0.5  # off the bound, not frozen at it


def test_closed_form_with_overflowing_noise_variance_falls_back_to_the_loop(closed_forms):
    """31 down pulses with huge multiplicative noise on a device at its soft bound: the closed form's
    variance is 0·inf (NaN) in fp32; the result must be the loop's (the device stays at its bound)."""
    dev = P.SoftBounds(dw_min=0.01, dw_min_dtod=0.0, dw_min_std=5.0, mult_noise=True, up_down=-1.0,
                       up_down_dtod=1.0, w_max=0.05, w_min=-0.05, w_max_dtod=0.0, w_min_dtod=0.0)
    # values from a hypothesis run: with these fp32 numbers 1 + γ·w is exactly 0 at the bound
    t = P.DeviceTensors(torch.zeros(1, 1), torch.full((1, 1), 0.025726651772856712),
                        torch.full((1, 1), 0.05000000074505806), torch.full((1, 1), -0.05000000074505806))
    w = torch.full((1, 1), -0.05000000074505806)
    for seed in range(20):
        out = apply_mixed_counts(w, torch.zeros(1, 1), torch.full((1, 1), 31.0), dev.pulse_model(t),
                                 torch.Generator().manual_seed(seed))
        assert torch.equal(out, w), (seed, out)


def test_kernel_modules_do_not_import_the_device_models():
    """Kernels take tensors and plain parameters (PulseModel): importing them in a fresh interpreter must
    not import aimc_lab.devices (devices import the kernels, never the other way round). Importing
    triton_impl imports the package and reference too; each is checked in turn."""
    import os
    import subprocess
    import sys

    code = ("import sys, importlib\n"
            "for name in ('aimc_lab.kernels.pulsed_update.reference', 'aimc_lab.kernels.pulsed_update',\n"
            "             'aimc_lab.kernels.pulsed_update.triton_impl'):\n"
            "    importlib.import_module(name)\n"
            "    bad = sorted(m for m in sys.modules if m.split('.')[:2] == ['aimc_lab', 'devices'])\n"
            "    print(name, 'DEVICES', bad)\n")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("DEVICES []") == 3, proc.stdout


COMPILE_SCRIPT = '''
import triton
from triton.backends.compiler import GPUTarget
from aimc_lab.kernels.pulsed_update import triton_impl as pu

fn = pu._pulsed_update_fwd_kernel
types = {n: "*fp32" for n in ("w_ptr", "out_ptr", "dw_up_ptr", "dw_down_ptr", "b_max_ptr", "b_min_ptr",
                              "g_up_ptr", "g_down_ptr", "p_ptr", "q_ptr", "sx_ptr", "sd_ptr")}
types.update(bl_ptr="*i32", M="i32", N="i32", K="i32", BL_MAX="i32", seed_x="i32", seed_d="i32", seed_n="i32",
             sigma="fp32")
for consts in (dict(MULT_NOISE=True, BLOCK_N=16, BLOCK_K=16), dict(MULT_NOISE=False, BLOCK_N=32, BLOCK_K=64)):
    sig = {n: ("constexpr" if n in consts else types[n]) for n in fn.arg_names}
    src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=consts)
    triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4, "num_stages": 2})
print("compiled")
'''


def test_pulsed_update_kernel_compiles_for_sm90(tmp_path):
    """The GPU path without a GPU: the pulsed-update kernel compiles ahead of time for sm_90 (both noise
    types, two block shapes) in a fresh interpreter-free Python, down to cubin with Triton's ptxas; the
    interpreter forgives what a GPU compile does not."""
    import os
    import subprocess
    import sys

    pytest.importorskip("triton")
    try:
        from triton.backends import backends
    except ImportError:  # pragma: no cover - older layouts
        pytest.skip("this Triton has no backend registry")
    if "nvidia" not in backends:
        pytest.skip("Triton's NVIDIA backend is not installed")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "compiled" in proc.stdout, proc.stderr[-4000:]


@pytest.mark.parametrize("sigma", [0.3, 1.5])
def test_constant_step_runs_equal_the_pulse_loop(sigma):
    """One-direction pulses of ConstantStep at and near a bound (the exact shortcut of the pulse loop):
    per-device mean/variance and the fraction left exactly at the bound match the plain one-pulse-at-a-
    time loop (run through a generic step function, the same physics); noise-free, the two agree to
    float64 rounding. σ = 1.5 reverses ~25 % of the steps (the replay of the loop with the same draws)."""
    from aimc_lab.kernels.pulsed_update import reference as R

    device = P.ConstantStep(dw_min=0.01, dw_min_std=sigma, up_down=0.2, mult_noise=False)
    array = P.DeviceArray(device, 40, 50, seed=0, dtype=torch.float64)
    fast_model = R._flat(array.pulse_model())
    t = fast_model.tensors
    loop_model = fast_model._replace(step=lambda w, up, tt: torch.where(up, tt.dw_up, tt.dw_down).expand_as(w))
    D = t.b_max.numel()
    w = torch.where(torch.arange(D) % 2 == 0, t.b_max, t.b_max - 0.02)  # at the bound, or two steps below
    g = torch.Generator().manual_seed(0)
    n = torch.randint(1, 12, (D,), generator=g).to(torch.float64)
    toward = torch.arange(D) % 4 < 2  # up pulses (into b_max) for half the devices, down for the others
    n_up, n_down = torch.where(toward, n, 0.0), torch.where(toward, 0.0, n)
    fast = torch.stack([R._pulse_loop(w, n_up, n_down, fast_model, g) for _ in range(40)])
    slow = torch.stack([R._pulse_loop(w, n_up, n_down, loop_model, g) for _ in range(40)])
    var = (fast.var(0) + slow.var(0)) / 40
    moving = var > 0
    z = (fast.mean(0) - slow.mean(0))[moving] / var[moving].sqrt()
    assert z.abs().max() < 5 and abs(float(z.mean())) < 0.15
    assert abs(float(fast.var(0).mean() / slow.var(0).mean()) - 1) < 0.1
    at_bound = (fast == t.b_max).double().mean(0) - (slow == t.b_max).double().mean(0)
    assert abs(float(at_bound.mean())) < 0.02
    quiet_fast, quiet_loop = fast_model._replace(sigma=0.0), loop_model._replace(sigma=0.0)
    torch.testing.assert_close(R._pulse_loop(w, n_up * 7, n_down * 7, quiet_fast, None),
                               R._pulse_loop(w, n_up * 7, n_down * 7, quiet_loop, None), rtol=0, atol=1e-13)
