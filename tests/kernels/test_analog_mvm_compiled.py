"""The compiled small-MVM path (kernels/analog_mvm/compiled.py) against the eager fast path and the spec.

Without autograd and on one slice, cpu_fast.mvm_forward hands the periphery the training presets use
to the compiled path; its DAC, ADC, bound management and rescale are the eager path's operations in
the same order and float type and its draws are the same, only the MAC sums in another order
(vectorized). So a seeded call gives the eager output except where a sum sits on an ADC rounding tie
(then one ADC step away), and leaves the generator in the same state, on every supported switch:
abs-max (with and without a threshold) and no noise management, iterative and no bound management
with saturated rows, zero and -0 rows, out_scale and per-column scales, no output noise, float32 and
float64, odd shapes, and the transposed read (x @ w) the in-memory tile's backward uses.
"""

import dataclasses

import pytest
import torch

from aimc_lab.config import IOParameters
from aimc_lab.devices.pulsed import reram_sb
from aimc_lab.kernels.analog_mvm import compiled
from aimc_lab.kernels.analog_mvm import cpu_fast
from aimc_lab.kernels.analog_mvm import reference as ref
from aimc_lab.train import training_config

pytestmark = pytest.mark.skipif(not compiled.supports(torch.zeros(1), IOParameters(), 1, False, False),
                                reason="numba is not installed")

TRAINING = training_config("sgd", device=reram_sb()).forward
CASES = {
    "training-preset": TRAINING,
    "saturating": dataclasses.replace(TRAINING, out_bound=2.0),
    "nm-threshold": dataclasses.replace(TRAINING, nm_thres=0.5, out_bound=3.0),
    "no-nm-no-bm": dataclasses.replace(TRAINING, noise_management="none", bound_management="none", out_bound=4.0),
    "no-nm-bm": dataclasses.replace(TRAINING, noise_management="none", out_bound=1.0),
    "quiet-scaled": dataclasses.replace(TRAINING, out_noise=0.0, out_scale=1.7),
    "library-defaults": IOParameters(),
}


def _x(M, K, scale, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(M, K, generator=g, dtype=dtype) * scale)
    x = x * (torch.rand(M, K, generator=g) > 0.2)
    if M > 2:
        x[1] = 0.0
        x[2, : K // 2] = -0.0
    return x


def _both(x, w, io, monkeypatch, transposed=False, **kw):
    """(compiled, eager) outputs of the same seeded call; the generators must end alike (same draws)."""
    gens = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)]
    monkeypatch.setenv("AIMC_LAB_NUMBA", "1")
    if transposed:
        a = compiled.mvm_forward(x, w, io, kw.get("out_scales"), gens[0], transposed=True)
        w = w.t().contiguous()
    else:
        a = cpu_fast.analog_mvm(x, w, io, generator=gens[0], **kw)
    monkeypatch.setenv("AIMC_LAB_NUMBA", "0")
    b = cpu_fast.analog_mvm(x, w, io, generator=gens[1], **kw)
    monkeypatch.setenv("AIMC_LAB_NUMBA", "1")
    assert torch.equal(gens[0].get_state(), gens[1].get_state())
    return a, b


