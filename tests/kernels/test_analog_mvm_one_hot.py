"""analog_mvm_one_hot (the read-out of a tile's columns, one one-hot input per column) against the MVM of
the identity it replaces: the same numbers and the same draws (the generator ends in the same state),
on every switch that touches its shortcut (IR drop, PCM read noise, both DACs, bound management that
re-runs rows), with fp32 and bf16 second-order products, and through the dispatcher on every backend."""

import dataclasses

import pytest
import torch

from aimc_lab.config import IOParameters
from aimc_lab.kernels import analog_mvm, analog_mvm_one_hot, backend
from aimc_lab.kernels.analog_mvm import cpu_fast
from aimc_lab.presets import library_defaults, standard_hwa

STANDARD = standard_hwa().forward
CASES = {
    "library defaults": library_defaults().forward,
    "standard HWA (IR drop, PCM read noise)": STANDARD,
    "stochastic DAC rounding": dataclasses.replace(STANDARD, inp_sto_round=True),
    "additive weight noise": dataclasses.replace(STANDARD, w_noise_type="additive_constant"),
    # outputs up to ~3 on a bound of 0.5: iterative bound management re-runs most rows, some twice or more
    "iterative bound management": dataclasses.replace(STANDARD, bound_management="iterative", out_bound=0.5,
                                                      noise_management="abs_max"),
    "no ADC, no DAC": dataclasses.replace(STANDARD, inp_res=0.0, out_res=0.0),
    "input noise (no shortcut)": dataclasses.replace(STANDARD, inp_noise=0.02),
    "perfect": IOParameters(is_perfect=True),
}


def _weights(N, K, scale=0.4, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = (torch.randn(N, K, generator=g) * scale).clamp(-1, 1)
    w[:, 3] = 0.0   # an all-zero column reads 0
    return w


@pytest.mark.parametrize("aux", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("shape", [(7, 13), (64, 40), (33, 128)])
def test_equals_the_mvm_of_the_identity(case, shape, aux):
    io, (N, K) = CASES[case], shape
    w = _weights(N, K, scale=3.0 if "bound" in case else 0.4)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    expected = cpu_fast.analog_mvm(torch.eye(K), w, io, generator=g1, aux_dtype=aux)
    got = cpu_fast.analog_mvm_one_hot(w, io, generator=g2, aux_dtype=aux)
    assert got.shape == (K, N)
    assert torch.equal(got, expected)
    assert torch.equal(g1.get_state(), g2.get_state()), "a different number of draws"
    if "bound" in case:  # the case exercises what it names: some reads saturate the first pass
        assert float(w.abs().max()) > io.out_bound


@pytest.mark.parametrize("which", ["torch", "reference"])
def test_dispatcher_follows_the_backend(which):
    w, io = _weights(24, 30), STANDARD
    with backend.use_backend(which):
        expected = analog_mvm(torch.eye(30), w, io, generator=torch.Generator().manual_seed(1))
        got = analog_mvm_one_hot(w, io, generator=torch.Generator().manual_seed(1))
    if which == "torch":
        assert torch.equal(got, expected)
    else:  # the spec's own arithmetic order; its noise draws are the same
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_a_column_read_is_the_column_through_the_periphery():
    """Noise off, no converters: the read-out of column k is w[:, k] exactly."""
    w = _weights(9, 11)
    io = IOParameters(out_noise=0.0, inp_res=0.0, out_res=0.0, bound_management="none")
    assert torch.equal(analog_mvm_one_hot(w, io), w.t())


@pytest.mark.parametrize("which", ["torch", "reference"])
def test_bad_weights_are_refused_by_name(which):
    with backend.use_backend(which):
        with pytest.raises(ValueError, match=r"w must be a 2-D tensor \[N, K\], got \(3,\)"):
            analog_mvm_one_hot(torch.zeros(3), STANDARD)
        with pytest.raises(ValueError, match=r"w has no columns \(shape \(5, 0\)\); allowed: K >= 1"):
            analog_mvm_one_hot(torch.zeros(5, 0), STANDARD)
        with pytest.raises(ValueError, match="w has no columns"):   # the MVM itself too (was a ZeroDivisionError)
            analog_mvm(torch.zeros(2, 0), torch.zeros(5, 0), STANDARD)
