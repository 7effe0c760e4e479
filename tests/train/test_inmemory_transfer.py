"""Transfers work on the transferred columns only (aimc_lab/train/inmemory/transfer.py, docs/physics.md §4):
the column read equals the one-hot read of the whole array exactly (same generator), the column writes
equal the whole-array updates in law and leave every other column untouched."""

import pytest
import torch
from torch import nn

from aimc_lab.config import IOParameters
from aimc_lab.devices import pulsed as P
from aimc_lab.kernels.analog_mvm import analog_mvm
from aimc_lab.train.inmemory import InMemoryTile, training_config, transfer

N, K = 6, 9
COLS = torch.tensor([7, 8, 0, 1])  # cyclic, wrapping around K


def _tile(algorithm="ttv2", device=None, seed=0, **overrides):
    device = device or P.SoftBounds(dw_min=0.01, dw_min_std=0.5, write_noise_std=2.0)
    return InMemoryTile(N, K, training_config(algorithm, device=device, **overrides), seed=seed)


def _onehot_read(tile, cols, generator):
    onehot = torch.zeros(cols.numel(), K)
    onehot[torch.arange(cols.numel()), cols] = 1.0
    return analog_mvm(onehot, tile.A.read(), tile.training_params.transfer_io, generator=generator).t()


READS = {
    "default": IOParameters(),
    "pcm_read": IOParameters(w_noise=0.02, w_noise_type="pcm_read"),
    "additive_w_noise": IOParameters(w_noise=0.02, w_noise_type="additive_constant", noise_management="max"),
    "saturating": IOParameters(out_bound=0.05),  # bound management re-runs rows
    "perfect": IOParameters(is_perfect=True),
    "input_noise": IOParameters(inp_noise=0.05),  # not column-local: the one-hot read over all of A
    "ir_drop": IOParameters(ir_drop=1.0),
}


@pytest.mark.parametrize("name", list(READS))
def test_column_read_equals_the_onehot_read(name):
    tile = _tile(transfer_io=READS[name])
    tile.A.w.copy_(tile.A.reference + 0.4 * torch.randn(N, K, generator=torch.Generator().manual_seed(1)))
    tile.A.write_noise.normal_(0, 0.01, generator=torch.Generator().manual_seed(2))
    state = tile.generator.get_state()
    reads = transfer.read_columns(tile, COLS)
    after = tile.generator.get_state()
    tile.generator.set_state(state)
    expected = _onehot_read(tile, COLS, tile.generator)
    assert reads.shape == (N, COLS.numel())
    assert torch.equal(reads, expected)
    assert torch.equal(after, tile.generator.get_state())  # the same draws were consumed
    if name == "saturating":
        assert reads.abs().max() > 0.05  # bound management did act


def test_column_read_is_exact_only_without_row_coupled_effects():
    assert transfer.column_read_is_exact(IOParameters())
    assert transfer.column_read_is_exact(IOParameters(is_perfect=True, inp_noise=0.1))
    for io in (IOParameters(inp_noise=0.1), IOParameters(inp_sto_round=True), IOParameters(ir_drop=0.5)):
        assert not transfer.column_read_is_exact(io)


# identical devices (no device-to-device spread): every row of a column is a sample of the same law
SAME = dict(dw_min=0.01, dw_min_std=0.5, dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0)
ROWS, REPEATS = 256, 16


def _column_stats(delta):
    """delta [repeats, ROWS, n]: the mean per column and its standard error (over repeats, whose rows
    may be correlated), and the spread per column."""
    per_repeat = delta.mean(1)  # [repeats, n]
    return per_repeat.mean(0), per_repeat.std(0) / REPEATS ** 0.5, delta.std((0, 1))


def _assert_same_law(full, cols):
    (m_a, se_a, s_a), (m_b, se_b, s_b) = _column_stats(full), _column_stats(cols)
    assert ((m_a - m_b).abs() <= 5 * (se_a ** 2 + se_b ** 2).sqrt() + 1e-6).all(), (m_a, m_b)
    assert ((s_b / s_a - 1).abs() < 0.1).all(), (s_a, s_b)


