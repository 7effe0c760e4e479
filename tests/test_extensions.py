"""The four extension points of docs/extending.md, each used on a whole network: a user's noise model and
drift compensation registered by name and named in the config given to convert_to_analog (and surviving
save/load, or failing clearly), a new analog layer through register_conversion, and a user-defined pulsed
device trained in memory."""

import dataclasses
import math

import pytest
import torch
from torch import nn

import aimc_lab as al
from aimc_lab import config as config_module
from aimc_lab import convert
from aimc_lab.config import NoiseModelParameters, register_config_class, replace_path
from aimc_lab.devices import (make_noise_model, noise_model_kinds, register_noise_model, unregister_noise_model)
from aimc_lab.devices import compensation as comp_module
from aimc_lab.devices.compensation import DriftCompensation, register_compensation, unregister_compensation
from aimc_lab.devices import pulsed

PERFECT = al.IOParameters(is_perfect=True)


class ConstantNoise(al.NoiseModel):
    """Programming noise of a fixed std (sigma_rel·g_max); at t > 0 every conductance decays by ``factor``."""

    sigma_rel = 0.05
    factor = 0.5

    def __init__(self, params):
        super().__init__(params.g_max)
        self.params = params

    def programming_noise(self, g_target, generator):
        xi = torch.randn(g_target.shape, generator=generator, dtype=g_target.dtype)
        return (g_target + self.params.prog_noise_scale * self.sigma_rel * self.g_max * xi).clamp(min=0)

    def at_time(self, g_prog, nu, g_target, t_inference, generator):
        return g_prog * (self.factor if t_inference > 0 else 1.0)


class RMSCompensation(DriftCompensation):
    def reduce(self, readout):
        return readout.pow(2).mean().sqrt()


@pytest.fixture
def registered():
    """ConstantNoise as 'const_noise' and RMSCompensation as 'rms', removed afterwards (the registries are
    process-wide)."""
    register_noise_model("const_noise", ConstantNoise)
    register_compensation("rms", RMSCompensation)
    yield
    unregister_noise_model("const_noise")
    unregister_compensation("rms")


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5))


def user_config(**kw):
    cfg = al.AnalogConfig(forward=PERFECT, noise_model=NoiseModelParameters(kind="const_noise", g_max=20.0),
                          drift_compensation=al.DriftCompensationParameters(kind=kw.get("comp", "none")))
    return cfg


# ---------------------------------------------------------------------------------------------
# 1 · a user's noise model on a whole network
# ---------------------------------------------------------------------------------------------


def test_registered_noise_model_reaches_every_tile_of_a_converted_network(registered):
    model = al.convert_to_analog(mlp(), user_config())
    tiles = list(al.analog_tiles(model))
    assert len(tiles) == 2 and all(type(t.noise_model) is ConstantNoise for t in tiles)
    assert all(t.noise_model.g_max == 20.0 for t in tiles)
    assert "const_noise" in noise_model_kinds()


def test_registered_noise_model_hooks_run_with_their_statistics(registered):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(128, 200))
    model = al.convert_to_analog(net, user_config())
    tile = next(al.analog_tiles(model))
    al.program(model, torch.Generator().manual_seed(0))
    g = tile.conductances()
    # devices away from the clamp at 0: deviation std = 5 % of g_max = 1 µS over thousands of draws
    target, prog = g["target_pos"], g["prog_pos"]
    away = target > 5.0
    dev = (prog - target)[away]
    assert dev.numel() > 4000  # std of the std estimate ≈ 1/sqrt(2n) ≈ 1.1 %, of the mean ≈ 1.6 %
    assert abs(float(dev.std()) - 1.0) < 0.06 and abs(float(dev.mean())) < 0.08
    # at t > 0 the user's at_time halves every conductance: read weights = programmed weights / 2
    al.drift(model, 100.0)
    w_prog = (g["prog_pos"] - g["prog_neg"]) / tile.map_scale[tile.slice_index]
    torch.testing.assert_close(tile.w_read, 0.5 * w_prog)


def test_registered_compensation_undoes_a_uniform_decay_on_the_network(registered):
    x = torch.randn(64, 12, generator=torch.Generator().manual_seed(2))
    outs = {}
    for comp in ("none", "rms"):
        model = al.convert_to_analog(mlp(), user_config(comp=comp)).eval()
        assert all(type(t.compensation) is (RMSCompensation if comp == "rms" else DriftCompensation)
                   for t in al.analog_tiles(model))
        al.program(model, torch.Generator().manual_seed(3))
        with torch.no_grad():
            y0 = model(x)
            al.drift(model, 3600.0)
            outs[comp] = (y0, model(x))
    y0, y_none = outs["none"]
    assert float((y_none - y0).abs().max()) > 0.1  # the decay changes the outputs
    y0, y_rms = outs["rms"]
    torch.testing.assert_close(y_rms, y0, rtol=1e-4, atol=1e-4)  # α = 2 exactly restores them


