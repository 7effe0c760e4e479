"""The compiled pulse loop (kernels/pulsed_update/compiled.py) against the spec's loop and order.

The spec's pulse loop (reference._pulse_loop) and the compiled one make the same draws, so seeded
calls agree to float rounding: every closed-form kind, both noise types, noise-free, float32 and
float64, devices at their bounds, single and mixed directions, up to 60 pulses, no pulses at all;
the compiled loop reads the spec's draw layout without sorting. The fused update of an
array (update_in_place) equals the kernel plus the commit. ``AIMC_LAB_NUMBA=0`` switches it off.
"""

import numpy as np
import pytest
import torch

from aimc_lab.devices import pulsed as P
from aimc_lab.kernels import _numba
from aimc_lab.kernels.pulsed_update import compiled
from aimc_lab.kernels.pulsed_update import cpu_fast as F
from aimc_lab.kernels.pulsed_update import reference as R

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")

DEVICES = [
    P.ConstantStep(dw_min=0.01, dw_min_std=0.3),
    P.ConstantStep(dw_min=0.01, dw_min_std=0.5, mult_noise=False, up_down=0.3),
    P.LinearStep(dw_min=0.01, gamma_up=0.5, gamma_down=0.8, dw_min_std=0.3),
    P.LinearStep(dw_min=0.01, gamma_up=0.5, gamma_down=0.8, dw_min_std=0.3, mult_noise=False),
    P.reram_sb(),
    P.SoftBounds(dw_min=0.02, dw_min_std=0.0),
    P.idealized(),
]
IDS = ["const-mult", "const-add", "linear-mult", "linear-add", "reram_sb", "soft-quiet", "idealized"]


def _state(device, n, dtype, seed=0):
    """Flat hidden weights (a fifth of them at a bound), mixed and single-direction counts, the model."""
    array = P.DeviceArray(device, 1, n, seed=seed, dtype=dtype)
    g = torch.Generator().manual_seed(seed)
    w = (torch.rand(n, generator=g, dtype=dtype) - 0.5).view(1, n)
    w = torch.where(torch.rand(1, n, generator=g) < 0.1, array.b_max, w)
    w = torch.where(torch.rand(1, n, generator=g) < 0.1, array.b_min, w)
    w = array.clip(w).reshape(-1)
    n_up = torch.randint(0, 31, (n,), generator=g).to(dtype) * (torch.rand(n, generator=g) < 0.6)
    n_down = torch.randint(0, 31, (n,), generator=g).to(dtype) * (torch.rand(n, generator=g) < 0.6)
    return w, n_up, n_down, R._flat(array.pulse_model())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES, ids=IDS)
@pytest.mark.parametrize("n", [1, 17, 700])
def test_compiled_loop_equals_the_spec_with_the_same_draws(device, n, dtype):
    w, n_up, n_down, model = _state(device, n, dtype)
    w0 = w.clone()
    want = R._pulse_loop(w, n_up, n_down, model, torch.Generator().manual_seed(3))
    got = compiled.run_loop(w, n_up, n_down, model, torch.Generator().manual_seed(3)) if not model.constant \
        else F._pulse_loop(w, n_up, n_down, model, torch.Generator().manual_seed(3))
    assert got.dtype == dtype
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-12)
    assert torch.equal(w, w0)  # the input is not written
    assert (got <= model.tensors.b_max).all() and (got >= model.tensors.b_min).all()