def test_column_pulsed_update_equals_the_onehot_update_in_law():
    # Tiki-Taka's write: x = e_k per transferred column, δ = −A[:, k]: the same law per device as the
    # pulse-train update of the whole array with one-hot rows; nothing outside the columns changes
    tile = InMemoryTile(ROWS, K, training_config("tiki-taka", device=P.SoftBounds(**SAME)), seed=0)
    d = torch.tensor([0.1, -0.05, 0.2, -0.3]).unsqueeze(1).expand(-1, ROWS).contiguous()  # [n, ROWS]
    onehot = torch.zeros(COLS.numel(), K)
    onehot[torch.arange(COLS.numel()), COLS] = 1.0
    w0 = tile.C.w.clone()
    gen = torch.Generator().manual_seed(4)
    full, cols = [], []
    for _ in range(REPEATS):
        full.append(tile.C.pulsed_update(onehot, d, 0.5, desired_bl=31, generator=gen, commit=False) - w0)
        transfer.column_pulsed_update(tile.C, COLS, d, 0.5, desired_bl=31, generator=gen)
        cols.append(tile.C.w - w0)
        tile.C.w.copy_(w0)
    full, cols = torch.stack(full), torch.stack(cols)
    other = torch.ones(K, dtype=torch.bool)
    other[COLS] = False
    assert torch.equal(cols[:, :, other], torch.zeros(REPEATS, ROWS, int(other.sum())))
    assert torch.equal(full[:, :, other], torch.zeros(REPEATS, ROWS, int(other.sum())))
    assert (full[:, :, COLS].mean((0, 1)).abs() > 0.01).all()  # several steps per device and column
    _assert_same_law(full[:, :, COLS], cols[:, :, COLS])


def test_column_counts_update_equals_the_whole_array_update():
    # noise-free steps: the same weights exactly; noisy steps: the same law; other columns untouched
    counts = torch.tensor([[1.0, -1.0, 3.0, -2.0]]).expand(ROWS, -1).contiguous()
    exact = InMemoryTile(ROWS, K, training_config("ttv2", device=P.SoftBounds(dw_min=0.01, dw_min_std=0.0)),
                         seed=0)
    full = torch.zeros(ROWS, K)
    full[:, COLS] = counts
    expected = exact.C.signed_counts_update(full, generator=torch.Generator().manual_seed(0), commit=False)
    transfer.column_counts_update(exact.C, COLS, counts, torch.Generator().manual_seed(0))
    torch.testing.assert_close(exact.C.w, expected, rtol=0, atol=1e-7)

    tile = InMemoryTile(ROWS, K, training_config("ttv2", device=P.SoftBounds(**SAME)), seed=0)
    w0 = tile.C.w.clone()
    gen = torch.Generator().manual_seed(5)
    a, b = [], []
    for _ in range(REPEATS):
        a.append(tile.C.signed_counts_update(full, generator=gen, commit=False) - w0)
        transfer.column_counts_update(tile.C, COLS, counts, gen)
        b.append(tile.C.w - w0)
        tile.C.w.copy_(w0)
    a, b = torch.stack(a), torch.stack(b)
    assert torch.equal(b[:, :, 2:7], torch.zeros(REPEATS, ROWS, 5))
    _assert_same_law(a[:, :, COLS], b[:, :, COLS])


def test_column_write_redraws_write_noise_where_weights_changed():
    tile = _tile(device=P.SoftBounds(dw_min=0.01, dw_min_std=0.5, write_noise_std=5.0))
    before = tile.C.write_noise.clone()
    counts = torch.zeros(N, COLS.numel())
    counts[2, 1] = 3.0
    transfer.column_counts_update(tile.C, COLS, counts, torch.Generator().manual_seed(0))
    changed = before != tile.C.write_noise
    assert changed[2, COLS[1]] and int(changed.sum()) == 1


def _two_layer_model(algorithm, device, seed=0):
    config = training_config(algorithm, device=device)
    return nn.Sequential(InMemoryTile(N, K, config, seed=seed), nn.Sigmoid(), InMemoryTile(3, N, config, seed=seed + 1))


