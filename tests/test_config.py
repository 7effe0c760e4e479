"""Config validation (every field), round trips and presets."""

import dataclasses
import json
import math
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from aimc_lab import presets
from aimc_lab.config import (AnalogConfig, ClipParameters, DriftCompensationParameters, InputRangeParameters,
                             IOParameters, MappingParameters, NoiseModelParameters, RemapParameters,
                             WeightModifierParameters, from_dict, register_training_class, replace_path,
                             resolution_step)
from aimc_lab.devices import make_noise_model
from aimc_lab.devices.pulsed import ConstantStep, SoftBounds
from aimc_lab.train import InMemoryTrainingParameters, training_config

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
    (InputRangeParameters, "gradient_relative", 1, TypeError),
    (InputRangeParameters, "straight_through", "no", TypeError),
]

INF = float("inf")
NAN = float("nan")

# Issue 10 item 7: values the validation let through, each of which broke a later call
HOLES = [
    (IOParameters, "out_bound", INF, ValueError),  # NaN outputs
    (IOParameters, "inp_bound", -INF, ValueError),
    (IOParameters, "out_noise", INF, ValueError),
    (IOParameters, "inp_noise", 1e300, ValueError),
    (IOParameters, "ir_drop", 1e39, ValueError),  # cannot be converted to float32
    (IOParameters, "inp_res", 1e-300, ValueError),  # a zero step in float32: NaN outputs
    (IOParameters, "out_res", INF, ValueError),
    (IOParameters, "out_scale", 1e38, ValueError),
    (IOParameters, "nm_thres", INF, ValueError),
    (IOParameters, "max_bm_factor", 10 ** 40, ValueError),
    (IOParameters, "noise_management", None, TypeError),
    (IOParameters, "w_noise_type", ["pcm_read"], TypeError),  # was "unhashable"-free but unnamed
    (MappingParameters, "max_input_size", 2 ** 64, ValueError),
    (MappingParameters, "weight_scaling_omega", 1e-300, ValueError),  # "the tile output overflows" at use
    (NoiseModelParameters, "g_max", 1e-300, ValueError),
    (NoiseModelParameters, "t_0", INF, ValueError),
    (NoiseModelParameters, "prog_noise_scale", INF, ValueError),
    (NoiseModelParameters, "prog_coeff", 0.5, TypeError),  # was "object of type 'float' has no len()"
    (NoiseModelParameters, "prog_coeff", (1.0, NAN, 2.0), ValueError),
    (NoiseModelParameters, "prog_coeff", (1.0, INF, 2.0), ValueError),
    (NoiseModelParameters, "prog_coeff", ("a", 1.0, 2.0), TypeError),
    (NoiseModelParameters, "prog_coeff", "abc", TypeError),
    (WeightModifierParameters, "coeffs", None, TypeError),
    (WeightModifierParameters, "coeffs", (0.0, 0.0, -INF), ValueError),
    (WeightModifierParameters, "std_dev", INF, ValueError),
    (WeightModifierParameters, "res", 1e-300, ValueError),
    (WeightModifierParameters, "assumed_wmax", 1e-30, ValueError),
    (ClipParameters, "fixed_value", INF, ValueError),
    (ClipParameters, "kind", 1, TypeError),
    (InputRangeParameters, "init_value", INF, ValueError),
    (InputRangeParameters, "init_value", 1e-300, ValueError),
    (InputRangeParameters, "decay", NAN, ValueError),
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


@pytest.mark.parametrize("cls,name,value,exc", HOLES, ids=[f"{c.__name__}.{n}={v!r}" for c, n, v, _ in HOLES])
def test_validation_holes_are_closed(cls, name, value, exc):
    with pytest.raises(exc) as info:
        cls(**{name: value})
    message = str(info.value)
    assert f"{cls.__name__}.{name}" in message and ("allowed" in message or "must be" in message)


def test_rejection_names_value_and_range():
    with pytest.raises(ValueError, match=r"IOParameters\.out_bound = inf .*\[1e-09, 1e\+09\]"):
        IOParameters(out_bound=INF)
    with pytest.raises(TypeError, match=r"NoiseModelParameters\.prog_coeff must be a tuple of 3 .* got float 0\.5"):
        NoiseModelParameters(prog_coeff=0.5)
    with pytest.raises(ValueError, match=r"prog_coeff\[1\] = nan"):
        NoiseModelParameters(prog_coeff=(1.0, NAN, 2.0))


def test_t_read_must_not_exceed_t_0():
    """t_read > t_0 made program()/drift() fail with 'math domain error' (log of a number < 1)."""
    with pytest.raises(ValueError, match=r"NoiseModelParameters\.t_read = 100 .*t_0 = 20"):
        NoiseModelParameters(kind="pcm", t_read=100)
    with pytest.raises(ValueError, match="t_read"):
        NoiseModelParameters(kind="pcm", t_0=1e-9)
    assert NoiseModelParameters(t_0=1.0, t_read=1.0).t_read == 1.0


def test_numpy_scalars_become_plain_numbers():
    io = IOParameters(out_noise=np.float32(0.5), max_bm_factor=np.int64(8))
    assert type(io.out_noise) is float and io.out_noise == 0.5
    assert type(io.max_bm_factor) is int and io.max_bm_factor == 8
    with pytest.raises(ValueError, match=r"IOParameters\.out_noise = inf"):
        IOParameters(out_noise=Fraction(10 ** 400))
    nm = NoiseModelParameters(prog_coeff=[np.float32(1), 2, 3])
    assert nm.prog_coeff == (1.0, 2.0, 3.0) and all(type(c) is float for c in nm.prog_coeff)


def test_training_accepts_only_registered_classes():
    for bad in (3, "sgd", {"algorithm": "sgd"}, IOParameters()):
        with pytest.raises(TypeError, match=r"AnalogConfig\.training must be None or a InMemoryTrainingParameters"):
            AnalogConfig(training=bad)
    cfg = training_config("sgd")
    assert isinstance(cfg.training, InMemoryTrainingParameters)
    assert AnalogConfig.from_dict(cfg.to_dict()) == cfg


def test_importing_any_config_module_registers_training():
    """``import aimc_lab`` no longer imports aimc_lab.train (it needs torch), yet a process that imports
    only aimc_lab.config still finds every registered class: a lookup miss imports the registering
    modules (in-memory training, pulsed devices)."""
    code = ("import sys; from aimc_lab.config import from_dict, _TRAINING_CLASSES as t\n"
            "print('before', [c.__name__ for c in t])\n"
            "c = from_dict(None, {'__type__': 'AnalogConfig', 'training': {'__type__': 'InMemoryTrainingParameters',"
            " 'device': {'__type__': 'SoftBounds'}}})\n"
            "print('after', [c.__name__ for c in t], type(c.training).__name__, type(c.training.device).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "before []" in out  # nothing registered yet: the lookup below is what registers
    assert "after ['InMemoryTrainingParameters'] InMemoryTrainingParameters SoftBounds" in out


def test_register_training_class_is_idempotent_and_checked():
    assert register_training_class(InMemoryTrainingParameters) is InMemoryTrainingParameters
    with pytest.raises(TypeError, match="cls"):
        register_training_class(3)


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


@pytest.mark.parametrize("data,exc,match", [
    ("forward.out_noise", TypeError, "must be a dict"),
    ([1, 2], TypeError, "must be a dict"),
    ({"__type__": "Nope"}, ValueError, "unknown config class 'Nope'"),
    ({"__type__": 3}, ValueError, "unknown config class 3"),
    ({"__type__": "IOParameters"}, TypeError, "expected AnalogConfig data"),
    ({"forward": 3}, TypeError, r"AnalogConfig\.forward must be a IOParameters, got int 3"),
    ({"forward": {"out_noise": "high"}}, TypeError, r"AnalogConfig\.forward: IOParameters\.out_noise must be"),
    ({"forward": {"out_bound": float("inf")}}, ValueError, r"AnalogConfig\.forward: IOParameters\.out_bound = inf"),
    ({"noise_model": {"prog_coeff": [1, 2]}}, ValueError, r"NoiseModelParameters\.prog_coeff = \(1, 2\)"),
    ({"noise_model": {"prog_coeff": [1, [2], 3]}}, TypeError, r"prog_coeff\[1\] must be"),
    ({"mapping": {"bogus": 1}}, ValueError, r"AnalogConfig\.mapping: MappingParameters has no field 'bogus'"),
    ({"training": {"algorithm": "sgd"}}, ValueError, r"AnalogConfig\.training: .* no '__type__'"),
    ({"training": 3}, TypeError, r"AnalogConfig\.training must be None"),
    ({1: 2}, ValueError, "has no field 1"),
])
def test_from_dict_rejects_bad_data(data, exc, match):
    with pytest.raises(exc, match=match):
        AnalogConfig.from_dict(data)


def test_from_dict_nested_subclasses():
    """A SoftBounds device in a training config whose default device is a ConstantStep."""
    cfg = training_config("ttv2", device=SoftBounds(dw_min=0.01))
    data = json.loads(json.dumps(cfg.to_dict()))
    assert AnalogConfig.from_dict(data) == cfg
    data["training"]["device"] = {"dw_min": 0.01}
    assert AnalogConfig.from_dict(data).training.device == ConstantStep(dw_min=0.01)


def test_from_dict_without_type_keys():
    cfg = AnalogConfig.from_dict({"forward": {"out_noise": 0.1}, "clip": {"__type__": "ClipParameters"}})
    assert cfg == AnalogConfig(forward=IOParameters(out_noise=0.1))
    with pytest.raises(TypeError, match="cls"):
        from_dict(3, {})


@pytest.mark.parametrize("config,path,value,exc,match", [
    (AnalogConfig(), "forward.", 1.0, ValueError, "path 'forward.' is invalid"),
    (AnalogConfig(), "", 1.0, ValueError, "path '' is invalid"),
    (AnalogConfig(), 3, 1.0, TypeError, "path must be a str"),
    (AnalogConfig(), "forward.inp_step", 1.0, ValueError, "IOParameters has no field 'inp_step'"),
    (AnalogConfig(), "to_dict", 1.0, ValueError, "AnalogConfig has no field 'to_dict'"),
    (AnalogConfig(), "forward.out_noise.x", 1.0, ValueError, r"IOParameters\.out_noise is 0\.06, which has no field"),
    (AnalogConfig(), "training.algorithm", "sgd", ValueError, r"AnalogConfig\.training is None"),
    (AnalogConfig(), "forward.out_bound", float("inf"), ValueError, r"'forward\.out_bound'.*out_bound = inf"),
    (AnalogConfig(), "noise_model.prog_coeff", 1.0, TypeError, "prog_coeff must be a tuple"),
    (AnalogConfig(), "noise_model.t_read", 100.0, ValueError, "t_read = 100"),
    (AnalogConfig(), "forward", {"out_noise": 0.1}, TypeError, r"AnalogConfig\.forward must be a IOParameters"),
    ({"forward": {}}, "forward", 1, TypeError, "config must be a config instance"),
])
def test_replace_path_rejects(config, path, value, exc, match):
    with pytest.raises(exc, match=match):
        replace_path(config, path, value)


def test_replace_path_reaches_training():
    cfg = replace_path(training_config("ttv2"), "training.transfer_every", 4)
    assert cfg.training.transfer_every == 4


@pytest.mark.parametrize("value,exc", [(-0.1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                                       ("0.1", TypeError), (None, TypeError)])
def test_standard_hwa_checks_modifier_std(value, exc):
    with pytest.raises(exc, match="modifier_std"):
        presets.standard_hwa(value)


@pytest.mark.parametrize("name", [None, 3, ["perfect"]])
def test_by_name_rejects_non_strings(name):
    with pytest.raises(TypeError, match="preset name"):
        presets.by_name(name)


def test_make_noise_model_checks_params():
    with pytest.raises(TypeError, match="params"):
        make_noise_model("pcm")


def test_replace_path():
    cfg = replace_path(AnalogConfig(), "forward.out_noise", 0.1)
    assert cfg.forward.out_noise == 0.1
    with pytest.raises(ValueError):
        replace_path(AnalogConfig(), "forward.out_noise", -1.0)
    with pytest.raises(ValueError, match="nope"):
        replace_path(AnalogConfig(), "nope.x", 1)


# ---- config schema versions: an old saved config loads, a newer one fails by name -------------------------

def test_to_dict_writes_the_schema_and_round_trips():
    from aimc_lab.config import CONFIG_SCHEMA
    data = AnalogConfig().to_dict()
    assert data["__schema__"] == CONFIG_SCHEMA == 2
    assert "__schema__" not in data["mapping"]  # only the top-level AnalogConfig carries it
    assert AnalogConfig.from_dict(data) == AnalogConfig()


def _schema_1(mapping_extra):
    """A config dict as releases before the schema key wrote it (MappingParameters had digital_bias)."""
    data = AnalogConfig().to_dict()
    del data["__schema__"]
    data["mapping"] = dict(data["mapping"], **mapping_extra)
    return data


def test_schema_1_config_with_digital_bias_true_loads():
    old = _schema_1({"digital_bias": True, "max_input_size": 64})
    cfg = AnalogConfig.from_dict(old)
    assert cfg.mapping.max_input_size == 64 and cfg == replace_path(AnalogConfig(), "mapping.max_input_size", 64)
    assert from_dict(None, old) == cfg  # the same through the generic loader


def test_schema_1_config_asking_for_an_analog_bias_fails_clearly():
    with pytest.raises(ValueError, match=r"AnalogConfig\.mapping\.digital_bias = False.*analog bias"):
        AnalogConfig.from_dict(_schema_1({"digital_bias": False}))


@pytest.mark.parametrize("schema, match", [(3, "newer aimc-lab.*schema 3.*upgrade"), (0, "__schema__ = 0"),
                                           ("2", "__schema__ = '2'"), (True, "__schema__ = True")])
def test_unknown_schema_is_refused_by_name(schema, match):
    data = dict(AnalogConfig().to_dict(), __schema__=schema)
    with pytest.raises(ValueError, match=match):
        AnalogConfig.from_dict(data)


def test_digital_bias_field_is_gone():
    with pytest.raises(TypeError, match="digital_bias"):
        MappingParameters(digital_bias=True)


def _schema_1_training(algorithm):
    """An in-memory config dict as schema 1 wrote it: the fields of that release, at their old values."""
    from aimc_lab.train import training_config
    data = training_config(algorithm).to_dict()
    del data["__schema__"]
    training = data["training"]
    for new_field in ("scale_fast_lr", "auto_scale", "auto_momentum", "transfer_per_sample", "scale_transfer_lr",
                      "tail_weighting"):
        del training[new_field]
    training.update(desired_bl=31, transfer_bl=31, fast_lr=1.0, transfer_lr=1.0, momentum=0.0,
                    forget_buffer=False, in_chop_prob=0.1, n_x_bins=0, n_d_bins=0)
    return data


@pytest.mark.parametrize("algorithm, auto_scale", [("ttv2", False), ("c-ttv2", False), ("agad", False)])
def test_schema_1_in_memory_configs_keep_their_old_semantics(algorithm, auto_scale):
    old = AnalogConfig.from_dict(_schema_1_training(algorithm)).training
    assert (old.scale_fast_lr, old.scale_transfer_lr, old.transfer_per_sample, old.auto_scale) == \
        (True, False, False, auto_scale)
    assert (old.desired_bl, old.transfer_bl, old.forget_buffer) == (31, 31, False)
    from aimc_lab.train import training_config
    new = training_config(algorithm).training  # today's defaults differ: the migration is what kept them
    assert (new.scale_transfer_lr, new.transfer_per_sample) == (True, True)


def test_schema_1_tiki_taka_and_sgd_configs_load():
    tt = AnalogConfig.from_dict(_schema_1_training("tiki-taka")).training
    assert (tt.scale_fast_lr, tt.scale_transfer_lr, tt.transfer_per_sample) == (True, False, False)
    sgd = _schema_1_training("sgd")
    assert AnalogConfig.from_dict(sgd).training.algorithm == "sgd"


def test_training_classes_must_be_training_parameters():
    from aimc_lab.config import TrainingParameters, register_training_class

    @dataclasses.dataclass(frozen=True)
    class NotTraining:
        x: int = 0

    with pytest.raises(TypeError, match="TrainingParameters"):
        register_training_class(NotTraining)
    from aimc_lab.train import training_config
    assert isinstance(training_config("sgd").training, TrainingParameters)