@pytest.mark.parametrize("device", DEVICES, ids=IDS)
def test_compiled_mixed_loop_equals_the_eager_loop(device, monkeypatch):
    """Only mixed directions (the constant kind's shortcut takes none): the compiled and eager loops
    of cpu_fast with the same draws, and the generator left in the same state."""
    w, n_up, n_down, model = _state(device, 500, torch.float32, seed=1)
    n_up = n_up + 1
    n_down = n_down + 1
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    got = F._pulse_loop(w, n_up, n_down, model, g1)
    monkeypatch.setenv("AIMC_LAB_NUMBA", "0")
    want = F._pulse_loop(w, n_up, n_down, model, g2)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_compiled_loop_reads_the_spec_draw_layout():
    """The spec's layout of the loop's normals (reference.loop_draws): pulse k's draws for the devices
    still pulsing, in the loop's order (T descending, stable), after pulse k − 1's. The compiled loop
    runs the devices in flat order and counts each one's position in that order instead of sorting:
    each of its devices equals its own T pulses replayed one by one with the draws the layout gives it."""
    device = P.LinearStep(dw_min=0.01, gamma_up=0.5, gamma_down=0.8, dw_min_std=0.4)
    w, n_up, n_down, model = _state(device, 40, torch.float64, seed=2)
    idx, U, T, live = R.loop_order(n_up, n_down)
    off = [0]
    for n_k in live[:-1]:
        off.append(off[-1] + n_k)
    xi = torch.randn(sum(live), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got = compiled.run_loop(w, n_up, n_down, model, torch.Generator().manual_seed(3))
    assert len(live) > 5 and len(set(T.tolist())) > 5  # devices of many pulse counts, ties among them
    for p, i in enumerate(idx.tolist()):
        one = R._subset(model, torch.tensor([i]))
        v = w[i:i + 1].clone()
        for k in range(1, int(T[p]) + 1):
            up = ((k - 1) * U[p] % T[p] + U[p]) >= T[p]
            v = R.pulse(v, up.view(1), one, xi[off[k - 1] + p].view(1))
        torch.testing.assert_close(got[i:i + 1], v, rtol=0, atol=1e-12)


def test_no_pulses_draws_nothing_and_copies():
    w, _, _, model = _state(P.reram_sb(), 50, torch.float32)
    zero = torch.zeros(50)
    gen = torch.Generator().manual_seed(1)
    state = gen.get_state()
    out = compiled.run_loop(w, zero, zero, model, gen)
    assert torch.equal(out, w) and out.data_ptr() != w.data_ptr()
    assert torch.equal(gen.get_state(), state)


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("AIMC_LAB_NUMBA", "0")
    assert not compiled.available()
    monkeypatch.setenv("AIMC_LAB_NUMBA", "1")
    assert compiled.available()


def test_without_numba_the_eager_loop_serves(monkeypatch):
    """numba missing (an import error at first use): available() is False and cpu_fast gives the
    same result through its eager loop."""
    w, n_up, n_down, model = _state(P.reram_sb(), 300, torch.float32)
    want = F._pulse_loop(w, n_up, n_down, model, torch.Generator().manual_seed(2))
    monkeypatch.setitem(_numba._state, "tried", False)
    monkeypatch.setitem(_numba._state, "numba", None)
    monkeypatch.setattr(_numba, "_cache", {})
    monkeypatch.setitem(__import__("sys").modules, "numba", None)  # import numba raises ImportError
    assert not compiled.available()
    got = F._pulse_loop(w, n_up, n_down, model, torch.Generator().manual_seed(2))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_slot_counts_equal_the_spec_exactly(dtype, monkeypatch):
    """The coincidence counts of the compiled loop equal the spec's matmuls of bit matrices (integers),
    with the same uniforms: rows of different BL, a row without slots, signs of both kinds, and the
    slots split into several chunks; the generator ends in the same state."""
    g = torch.Generator().manual_seed(0)
    M, K, N = 6, 37, 23
    x = torch.randn(M, K, generator=g, dtype=dtype) * (torch.rand(M, K, generator=g) < 0.8)
    d = torch.randn(M, N, generator=g, dtype=dtype)
    bl, p, q = R.pulse_train_factors(x, d, 0.5, 0.01, 31, True, True)
    bl[2] = 0
    for chunk in (None, 16):
        if chunk is not None:  # force several chunks of slots
            monkeypatch.setattr(R, "_BF16_SLOTS", chunk)
            monkeypatch.setattr(R, "_FP32_SLOTS", chunk)
        g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
        want = R._slot_counts(p, q, bl, torch.sign(x), torch.sign(d), g1)
        got = compiled._chunked_counts(p.numpy(), q.numpy(), bl.numpy(), torch.sign(x).numpy(), torch.sign(d).numpy(),
                                       g2, split=False)
        got = [torch.from_numpy(v) for v in got]
        assert got[0].dtype == dtype and float(want[0].sum()) > 100
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        assert torch.equal(g1.get_state(), g2.get_state())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("um, blm", [(True, True), (False, True), (True, False), (False, False)])
def test_compiled_factors_and_counts_equal_the_spec_exactly(dtype, um, blm):
    """pulse_counts: the spec's factors bit for bit (so every firing test is the spec's), the rows that
    cannot fire skipped as cpu_fast skips them, and the counts of the spec with the same uniforms."""
    g = torch.Generator().manual_seed(0)
    M, K, N = 7, 19, 11
    x = torch.randn(M, K, generator=g, dtype=dtype) * torch.rand(M, 1, generator=g, dtype=dtype) * 3
    d = torch.randn(M, N, generator=g, dtype=dtype) * 0.05
    x[1] = 0.0
    d[4] = 0.0
    x[5, :4] = 0.0
    for lr in (0.01, 0.1, 3.0):
        bl, p, q = R.pulse_train_factors(x, d, lr, 0.001, 31, um, blm)
        got_bl, got_p, got_q, keep = compiled.pulse_train_factors(x.numpy(), d.numpy(), lr, 0.001, 31, um, blm)
        assert torch.equal(torch.from_numpy(got_bl), bl)
        assert torch.equal(torch.from_numpy(got_p), p) and torch.equal(torch.from_numpy(got_q), q)
        rows = ((p.amax(dim=1) > 0) & (q.amax(dim=1) > 0)).nonzero().squeeze(-1)
        assert torch.equal(torch.from_numpy(np.nonzero(keep)[0]), rows)
        want = R._slot_counts(p[rows], q[rows], bl[rows], torch.sign(x[rows]), torch.sign(d[rows]),
                              torch.Generator().manual_seed(1))
        n_up, n_down, total = compiled.pulse_counts(x, d, lr, 0.001, 31, um, blm, torch.Generator().manual_seed(1))
        assert torch.equal(total, want[0])
        assert torch.equal(n_up, (want[0] - want[1]) * 0.5) and torch.equal(n_down, (want[0] + want[1]) * 0.5)
    assert compiled.pulse_counts(x * 0, d, 0.1, 0.001, 31, um, blm, None) is None


@pytest.mark.parametrize("scale_std", [0.0, 3.0])
def test_compiled_commit_equals_the_eager_commit(scale_std, monkeypatch):
    """DeviceArray.commit: compiled and eager store the same weights and the same write noise (one draw
    per changed device, in flat order; none without write noise) and leave the generator alike."""
    arrays = [P.DeviceArray(P.SoftBounds(dw_min=0.01, write_noise_std=scale_std), 30, 40, seed=0) for _ in range(2)]
    g = torch.Generator().manual_seed(0)
    new = arrays[0].w.clone()
    change = torch.rand(30, 40, generator=g) < 0.3
    new[change] += 0.01
    gens = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)]
    for array, gen, flag in zip(arrays, gens, ("1", "0")):
        array.write_noise.fill_(0.5)
        monkeypatch.setenv("AIMC_LAB_NUMBA", flag)
        array.commit(new, gen)
    assert torch.equal(arrays[0].w, new) and torch.equal(arrays[1].w, new)
    assert torch.equal(arrays[0].write_noise, arrays[1].write_noise)
    assert torch.equal(gens[0].get_state(), gens[1].get_state())
    kept = arrays[0].write_noise[~change]
    assert (kept == 0.5).all()
    if scale_std > 0:
        drawn = arrays[0].write_noise[change]
        assert abs(float(drawn.std()) / (scale_std * 0.01) - 1) < 0.15