def test_pending_counts_apply_all_tiles_in_one_call_with_the_same_result():
    # noise-free steps and no write noise: applying both tiles' counts together equals applying each
    # tile's counts alone, exactly; arrays of another device model form their own group
    exact = P.SoftBounds(dw_min=0.01, dw_min_std=0.0)
    arrays = [InMemoryTile(N, K, training_config("mp", device=exact), seed=s).C for s in (0, 1)]
    other = InMemoryTile(N, K, training_config("mp", device=P.ConstantStep(dw_min=0.01, dw_min_std=0.0)), seed=2).C
    g = torch.Generator().manual_seed(0)
    counts = [torch.randint(-3, 4, (N, K), generator=g).float() for _ in range(3)]
    col_counts = torch.randint(-2, 3, (N, COLS.numel()), generator=g).float()
    expected = [arrays[0].signed_counts_update(counts[0], commit=False),
                arrays[1].signed_counts_update(counts[1], commit=False),
                other.signed_counts_update(counts[2], commit=False)]
    full = torch.zeros(N, K)
    full[:, COLS] = col_counts
    pending = transfer.PendingCounts()
    pending.add(arrays[0], None, counts[0], g)
    pending.add(arrays[1], None, counts[1], g)
    pending.add(other, None, counts[2], g)
    assert len(pending) == 3
    pending.apply()
    assert len(pending) == 0
    for array, want in zip([*arrays, other], expected):
        torch.testing.assert_close(array.w, want, rtol=0, atol=1e-7)
    # columns of one array and all of another, together
    expected_cols = arrays[0].signed_counts_update(full, commit=False)
    expected_all = arrays[1].signed_counts_update(counts[0], commit=False)
    pending.add(arrays[0], COLS, col_counts, g)
    pending.add(arrays[1], None, counts[0], g)
    pending.apply()
    torch.testing.assert_close(arrays[0].w, expected_cols, rtol=0, atol=1e-7)
    torch.testing.assert_close(arrays[1].w, expected_all, rtol=0, atol=1e-7)


def test_pending_counts_equal_the_per_array_writes_in_law():
    arrays = [InMemoryTile(ROWS, K, training_config("mp", device=P.SoftBounds(**SAME)), seed=s).C for s in (0, 1)]
    counts = torch.tensor([1.0, -1.0, 3.0, -2.0, 0.0, 2.0, -3.0, 1.0, 0.0]).expand(ROWS, -1).contiguous()
    w0 = [a.w.clone() for a in arrays]
    gen = torch.Generator().manual_seed(5)
    alone, together = [], []
    for _ in range(REPEATS):
        alone.append(arrays[1].signed_counts_update(counts, generator=gen, commit=False) - w0[1])
        pending = transfer.PendingCounts()
        for a in arrays:
            pending.add(a, None, counts, gen)
        pending.apply()
        together.append(arrays[1].w - w0[1])
        for a, w in zip(arrays, w0):
            a.w.copy_(w)
    alone, together = torch.stack(alone), torch.stack(together)
    assert torch.equal(together[:, :, counts[0] == 0], torch.zeros(REPEATS, ROWS, 2))
    fired = counts[0] != 0
    _assert_same_law(alone[:, :, fired], together[:, :, fired])


@pytest.mark.parametrize("algorithm", ["ttv2", "mixed-precision"])
def test_analog_sgd_applies_the_tiles_writes_together(algorithm, monkeypatch):
    # one signed-counts kernel call per step for a two-tile model; with noise-free steps and no write
    # noise the weights equal those of stepping each tile with its own writes
    from aimc_lab.train.analog_sgd import AnalogSGD

    device = P.SoftBounds(dw_min=0.001, dw_min_std=0.0)
    models = [_two_layer_model(algorithm, device) for _ in range(2)]
    calls = []
    real = transfer.signed_counts_update
    monkeypatch.setattr(transfer, "signed_counts_update", lambda *a: calls.append(1) or real(*a))
    x, target = torch.rand(5, K, generator=torch.Generator().manual_seed(0)), torch.rand(5, 3)
    for together, model in zip((True, False), models):
        opt = AnalogSGD(model, lr=0.5)
        for _ in range(4):
            opt.zero_grad()
            ((model(x) - target) ** 2).sum().backward()
            if together:
                calls.clear()
                opt.step()
                assert len(calls) <= 1
            else:
                for tile in (model[0], model[2]):
                    tile.update(0.5)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)
    for t0, t1 in ((models[0][0], models[1][0]), (models[0][2], models[1][2])):
        assert torch.equal(t0.C.w, t1.C.w) and torch.equal(t0.H, t1.H)
        assert int(t0.update_count) == 4
    assert not torch.equal(models[0][0].get_weights(), _two_layer_model(algorithm, device)[0].get_weights())


