"""The fast path's compiled DAC and ADC (kernels/analog_mvm/compiled_steps.py) against its torch passes.

Each compiled step makes the same float operations in the same order as the torch passes it replaces,
so the fast path gives the same bits either way: outputs, the masks its backward reads (through both
gradients) and the generator state, over every switch of the fast path's spec tests, several slices,
bound-management re-runs (which the compiled DAC reads from x and α directly), float64 and the
one-hot read-out. ``AIMC_LAB_NUMBA=0`` is the torch passes.
"""

import dataclasses

import pytest
import torch

from aimc_lab.config import IOParameters
from aimc_lab.kernels.analog_mvm import compiled_steps, cpu_fast

from test_analog_mvm_cpu_fast import SWITCHES, _data

pytestmark = pytest.mark.skipif(not compiled_steps.serves(torch.zeros(1)), reason="numba is not installed")

CASES = dict(SWITCHES)
CASES["bm_many_reruns"] = IOParameters(out_bound=0.5, out_noise=0.06)
CASES["bm_noise_management_max"] = IOParameters(out_bound=1.5, out_noise=0.1, noise_management="max")


def _both(monkeypatch, fn):
    out = []
    for flag in ("1", "0"):
        monkeypatch.setenv("AIMC_LAB_NUMBA", flag)
        out.append(fn())
    return out


def _fwd_bwd(x, w, io, in_size, scales, dtype, seed):
    xr, wr = x.to(dtype).requires_grad_(), w.to(dtype).requires_grad_()
    gen = torch.Generator().manual_seed(seed)
    y = cpu_fast.analog_mvm(xr, wr, io, in_size=in_size, out_scales=None if scales is None else scales.to(dtype),
                            generator=gen, aux_dtype=dtype)
    y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(3), dtype=dtype))
    with torch.no_grad():
        y_ng = cpu_fast.analog_mvm(x.to(dtype), w.to(dtype), io, in_size=in_size,
                                   out_scales=None if scales is None else scales.to(dtype),
                                   generator=torch.Generator().manual_seed(seed), aux_dtype=dtype)
    return y.detach(), xr.grad, wr.grad, y_ng, gen.get_state()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("in_size", [None, 64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_path_gives_the_same_bits_with_the_compiled_steps(name, in_size, dtype, monkeypatch):
    x, w = _data(24, 40, 150, seed=sorted(CASES).index(name))
    x[3] = 0.0  # an all-zero row
    x[5, :64] = 0.0  # an all-zero slice
    x[7] *= 6.0  # a row that clips at the DAC
    x[9] = x[9].abs() * 3.0  # a row that saturates the ADC
    scales = None if in_size is None else torch.rand(3, 40, generator=torch.Generator().manual_seed(1)) + 0.5
    got, want = _both(monkeypatch, lambda: _fwd_bwd(x, w, CASES[name], in_size, scales, dtype, 11))
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_bound_management_reruns_take_the_compiled_dac(monkeypatch):
    """U[0, 1) inputs on a 256-input slice: most rows re-run; the compiled DAC reads them from x and α
    (a rows argument) and the result is the torch passes' bit for bit."""
    calls = []
    inner = compiled_steps.dac
    monkeypatch.setattr(compiled_steps, "dac", lambda *a: calls.append(a[1]) or inner(*a))
    g = torch.Generator().manual_seed(5)
    x, w = torch.rand(64, 256, generator=g), torch.rand(32, 256, generator=g) * 0.5
    io = IOParameters(out_noise=0.06)
    got, want = _both(monkeypatch, lambda: _fwd_bwd(x, w, io, None, None, torch.float32, 2))
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    reruns = [c for c in calls if c is not None]  # first passes read all rows (None)
    assert calls[0] is None and len(reruns) >= 2 and all(0 < c.numel() <= 64 for c in reruns)


def test_one_hot_read_out_gives_the_same_bits(monkeypatch):
    w = _data(1, 30, 70, seed=4)[1]
    io = dataclasses.replace(IOParameters(out_bound=2.0), out_noise=0.05)
    got, want = _both(monkeypatch, lambda: cpu_fast.analog_mvm_one_hot(w, io, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(got, want)


def test_dac_and_adc_match_their_formulas_at_ties_and_bounds():
    """Values on rounding ties (±k.5 steps), at and beyond the bound, signed zeros: the DAC is
    sign(x)·min(floor(|x/α/Δ| + ½)·Δ, b) with the mask |Q| <= b, the ADC the same on z/Δ."""
    step, bound = 0.25, 1.0
    v = torch.tensor([0.0, -0.0, 0.125, -0.125, 0.375, -0.375, 0.99, 1.0, 1.124, 1.125, -7.0, 3e-39, -3e-39])
    x = v.reshape(1, 1, -1).contiguous()
    u, mask = compiled_steps.dac(x, None, None, None, step, bound, True)
    q = torch.floor(v.abs() / step + 0.5) * step
    assert torch.equal(u.reshape(-1), q.clamp(max=bound).copysign(v))
    assert torch.equal(mask.reshape(-1), (q <= bound).float())
    z = x.clone()
    out_mask = compiled_steps.adc(z, step, bound, True)
    assert torch.equal(z, u) and torch.equal(out_mask, mask)
    alpha = torch.tensor([[2.0]])
    halved, _ = compiled_steps.dac(x, None, alpha, torch.tensor([[2.0]]), step, bound, False)
    q4 = torch.floor((v / 2.0 / (step * 2.0)).abs() + 0.5) * step
    assert torch.equal(halved.reshape(-1), q4.clamp(max=bound).copysign(v))