def test_user_models_survive_a_checkpoint_and_a_missing_registration_fails_clearly(registered, tmp_path):
    cfg = user_config(comp="rms")
    model = al.convert_to_analog(mlp(), cfg).eval()
    al.program(model, torch.Generator().manual_seed(4))
    al.drift(model, 86400.0)
    x = torch.randn(8, 12)
    with torch.no_grad():
        y = model(x)
    path = tmp_path / "ckpt.pt"
    al.save_checkpoint(model, path)
    fresh = al.convert_to_analog(mlp(), cfg).eval()
    al.load_checkpoint(path, fresh)
    assert all(type(t.noise_model) is ConstantNoise for t in al.analog_tiles(fresh))
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), y)
    # a model built with another noise model refuses the checkpoint, naming the field
    other = al.convert_to_analog(mlp(), replace_path(cfg, "noise_model.kind", "pcm"))
    with pytest.raises(ValueError, match="noise_model.kind"):
        al.load_checkpoint(path, other)
    # without the registration the saved config cannot be rebuilt: a ValueError naming the kind
    saved = torch.load(path, weights_only=True)["configs"]
    unregister_noise_model("const_noise")
    try:
        with pytest.raises(ValueError, match="const_noise"):
            al.AnalogConfig.from_dict(next(iter(saved.values())))
        with pytest.raises(ValueError, match="const_noise"):
            make_noise_model(cfg.noise_model)  # a config built while it was registered
    finally:
        register_noise_model("const_noise", ConstantNoise)


def test_registration_checks_its_arguments(registered):
    with pytest.raises(ValueError, match="built-in"):
        register_noise_model("pcm", ConstantNoise)
    with pytest.raises(ValueError, match="kind = 'my model'"):
        register_noise_model("my model", ConstantNoise)
    with pytest.raises(TypeError, match="kind must be a str"):
        register_noise_model(3, ConstantNoise)
    with pytest.raises(TypeError, match="factory must be callable"):
        register_noise_model("x_noise", ConstantNoise(NoiseModelParameters()))
    with pytest.raises(ValueError, match="built-in"):
        register_compensation("global", RMSCompensation)
    with pytest.raises(ValueError, match="not registered"):
        unregister_noise_model("never_registered")
    with pytest.raises(ValueError, match="not registered"):
        unregister_compensation("never_registered")
    # a factory that returns something else is named when a tile is built
    register_noise_model("bad_noise", lambda params: "not a model")
    try:
        with pytest.raises(TypeError, match="bad_noise"):
            al.convert_to_analog(mlp(), replace_path(al.AnalogConfig(), "noise_model.kind", "bad_noise"))
    finally:
        unregister_noise_model("bad_noise")
    # re-registering replaces (re-running a notebook cell), and the allowed list has the name once
    register_noise_model("const_noise", ConstantNoise)
    assert config_module.NOISE_MODELS.count("const_noise") == 1
    # unregistered names are refused by the config, with the allowed kinds listed
    with pytest.raises(ValueError, match="'none', 'pcm', 'reram'"):
        NoiseModelParameters(kind="unknown_noise")
    with pytest.raises(ValueError, match="not registered"):
        comp_module.make_compensation("unknown")


# ---------------------------------------------------------------------------------------------
# 3 · a new analog layer through the conversion registry
# ---------------------------------------------------------------------------------------------


class GatedLinear(nn.Module):
    """y = (W_a x + b_a) * sigmoid(W_g x + b_g)."""

    def __init__(self, i, o):
        super().__init__()
        self.value, self.gate = nn.Linear(i, o), nn.Linear(i, o)

    def forward(self, x):
        return self.value(x) * torch.sigmoid(self.gate(x))


class AnalogGatedLinear(nn.Module):
    """Both matrices stacked on one tile [2·o, i]: one analog MVM per input."""

    def __init__(self, i, o, config):
        super().__init__()
        self.out_features = o
        self.tile = al.AnalogTile(2 * o, i, config)
        self.bias = nn.Parameter(torch.zeros(2 * o))

    def forward(self, x):
        a, g = (self.tile(x) + self.bias).chunk(2, dim=-1)
        return a * torch.sigmoid(g)


def gated_to_analog(m, cfg):
    layer = AnalogGatedLinear(m.value.in_features, m.value.out_features, cfg)
    layer.tile.set_weights(torch.cat([m.value.weight, m.gate.weight]).detach())
    with torch.no_grad():
        layer.bias.copy_(torch.cat([m.value.bias, m.gate.bias]))
    return layer