def test_column_commit_touches_only_its_columns_and_has_the_write_noise_law():
    """DeviceArray.commit_columns: the other columns (weights and write noise) stay bit for bit; in the
    changed devices the write noise is N(0, (write_noise_std·dw_min)²); unchanged devices keep theirs."""
    dev = P.SoftBounds(dw_min=0.01, write_noise_std=3.0)
    array = P.DeviceArray(dev, 200, 9, seed=0)
    array.write_noise.fill_(0.123)
    w0, cols = array.w.clone(), torch.tensor([1, 6, 4])
    new = w0.index_select(1, cols) + 0.01
    new[:50, 0] = w0[:50, 1]  # unchanged devices
    array.commit_columns(cols, new, torch.Generator().manual_seed(0))
    other = torch.ones(9, dtype=torch.bool)
    other[cols] = False
    assert torch.equal(array.w[:, other], w0[:, other])
    assert (array.write_noise[:, other] == 0.123).all() and (array.write_noise[:50, 1] == 0.123).all()
    torch.testing.assert_close(array.w[:, cols], new)
    drawn = torch.cat([array.write_noise[50:, 1], array.write_noise[:, 6], array.write_noise[:, 4]])
    assert abs(float(drawn.mean())) < 4 * 0.03 / len(drawn) ** 0.5
    assert abs(float(drawn.std()) / 0.03 - 1) < 0.1


@pytest.mark.parametrize("scale", [1.0, 45.0])  # 45: more than LOOP_PULSES pulses, the kernel's closed forms
def test_pending_counts_compiled_write_equals_the_eager_write(scale, monkeypatch):
    """PendingCounts' joint write through compiled.counts_together against its eager form (the kernel on
    the concatenated devices, then each array's commit): the same weights, write noise and state of
    every generator, for whole arrays and columns (in cyclic, unsorted order) together, noisy steps
    and write noise on."""
    from aimc_lab.kernels.pulsed_update import compiled

    if not compiled.available():
        pytest.skip("numba is not installed")
    device = P.LinearStep(dw_min=0.01, gamma_up=0.5, gamma_down=0.8, dw_min_std=0.3, write_noise_std=2.0)
    cols = torch.tensor([7, 8, 0])
    runs = []
    calls = []
    inner = compiled.counts_together
    monkeypatch.setattr(compiled, "counts_together", lambda *a: calls.append(1) or inner(*a))
    for flag in ("1", "0"):
        monkeypatch.setenv("AIMC_LAB_NUMBA", flag)
        arrays = [P.DeviceArray(device, N, K, seed=s) for s in (0, 1, 2)]
        gens = [torch.Generator().manual_seed(10 + s) for s in range(3)]
        g = torch.Generator().manual_seed(0)
        for _ in range(3):
            pending = transfer.PendingCounts()
            pending.add(arrays[0], None, torch.trunc(torch.randn(N, K, generator=g) * scale), gens[0])
            pending.add(arrays[1], cols, torch.trunc(torch.randn(N, 3, generator=g) * scale), gens[1])
            pending.add(arrays[2], None, torch.trunc(torch.randn(N, K, generator=g) * scale), gens[2])
            pending.apply()
        runs.append(([a.w.clone() for a in arrays], [a.write_noise.clone() for a in arrays],
                     [gen.get_state() for gen in gens]))
    assert len(calls) == 3  # the compiled run only
    (w1, n1, s1), (w0, n0, s0) = runs
    for a, b in zip(w1 + n1, w0 + n0):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(s1, s0))
    assert all((n != 0).float().mean() > 0.1 for n in n1)  # write noise was drawn
