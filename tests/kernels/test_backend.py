"""The backend switch: read once from AIMC_LAB_BACKEND, use_backend restores, clear errors."""

import importlib

import pytest
import torch

from aimc_lab.config import IOParameters, NoiseModelParameters, WeightModifierParameters
from aimc_lab.kernels import backend
from aimc_lab.kernels.analog_mvm import triton_impl as mvm_tri
from aimc_lab.kernels.pcm_noise import triton_impl as pcm_tri
from aimc_lab.kernels.weight_modifier import triton_impl as wm_tri

# the packages, not the functions of the same name that aimc_lab.kernels re-exports
mvm_pkg = importlib.import_module("aimc_lab.kernels.analog_mvm")
pcm_noise = importlib.import_module("aimc_lab.kernels.pcm_noise")
weight_modifier = importlib.import_module("aimc_lab.kernels.weight_modifier")


@pytest.fixture
def reload_backend(monkeypatch):
    """Re-import the backend module under a patched environment; restore it afterwards."""
    def reload(value):
        if value is None:
            monkeypatch.delenv("AIMC_LAB_BACKEND", raising=False)
        else:
            monkeypatch.setenv("AIMC_LAB_BACKEND", value)
        importlib.reload(backend)
    previous = backend.get()
    yield reload
    monkeypatch.undo()
    importlib.reload(backend)
    backend.set_backend(previous)


def test_env_var_read_once(reload_backend, monkeypatch):
    reload_backend(None)
    assert backend.get() == "auto"
    reload_backend(" Torch ")
    assert backend.get() == "torch"
    monkeypatch.setenv("AIMC_LAB_BACKEND", "triton")
    assert backend.get() == "torch", "the variable must be read at import only"
    assert backend.resolve(torch.device("cpu")) == "torch"


def test_invalid_env_value_names_the_variable(reload_backend):
    with pytest.raises(ValueError, match="AIMC_LAB_BACKEND = 'gpu'"):
        reload_backend("gpu")


def test_use_backend_restores():
    before = backend.get()
    with backend.use_backend("torch") as name:
        assert name == "torch" and backend.get() == "torch"
        with backend.use_backend("triton"):
            assert backend.get() == "triton"
        assert backend.get() == "torch"
    assert backend.get() == before
    with pytest.raises(KeyError):
        with backend.use_backend("torch"):
            raise KeyError("boom")
    assert backend.get() == before
    with pytest.raises(ValueError, match="allowed"):
        with backend.use_backend("cuda"):
            pass
    assert backend.get() == before


def test_set_backend():
    before = backend.get()
    try:
        backend.set_backend("torch")
        assert backend.get() == "torch"
        with pytest.raises(ValueError):
            backend.set_backend("fast")
        assert backend.get() == "torch"
    finally:
        backend.set_backend(before)


def test_auto_resolves_by_device():
    with backend.use_backend("auto"):
        assert backend.resolve(torch.device("cpu")) == "torch"
        assert backend.resolve(None) == "torch"
        assert backend.resolve(torch.device("cuda")) == ("triton" if backend.triton_available() else "torch")
    with backend.use_backend("torch"):
        assert backend.resolve(torch.device("cuda")) == "torch"


@pytest.mark.parametrize("flag", ["0", "true", ""])
def test_forced_triton_without_gpu_raises(monkeypatch, flag):
    monkeypatch.setenv("TRITON_INTERPRET", flag)
    assert not backend.interpreter_on()
    with backend.use_backend("triton"):
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
            backend.resolve(torch.device("cpu"))
        if not torch.cuda.is_available():
            assert backend.active() == "torch (triton unavailable)"
            x, w = torch.randn(2, 4), torch.randn(3, 4)
            with pytest.raises(RuntimeError, match="needs CUDA"):
                mvm_pkg.analog_mvm(x, w, IOParameters())


def test_forced_triton_with_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with backend.use_backend("triton"):
        assert backend.resolve(torch.device("cpu")) == "triton"
        assert backend.active(torch.device("cpu")) == "triton"
    with backend.use_backend("auto"):
        assert backend.active(torch.device("cpu")) == "torch"


def _spy(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, spy)
    return calls


def test_entry_points_dispatch(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    spies = [_spy(monkeypatch, mvm_tri, "analog_mvm"), _spy(monkeypatch, wm_tri, "weight_modifier"),
             _spy(monkeypatch, pcm_tri, "pcm_program"), _spy(monkeypatch, pcm_tri, "pcm_at_time")]
    x, w = torch.randn(3, 20), torch.rand(5, 20) - 0.5
    pcm = NoiseModelParameters(kind="pcm")
    g = torch.rand(5, 20) * 25

    def call_all():
        io = IOParameters(out_noise=0.0)
        y = mvm_pkg.analog_mvm(x, w, io)
        weight_modifier.weight_modifier(w, WeightModifierParameters(kind="add_normal", std_dev=0.1))
        gp, nu = pcm_noise.pcm_program(g, pcm)
        pcm_noise.pcm_at_time(gp, nu, 10.0, pcm)
        return y

    with backend.use_backend("torch"):
        y_torch = call_all()
    assert all(not calls for calls in spies)
    with backend.use_backend("triton"):
        y_triton = call_all()
    assert all(len(calls) == 1 for calls in spies)
    torch.testing.assert_close(y_triton, y_torch, rtol=1e-5, atol=1e-5)


def test_analog_mvm_torch_runs_the_fast_path_and_reference_the_spec(monkeypatch):
    """"torch" (and "auto" on the CPU) runs kernels/analog_mvm/cpu_fast.py, "reference" the plain spec;
    with fp32 second-order products both give the same seeded output."""
    from aimc_lab.kernels.analog_mvm import cpu_fast, reference

    fast = _spy(monkeypatch, cpu_fast, "mvm_forward")
    spec = _spy(monkeypatch, reference, "mvm_forward")
    monkeypatch.setattr(cpu_fast, "_NATIVE_BF16", False)  # fp32 products: the same bits as the spec
    x, w = torch.randn(6, 40), torch.rand(7, 40) - 0.5
    io = IOParameters()
    for name in ("auto", "torch"):
        with backend.use_backend(name):
            y_fast = mvm_pkg.analog_mvm(x, w, io, in_size=16, generator=torch.Generator().manual_seed(4))
    assert len(fast) == 2 and not spec
    with backend.use_backend("reference"):
        y_spec = mvm_pkg.analog_mvm(x, w, io, in_size=16, generator=torch.Generator().manual_seed(4))
    assert len(spec) == 1 and len(fast) == 2
    torch.testing.assert_close(y_fast, y_spec, rtol=1e-6, atol=1e-6)