def gated_to_digital(m, matrix):
    o = m.out_features
    w = matrix(m.tile)
    out = GatedLinear(w.shape[1], o)
    with torch.no_grad():
        out.value.weight.copy_(w[:o]), out.gate.weight.copy_(w[o:])
        out.value.bias.copy_(m.bias[:o]), out.gate.bias.copy_(m.bias[o:])
    return out


@pytest.fixture
def gated_registered(monkeypatch):
    monkeypatch.setattr(convert, "_TO_ANALOG", dict(convert._TO_ANALOG))
    monkeypatch.setattr(convert, "_TO_DIGITAL", dict(convert._TO_DIGITAL))
    convert.register_conversion(GatedLinear, gated_to_analog)
    convert.register_digital_conversion(AnalogGatedLinear, gated_to_digital)


def test_registered_layer_converts_a_network_and_back(gated_registered):
    torch.manual_seed(5)
    net = nn.Sequential(GatedLinear(10, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(32, 10)
    cfg = al.AnalogConfig(forward=PERFECT, noise_model=NoiseModelParameters(kind="pcm"))
    model = al.convert_to_analog(net, cfg).eval()
    assert isinstance(model, al.AnalogSequential) and isinstance(model[0], AnalogGatedLinear)
    assert len(list(al.analog_tiles(model))) == 2
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x), rtol=1e-4, atol=1e-5)
        al.program(model, torch.Generator().manual_seed(6))  # the new layer's tile is programmed too
        assert bool(model[0].tile.programmed)
        al.drift(model, 86400.0)
        assert not torch.allclose(model(x), net(x), atol=1e-3)
    back = al.convert_to_digital(model)
    assert type(back[0]) is GatedLinear
    with torch.no_grad():
        torch.testing.assert_close(back(x), net(x), rtol=1e-4, atol=1e-5)


def test_conversion_errors_of_a_registered_handler_name_the_layer(gated_registered):
    def broken(m, cfg):
        raise ValueError("no analog version for this size")

    convert.register_conversion(GatedLinear, broken)
    with pytest.raises(ValueError, match=r"0 \(GatedLinear\): no analog version"):
        al.convert_to_analog(nn.Sequential(GatedLinear(4, 4)))


# ---------------------------------------------------------------------------------------------
# 4 · a user-defined pulsed device, trained in memory
# ---------------------------------------------------------------------------------------------


@register_config_class
@dataclasses.dataclass(frozen=True)
class TanhStep(pulsed.PulsedDevice):
    """up Δ⁺·(1 − tanh(κw)), down Δ⁻·(1 + tanh(κw))."""

    kappa: float = 2.0

    def _validate_model(self):
        if not 0 < self.kappa <= 100:
            raise ValueError(f"TanhStep.kappa = {self.kappa!r} is invalid; allowed: (0, 100]")

    def step(self, w, up, dw_up, dw_down, b_max, b_min):
        t = torch.tanh(self.kappa * w)
        return torch.where(up, dw_up * (1 - t), dw_down * (1 + t))


NOISE_FREE = dict(dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0, dw_min_std=0.0)


def test_user_pulsed_device_pulse_response_and_symmetry_point():
    dev = TanhStep(dw_min=0.01, up_down=0.2, kappa=2.0, **NOISE_FREE)
    _, trace = pulsed.pulse_response(dev, n_up=3, n_down=0, traces=1, seed=0)
    w = 0.0
    for k in range(3):  # Δ⁺ = dw_min, step = Δ⁺·(1 − tanh(κw))
        w = w + 0.01 * (1 - math.tanh(2.0 * w))
        assert float(trace[0, k + 1]) == pytest.approx(w, rel=1e-5)
    array = pulsed.DeviceArray(dev, 1, 1, seed=0)
    expected = math.atanh(0.2 / 1.8) / 2.0  # Δ⁺ = dw_min, Δ⁻ = 0.8·dw_min
    assert float(array.symmetry_point()) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="kappa"):
        TanhStep(kappa=0.0)


def test_user_pulsed_device_trains_a_network_in_memory_and_round_trips_its_config():
    dev = TanhStep(dw_min=0.005, kappa=1.0)
    cfg = al.train.training_config("mixed-precision", device=dev)
    assert al.AnalogConfig.from_dict(cfg.to_dict()) == cfg
    torch.manual_seed(0)
    teacher = torch.randn(4, 8) * 0.3
    x = torch.rand(256, 8) * 2 - 1
    y = x @ teacher.t()
    model = al.convert_to_analog(nn.Sequential(nn.Linear(8, 4, bias=False)), cfg)
    opt = al.train.AnalogSGD(model, lr=0.1)
    losses = []
    for _ in range(10):
        for xb, yb in zip(x.split(32), y.split(32)):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0]
    tile = next(al.analog_tiles(model))
    assert type(tile.config.training.device) is TanhStep