def _tie_equal(a, b, x, io, scales=None):
    """a == b but for outputs one ADC step apart (a MAC sum on a rounding tie): at most 1 % of them,
    each exactly one step of its row (Δ_out·α·2^k·scale, 2^k <= the re-runs' largest factor)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    diff = (a - b).abs()
    if not bool((diff > 0).any()):
        return
    assert float((diff > 0).double().mean()) <= 0.01
    alpha = x.abs().amax(dim=1, keepdim=True) if io.noise_management == "abs_max" else torch.ones(x.shape[0], 1)
    scale = io.out_scale * (1.0 if scales is None else scales.reshape(1, -1))
    step = io.out_step * alpha * scale  # one ADC step at 2^0, [M, N]
    ratio = (diff / step)[diff > 0]
    k = torch.log2(ratio.double())
    assert torch.allclose(k, k.round(), atol=1e-3) and float(k.min()) >= -1e-3, ratio


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("shape", [(5, 64, 256), (1, 1, 1), (7, 13, 3), (16, 100, 70), (0, 6, 4)])
@pytest.mark.parametrize("scale", [0.05, 1.0, 30.0])
def test_compiled_forward_equals_the_eager_fast_path_up_to_adc_ties(case, shape, scale, monkeypatch):
    io = CASES[case]
    M, K, N = shape
    x = _x(M, K, scale)
    w = (torch.randn(N, K, generator=torch.Generator().manual_seed(1)) * 0.4).clamp(-1, 1)
    assert compiled.supports(x, io, 1, False, False)
    a, b = _both(x, w, io, monkeypatch)
    assert a.shape == (M, N) and a.dtype == x.dtype
    _tie_equal(a, b, x, io)
    scales = torch.rand(1, N, generator=torch.Generator().manual_seed(2)) + 0.5
    a, b = _both(x, w, io, monkeypatch, out_scales=scales)
    _tie_equal(a, b, x, io, scales)


@pytest.mark.parametrize("case", ["training-preset", "saturating", "no-nm-no-bm"])
@pytest.mark.parametrize("shape", [(5, 64, 256), (3, 7, 5), (16, 128, 10)])
def test_compiled_transposed_read_equals_the_eager_read_of_the_transpose(case, shape, monkeypatch):
    """transposed=True: x [M, N] @ w for w [N, K] (no transposed copy) = the eager MVM of w.T."""
    io = CASES[case]
    M, K, N = shape
    x = _x(M, N, 2.0)
    w = (torch.randn(N, K, generator=torch.Generator().manual_seed(1)) * 0.4).clamp(-1, 1)
    a, b = _both(x, w, io, monkeypatch, transposed=True)
    assert a.shape == (M, K)
    _tie_equal(a, b, x, io)


def test_compiled_forward_in_float64_and_the_bound_management_reruns(monkeypatch):
    io = CASES["saturating"]
    x = _x(9, 40, 20.0, dtype=torch.float64)
    w = torch.rand(11, 40, generator=torch.Generator().manual_seed(3), dtype=torch.float64) - 0.5
    a, b = _both(x, w, io, monkeypatch)
    assert a.dtype == torch.float64
    _tie_equal(a, b, x, io)
    # rows that saturate at 2^0 are re-run: the output is finite and exceeds the bound after the rescale
    assert float(a.abs().max()) > io.out_bound


def test_compiled_forward_matches_the_spec(monkeypatch):
    """Against the plain reference: equal but for outputs on an ADC rounding tie (one step away)."""
    for name in ("training-preset", "saturating", "no-nm-no-bm"):
        io = CASES[name]
        x = _x(16, 64, 3.0)
        w = (torch.randn(50, 64, generator=torch.Generator().manual_seed(1)) * 0.4).clamp(-1, 1)
        monkeypatch.setenv("AIMC_LAB_NUMBA", "1")
        got = cpu_fast.analog_mvm(x, w, io, generator=torch.Generator().manual_seed(5))
        want = ref.analog_mvm(x, w, io, generator=torch.Generator().manual_seed(5))
        diff = (got - want).abs()
        assert float((diff > 0).float().mean()) <= 2e-3, name


def test_unsupported_calls_take_the_eager_path():
    x = torch.zeros(3, 4)
    io = CASES["training-preset"]
    assert not compiled.supports(x, io, 1, True, False)  # gradients need the saved masks
    assert not compiled.supports(x, io, 2, False, False)  # several slices
    assert not compiled.supports(x, io, 1, False, True)  # column read-outs
    assert compiled.supports(torch.zeros(compiled.MAX_ROWS, 4), io, 1, False, False)
    assert not compiled.supports(torch.zeros(compiled.MAX_ROWS + 1, 4), io, 1, False, False)  # large batches
    for change in (dict(inp_noise=0.01), dict(ir_drop=1.0), dict(w_noise=0.01, w_noise_type="additive_constant"),
                   dict(inp_sto_round=True), dict(noise_management="max"), dict(is_perfect=True)):
        assert not compiled.supports(x, dataclasses.replace(io, **change), 1, False, False), change


def test_nan_input_is_refused_before_any_draw(monkeypatch):
    monkeypatch.setenv("AIMC_LAB_NUMBA", "1")
    x = torch.ones(3, 8)
    x[1, 2] = float("nan")
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    with pytest.raises(ValueError, match="NaN"):
        cpu_fast.analog_mvm(x, torch.ones(4, 8) * 0.1, TRAINING, generator=g)
    assert torch.equal(g.get_state(), state)
