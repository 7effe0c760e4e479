"""Config validation (every field), round trips and presets."""

import dataclasses
import math

import pytest

from aimc_lab import presets
from aimc_lab.config import (AnalogConfig, ClipParameters, DriftCompensationParameters, InputRangeParameters,
                             IOParameters, MappingParameters, NoiseModelParameters, RemapParameters,
                             WeightModifierParameters, replace_path, resolution_step)

# (class, field, a bad value, the exception it must raise)
BAD = [
    (IOParameters, "is_perfect", 1, TypeError),
    (IOParameters, "inp_res", float("nan"), ValueError),
    (IOParameters, "inp_bound", 0.0, ValueError),
    (IOParameters, "inp_noise", -0.1, ValueError),
    (IOParameters, "inp_sto_round", "yes", TypeError),
    (IOParameters, "out_res", "8bit", TypeError),
    (IOParameters, "out_bound", -1.0, ValueError),
    (IOParameters, "out_noise", -0.01, ValueError),
    (IOParameters, "w_noise", -0.5, ValueError),
    (IOParameters, "w_noise_type", "gaussian", ValueError),
    (IOParameters, "ir_drop", -1.0, ValueError),
    (IOParameters, "ir_drop_g_ratio", 0.0, ValueError),
    (IOParameters, "noise_management", "abs-max", ValueError),
    (IOParameters, "nm_thres", -1.0, ValueError),
    (IOParameters, "bound_management", "shift", ValueError),
    (IOParameters, "max_bm_factor", 0, ValueError),
    (IOParameters, "max_bm_res", 0.0, ValueError),
    (IOParameters, "out_scale", 0.0, ValueError),
    (MappingParameters, "max_input_size", 0, ValueError),
    (MappingParameters, "max_output_size", 2.5, TypeError),
    (MappingParameters, "digital_bias", None, TypeError),
    (MappingParameters, "weight_scaling_omega", 1.5, ValueError),
    (MappingParameters, "weight_scaling_columnwise", 0, TypeError),
    (MappingParameters, "learn_out_scaling", "no", TypeError),
    (NoiseModelParameters, "kind", "flash", ValueError),
    (NoiseModelParameters, "g_max", 0.0, ValueError),
    (NoiseModelParameters, "prog_noise_scale", -1.0, ValueError),
    (NoiseModelParameters, "drift_scale", -1.0, ValueError),
    (NoiseModelParameters, "read_noise_scale", -1.0, ValueError),
    (NoiseModelParameters, "t_0", 0.0, ValueError),
    (NoiseModelParameters, "t_read", -1e-9, ValueError),
    (NoiseModelParameters, "prog_coeff", (1.0, 2.0), ValueError),
    (DriftCompensationParameters, "kind", "local", ValueError),
    (WeightModifierParameters, "kind", "gauss", ValueError),
    (WeightModifierParameters, "std_dev", -0.1, ValueError),
    (WeightModifierParameters, "res", -1.0, ValueError),
    (WeightModifierParameters, "pdrop", 1.0, ValueError),
    (WeightModifierParameters, "assumed_wmax", -1.0, ValueError),
    (WeightModifierParameters, "coeffs", (1.0,), ValueError),
    (WeightModifierParameters, "enable_during_test", 1, TypeError),
    (ClipParameters, "kind", "soft", ValueError),
    (ClipParameters, "fixed_value", 0.0, ValueError),
    (ClipParameters, "sigma", -2.5, ValueError),
    (RemapParameters, "kind", "column", ValueError),
    (InputRangeParameters, "enable", "true", TypeError),
    (InputRangeParameters, "init_value", 0.0, ValueError),
    (InputRangeParameters, "init_from_data", -1, ValueError),
    (InputRangeParameters, "init_std_alpha", 0.0, ValueError),
    (InputRangeParameters, "decay", -0.1, ValueError),
    (InputRangeParameters, "input_min_percentage", 1.5, ValueError),
    (InputRangeParameters, "learn_input_range", None, TypeError),
]


def test_every_field_is_covered():
    covered = {(cls, name) for cls, name, _, _ in BAD}
    for cls in {c for c, _, _, _ in BAD}:
        for f in dataclasses.fields(cls):
            assert (cls, f.name) in covered, f"{cls.__name__}.{f.name} has no validation test"


@pytest.mark.parametrize("cls,name,value,exc", BAD, ids=[f"{c.__name__}.{n}" for c, n, _, _ in BAD])
def test_invalid_value_names_field_and_value(cls, name, value, exc):
    with pytest.raises(exc) as info:
        cls(**{name: value})
    assert name in str(info.value)
    if exc is ValueError:
        assert "allowed" in str(info.value)


def test_cross_field_rules():
    with pytest.raises(ValueError, match="nm_thres"):
        IOParameters(noise_management="constant", nm_thres=0.0)
    with pytest.raises(ValueError, match="w_noise_type"):
        IOParameters(w_noise=0.02)
    with pytest.raises(ValueError, match="res"):
        WeightModifierParameters(kind="discretize", res=0.0)
    with pytest.raises(TypeError, match="forward"):
        AnalogConfig(forward=MappingParameters())


def test_frozen():
    io = IOParameters()
    with pytest.raises(dataclasses.FrozenInstanceError):
        io.out_noise = 0.1


def test_steps_follow_physics():
    io = IOParameters()
    assert io.inp_step == pytest.approx(2 / 126)
    assert io.out_step == pytest.approx(2 * 12 / 510)
    assert IOParameters(inp_res=256).inp_step == pytest.approx(2 / 256)
    assert IOParameters(inp_res=0).inp_step == 0
    assert resolution_step(-1) == 0


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_presets_round_trip(name):
    cfg = presets.by_name(name)
    data = cfg.to_dict()
    assert AnalogConfig.from_dict(data) == cfg


def test_from_dict_rejects_unknown():
    data = AnalogConfig().to_dict()
    data["forward"]["bogus"] = 1
    with pytest.raises(ValueError, match="bogus"):
        AnalogConfig.from_dict(data)
    with pytest.raises(ValueError, match="preset"):
        presets.by_name("nope")


def test_standard_preset_values():
    cfg = presets.standard_hwa()
    f = cfg.forward
    assert (f.inp_res, f.out_res, f.out_bound, f.out_noise, f.w_noise) == (1 / 254, 1 / 254, 10.0, 0.04, 0.0175)
    assert f.w_noise_type == "pcm_read" and f.ir_drop == 1.0
    assert f.noise_management == "constant" and f.bound_management == "none"
    assert cfg.noise_model.kind == "pcm" and cfg.drift_compensation.kind == "global"
    assert cfg.input_range.enable and cfg.input_range.init_value == 3.0
    assert cfg.remap.kind == "channelwise" and cfg.clip.kind == "fixed"
    assert math.isclose(cfg.clip.fixed_value, 1.0)


def test_replace_path():
    cfg = replace_path(AnalogConfig(), "forward.out_noise", 0.1)
    assert cfg.forward.out_noise == 0.1
    with pytest.raises(ValueError):
        replace_path(AnalogConfig(), "forward.out_noise", -1.0)
    with pytest.raises(ValueError, match="nope"):
        replace_path(AnalogConfig(), "nope.x", 1)