def _twins(device, monkeypatch, lane: str):
    """Two equal 13×29 arrays with equal generators (one per gear), and the results of every call of
    ``compiled.<lane>`` (the compiled run's)."""
    arrays = [P.DeviceArray(device, 13, 29, seed=4) for _ in range(2)]
    gens = [torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)]
    rests = []
    inner = getattr(compiled, lane)
    monkeypatch.setattr(compiled, lane, lambda *a: rests.append(inner(*a)) or rests[-1])
    return arrays, gens, rests


@pytest.mark.parametrize("device", [P.reram_sb(), P.LinearStep(dw_min=0.01, gamma_up=0.5, gamma_down=0.8,
                                                                dw_min_std=0.3, write_noise_std=2.0)],
                         ids=["reram_sb", "linear-write-noise"])
@pytest.mark.parametrize("lr, looped", [(0.003, True), (40.0, False)])  # 40: > LOOP_PULSES pulses, closed forms
def test_fused_array_update_equals_the_kernel_and_commit(device, lr, looped, monkeypatch):
    """DeviceArray.pulsed_update through update_in_place (one compiled pass) against the eager kernel
    plus the eager commit, over several updates: the same weights (float rounding), write noise and
    generator state."""
    arrays, gens, rests = _twins(device, monkeypatch, "update_in_place")
    g = torch.Generator().manual_seed(0)
    for step in range(4):
        x = torch.rand(5, 29, generator=g) * (torch.rand(5, 29, generator=g) < 0.7)
        d = torch.randn(5, 13, generator=g) * 0.3
        for array, gen, flag in zip(arrays, gens, ("1", "0")):
            monkeypatch.setenv("AIMC_LAB_NUMBA", flag)
            assert compiled.serves_update(array.w, array.write_noise, array.pulse_model()) == (flag == "1")
            out = array.pulsed_update(x, d, lr, generator=gen)
            assert torch.equal(out, array.w) and out.data_ptr() != array.w.data_ptr()
        torch.testing.assert_close(arrays[0].w, arrays[1].w, rtol=0, atol=1e-6)
        torch.testing.assert_close(arrays[0].write_noise, arrays[1].write_noise, rtol=0, atol=1e-6)
        assert torch.equal(gens[0].get_state(), gens[1].get_state()), step
    assert len(rests) == 4 and all((r is None) == looped for r in rests)  # the fused loop, or the closed forms
    assert float((arrays[0].w != P.DeviceArray(device, 13, 29, seed=4).w).float().mean()) > 0.3  # it trained


def test_fused_update_leaves_other_kinds_to_the_kernel():
    """The constant kind (its single-direction shortcut) and the generic kinds are not served."""
    for device in (P.ConstantStep(dw_min=0.01), P.ExpStep(dw_min=0.01)):
        array = P.DeviceArray(device, 3, 4, seed=0)
        assert not compiled.serves_update(array.w, array.write_noise, array.pulse_model())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_read_equals_the_eager_read(dtype, monkeypatch):
    """DeviceArray.read: (w + write noise) − reference, bit for bit in both gears (a reference set by
    the symmetry point, write noise drawn)."""
    array = P.DeviceArray(P.SoftBounds(dw_min=0.01, write_noise_std=3.0, subtract_symmetry_point=True,
                                       up_down_dtod=0.2), 17, 9, seed=0, dtype=dtype)
    array.write_noise.normal_(0, 0.03, generator=torch.Generator().manual_seed(1))
    assert float(array.reference.abs().max()) > 0
    monkeypatch.setenv("AIMC_LAB_NUMBA", "1")
    got = array.read()
    monkeypatch.setenv("AIMC_LAB_NUMBA", "0")
    want = array.read()
    assert got.dtype == dtype and torch.equal(got, want)
    assert torch.equal(want, array.w + array.write_noise - array.reference)


def test_fused_update_sees_an_in_place_change_of_the_device_tensors(monkeypatch):
    """The loop's numpy views live with the array's cached pulse model: an in-place change of a device
    tensor (a new version) rebuilds both, so the fused update uses the new steps, as the eager path."""
    arrays = [P.DeviceArray(P.reram_sb(), 6, 11, seed=1) for _ in range(2)]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 11, generator=g)
    d = torch.randn(5, 6, generator=g) * 0.3
    gens = [torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)]
    for step in range(2):
        for array, gen, flag in zip(arrays, gens, ("1", "0")):
            monkeypatch.setenv("AIMC_LAB_NUMBA", flag)
            array.pulsed_update(x, d, 0.003, generator=gen)
            if step == 0:
                array.dw_up.mul_(3.0)
                array.b_max.mul_(0.6)  # the soft bounds' slopes −γ/b are derived: stale views would keep them
                array.b_min.mul_(0.6)
                array.w.clamp_(max=array.b_max).clamp_(min=array.b_min)
        torch.testing.assert_close(arrays[0].w, arrays[1].w, rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 45.0])  # 45: more than LOOP_PULSES pulses, the closed forms
def test_fused_counts_update_equals_the_kernel_and_commit(scale, monkeypatch):
    """DeviceArray.signed_counts_update (mixed precision's and the transfers' digital writes) through
    counts_in_place against the eager kernel plus commit: same weights, write noise, generator state."""
    device = P.LinearStep(dw_min=0.01, gamma_up=0.5, gamma_down=0.8, dw_min_std=0.3, write_noise_std=2.0)
    arrays = [P.DeviceArray(device, 9, 14, seed=2) for _ in range(2)]
    gens = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)]
    g = torch.Generator().manual_seed(0)
    for step in range(3):
        counts = torch.trunc(torch.randn(9, 14, generator=g) * scale)
        for array, gen, flag in zip(arrays, gens, ("1", "0")):
            monkeypatch.setenv("AIMC_LAB_NUMBA", flag)
            out = array.signed_counts_update(counts, generator=gen)
            assert torch.equal(out, array.w)
        torch.testing.assert_close(arrays[0].w, arrays[1].w, rtol=0, atol=1e-6)
        torch.testing.assert_close(arrays[0].write_noise, arrays[1].write_noise, rtol=0, atol=1e-6)
        assert torch.equal(gens[0].get_state(), gens[1].get_state())


def test_compiled_loop_refuses_bad_counts():
    """A NaN, inf or negative count never reaches an integer conversion in the compiled loop."""
    w, n_up, n_down, model = _state(P.reram_sb(), 20, torch.float32)
    for bad in (float("nan"), float("inf"), -1.0):
        up = n_up.clone()
        up[3] = bad
        with pytest.raises(ValueError, match="finite and >= 0"):
            compiled.run_loop(w, up, n_down, model, torch.Generator())


@pytest.mark.parametrize("device", [P.reram_sb(), P.LinearStep(dw_min=0.01, gamma_up=0.5, gamma_down=0.8,
                                                                dw_min_std=0.3, write_noise_std=2.0)],
                         ids=["reram_sb", "linear-write-noise"])
@pytest.mark.parametrize("bl, looped", [(31, True), (200, False)])  # 200: > LOOP_PULSES pulses, closed forms
def test_fused_column_update_equals_the_kernel_and_column_commit(device, bl, looped, monkeypatch):
    """DeviceArray.pulsed_update_columns (a transfer's write of a few columns) through one compiled pass
    against the eager kernel on the slice plus commit_columns: the same weights, write noise (the
    column commit's [N, n] block) and generator state, nothing outside the columns touched; also when
    no pulse fires (d = 0), where the eager commit still draws its block."""
    arrays, gens, rests = _twins(device, monkeypatch, "update_columns_in_place")
    g = torch.Generator().manual_seed(0)
    w0 = arrays[0].w.clone()
    for step, cols in enumerate((torch.tensor([3]), torch.tensor([28, 0, 5]), torch.tensor([7, 8]))):
        d = torch.randn(cols.numel(), 13, generator=g) * (0.3 if step != 2 else 0.0)
        eye = torch.eye(cols.numel())
        for array, gen, flag in zip(arrays, gens, ("1", "0")):
            monkeypatch.setenv("AIMC_LAB_NUMBA", flag)
            array.pulsed_update_columns(cols, eye, d, 0.5 if looped else 400.0, desired_bl=bl, generator=gen)
        torch.testing.assert_close(arrays[0].w, arrays[1].w, rtol=0, atol=1e-6)
        torch.testing.assert_close(arrays[0].write_noise, arrays[1].write_noise, rtol=0, atol=1e-6)
        assert torch.equal(gens[0].get_state(), gens[1].get_state()), step
    assert len(rests) == 3 and all((r is None) == looped for r in rests[:2])
    moved = arrays[0].w != w0
    assert moved[:, [3, 28, 0, 5]].float().mean() > 0.3 and not moved[:, [1, 2, 4, 6, 7, 8]].any()


@pytest.mark.parametrize("scale", [1.0, 45.0])  # 45: more than LOOP_PULSES pulses, the closed forms
def test_fused_column_counts_update_equals_the_kernel_and_column_commit(scale, monkeypatch):
    """DeviceArray.signed_counts_update_columns (buffered transfers' writes) compiled against eager:
    same weights, write noise and generator state; only the given columns change."""
    device = P.LinearStep(dw_min=0.01, gamma_up=0.5, gamma_down=0.8, dw_min_std=0.3, write_noise_std=2.0)
    arrays = [P.DeviceArray(device, 9, 14, seed=2) for _ in range(2)]
    gens = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)]
    g = torch.Generator().manual_seed(0)
    w0 = arrays[0].w.clone()
    cols = torch.tensor([11, 2, 6])
    for step in range(3):
        counts = torch.trunc(torch.randn(9, 3, generator=g) * scale)
        for array, gen, flag in zip(arrays, gens, ("1", "0")):
            monkeypatch.setenv("AIMC_LAB_NUMBA", flag)
            array.signed_counts_update_columns(cols, counts, generator=gen)
        torch.testing.assert_close(arrays[0].w, arrays[1].w, rtol=0, atol=1e-6)
        torch.testing.assert_close(arrays[0].write_noise, arrays[1].write_noise, rtol=0, atol=1e-6)
        assert torch.equal(gens[0].get_state(), gens[1].get_state())
    other = torch.ones(14, dtype=torch.bool)
    other[cols] = False
    assert torch.equal(arrays[0].w[:, other], w0[:, other]) and (arrays[0].w[:, cols] != w0[:, cols]).any()
    assert (arrays[0].write_noise[:, other] == 0).all()
