"""Property tests of the config tree: every field of every config class, derived from the dataclasses.

Each field declares its check in ``metadata["check"]`` (a ``functools.partial`` of one of the
validators in ``aimc_lab.config``); the strategies here read its limits, so a new field is covered
as soon as it is declared. For every field: bad values (NaN, ±inf, out of range, wrong types,
tuples of the wrong length or with NaN) raise ValueError/TypeError naming the field, at
construction, through ``replace_path`` and through ``from_dict``; valid values are accepted and
round-trip through ``to_dict``/``from_dict`` (and JSON).
"""

import dataclasses
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aimc_lab import config
from aimc_lab.config import AnalogConfig, from_dict, replace_path, to_dict

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CLASSES = [obj for obj in vars(config).values()
           if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == config.__name__
           and obj is not AnalogConfig]
FIELDS = [(cls, f) for cls in CLASSES for f in dataclasses.fields(cls)]
IDS = [f"{cls.__name__}.{f.name}" for cls, f in FIELDS]
# where each class sits in an AnalogConfig ("forward" for IOParameters: "backward" is perfect by default)
PATH = {cls: name for name, cls in reversed(list(config._CHILD_TYPES.items()))}

NAN, INF = math.nan, math.inf
WRONG_SCALAR_TYPES = ["1.0", None, [1.0], (1.0,), {"a": 1}, b"1", object()]
VALIDATORS = {config._check_bool, config._check_int, config._check_real, config._check_choice,
              config._check_real_tuple, config._check_resolution, config._check_zero_or_real}


def spec(f):
    check = f.metadata["check"]
    return check.func, {"lo": -INF, "hi": INF, "lo_open": False, "hi_open": False, **check.keywords}


def finite_floats(lo, hi, lo_open=False, hi_open=False):
    return st.floats(max(lo, -1e300), min(hi, 1e300), exclude_min=lo_open, exclude_max=hi_open,
                     allow_nan=False, allow_infinity=False)


def valid_values(f):
    func, kw = spec(f)
    if func is config._check_bool:
        return st.booleans()
    if func is config._check_int:
        return st.integers(kw["lo"], int(min(kw["hi"], 2 ** 62)))
    if func is config._check_choice:
        return st.sampled_from(kw["choices"])
    if func is config._check_real:
        reals = finite_floats(kw["lo"], kw["hi"], kw["lo_open"], kw["hi_open"])
        ints = st.integers(math.ceil(max(kw["lo"], -1e15)), math.floor(min(kw["hi"], 1e15))).filter(
            lambda i: (i > kw["lo"] or not kw["lo_open"]) and (i < kw["hi"] or not kw["hi_open"]))
        return reals | ints
    if func is config._check_resolution:
        step = config.MIN_RESOLUTION_STEP
        off = finite_floats(-1e300, 0.0) if kw.get("allow_negative", True) else st.just(0.0)
        return off | finite_floats(step, 1 / step)
    if func is config._check_zero_or_real:
        return st.just(0.0) | finite_floats(kw["lo"], kw["hi"])
    if func is config._check_real_tuple:
        element = finite_floats(kw["lo"], kw["hi"], kw["lo_open"], kw["hi_open"])
        n = kw.get("length")
        sizes = dict(min_size=n, max_size=n) if n is not None else dict(min_size=kw.get("min_length", 1), max_size=8)
        return st.lists(element, **sizes).map(tuple)
    raise AssertionError(f"no strategy for {func.__name__}")


def out_of_range(f):
    """Values of the right type outside the allowed set (ValueError)."""
    func, kw = spec(f)
    if func is config._check_bool:
        return []
    if func is config._check_choice:
        return ["", kw["choices"][0].upper() + "x", " " + kw["choices"][0]]
    if func is config._check_int:
        return [kw["lo"] - 1] + ([int(kw["hi"]) + 1, 10 ** 40] if kw["hi"] < INF else [])
    if func is config._check_real_tuple:
        n = kw.get("length")
        good = [0.0] * (n if n is not None else kw.get("min_length", 1))
        bad_lengths = [good + [0.0]] + ([good[:-1]] if good else [])
        if n is None:
            bad_lengths = [good[:-1]]
        return [tuple(v) for v in bad_lengths] + [tuple(good[:-1] + [x]) for x in (NAN, INF, -INF)]
    values = [NAN, INF, -INF]
    if func is config._check_resolution:
        step = config.MIN_RESOLUTION_STEP
        values += [step / 2, 1e300, 2 / step] + ([] if kw.get("allow_negative", True) else [-1.0, -step])
    elif func is config._check_zero_or_real:
        values += [kw["lo"] / 2, -kw["lo"], kw["hi"] * 2]
    else:
        if kw["lo"] > -INF:
            values += [kw["lo"] - 1.0, -1e300] + ([kw["lo"]] if kw["lo_open"] else [])
        if kw["hi"] < INF:
            values += [kw["hi"] + 1.0, 1e300, 10 ** 400] + ([kw["hi"]] if kw["hi_open"] else [])
    return values


def wrong_types(f):
    """Values of the wrong type (TypeError)."""
    func, kw = spec(f)
    if func is config._check_bool:
        return [0, 1, 1.0, "True", None, [True]]
    if func is config._check_int:
        return [2.0, True, "3", None, [1], (1,)]
    if func is config._check_choice:
        return [1, None, True, [kw["choices"][0]], (kw["choices"][0],)]
    if func is config._check_real_tuple:
        return [0.5, 1, None, "abc", {"a": 1}, ("a",) * (kw.get("length") or 2), (None,) * (kw.get("length") or 2)]
    return [True, False] + WRONG_SCALAR_TYPES


def consistent(cls, name, value):
    """Other fields' values that the cross-field rules need next to ``name = value``."""
    if cls is config.IOParameters:
        if name == "w_noise" and value > 0:
            return {"w_noise_type": "additive_constant"}
        if name == "noise_management" and value == "constant":
            return {"nm_thres": 1.0}
    if cls is config.NoiseModelParameters:
        if name == "t_read":
            return {"t_0": max(20.0, value)}
        if name == "t_0":
            return {"t_read": min(250e-9, value)}
    if cls is config.WeightModifierParameters and name == "kind" and value == "discretize":
        return {"res": 0.1}
    return {}


def fix_cross_fields(cls, kw):
    """Make a dict of independently drawn field values satisfy the cross-field rules."""
    if cls is config.NoiseModelParameters and kw["t_read"] > kw["t_0"]:
        kw["t_read"], kw["t_0"] = kw["t_0"], kw["t_read"]
    if cls is config.IOParameters:
        if kw["noise_management"] == "constant" and kw["nm_thres"] < 1e-9:
            kw["nm_thres"] = 1.0
        if kw["w_noise"] > 0 and kw["w_noise_type"] == "none":
            kw["w_noise_type"] = "pcm_read"
    if cls is config.WeightModifierParameters and kw["kind"] == "discretize" and kw["res"] <= 0:
        kw["res"] = 0.1
    return kw


def instances(cls):
    return st.fixed_dictionaries({f.name: valid_values(f) for f in dataclasses.fields(cls)}).map(
        lambda kw: cls(**fix_cross_fields(cls, kw)))


def assert_names_field(error, cls, name):
    message = str(error.value)
    assert f"{cls.__name__}.{name}" in message, message
    assert "allowed" in message or "must be" in message, message


def in_config_data(cls, name, value):
    data = AnalogConfig().to_dict()
    data[PATH[cls]][name] = value
    return data


# ---------------------------------------------------------------------------------------------


def test_every_field_declares_a_known_check():
    assert len(CLASSES) >= 8
    for cls, f in FIELDS:
        assert "check" in f.metadata, f"{cls.__name__}.{f.name} has no declared check"
        assert f.metadata["check"].func in VALIDATORS, f"{cls.__name__}.{f.name}"
        assert cls in PATH, f"{cls.__name__} is not a part of AnalogConfig"


@pytest.mark.parametrize("cls,f", FIELDS, ids=IDS)
def test_out_of_range_rejected_everywhere(cls, f):
    for value in out_of_range(f):
        for build in (lambda: cls(**{f.name: value, **consistent(cls, f.name, 1.0)}),
                      lambda: replace_path(AnalogConfig(), f"{PATH[cls]}.{f.name}", value),
                      lambda: AnalogConfig.from_dict(in_config_data(cls, f.name, value))):
            with pytest.raises(ValueError) as info:
                build()
            assert_names_field(info, cls, f.name)


@pytest.mark.parametrize("cls,f", FIELDS, ids=IDS)
def test_wrong_types_rejected_everywhere(cls, f):
    for value in wrong_types(f):
        for build in (lambda: cls(**{f.name: value}),
                      lambda: replace_path(AnalogConfig(), f"{PATH[cls]}.{f.name}", value)):
            with pytest.raises(TypeError) as info:
                build()
            assert_names_field(info, cls, f.name)
        with pytest.raises((TypeError, ValueError)) as info:  # a dict value is data without '__type__'
            AnalogConfig.from_dict(in_config_data(cls, f.name, value))
        assert f".{f.name}" in str(info.value), str(info.value)


@pytest.mark.parametrize("cls,f", FIELDS, ids=IDS)
@SETTINGS
@given(data=st.data())
def test_valid_values_accepted_and_round_trip(cls, f, data):
    value = data.draw(valid_values(f))
    others = consistent(cls, f.name, value)
    obj = cls(**{f.name: value, **others})
    assert getattr(obj, f.name) == (tuple(value) if isinstance(value, list) else value)
    assert from_dict(None, to_dict(obj)) == obj
    assert from_dict(cls, json.loads(json.dumps(to_dict(obj)))) == obj
    base = AnalogConfig(**{PATH[cls]: cls(**others)})
    assert getattr(replace_path(base, f"{PATH[cls]}.{f.name}", value), PATH[cls]) == obj


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
@SETTINGS
@given(data=st.data())
def test_random_instances_round_trip(cls, data):
    obj = data.draw(instances(cls))
    assert from_dict(None, to_dict(obj)) == obj
    plain = json.loads(json.dumps(to_dict(obj), allow_nan=False))
    assert from_dict(cls, plain) == obj


@SETTINGS
@given(data=st.data())
def test_random_analog_configs_round_trip(data):
    children = {name: data.draw(instances(cls)) for name, cls in config._CHILD_TYPES.items()}
    cfg = AnalogConfig(**children)
    assert AnalogConfig.from_dict(json.loads(json.dumps(cfg.to_dict(), allow_nan=False))) == cfg
    name = data.draw(st.sampled_from(sorted(children)))
    assert replace_path(AnalogConfig(), name, children[name]) == AnalogConfig(**{name: children[name]})


@pytest.mark.parametrize("name", list(config._CHILD_TYPES))
@pytest.mark.parametrize("value", [None, 1.0, "forward", {}, (), AnalogConfig()], ids=lambda v: type(v).__name__)
def test_analog_config_children_typed(name, value):
    wrong = [v for v in (config.MappingParameters(), config.IOParameters())
             if not isinstance(v, config._CHILD_TYPES[name])]
    for bad in [value, *wrong]:
        for build in (lambda: AnalogConfig(**{name: bad}), lambda: replace_path(AnalogConfig(), name, bad)):
            with pytest.raises(TypeError, match=f"AnalogConfig.{name} must be a"):
                build()


@pytest.mark.parametrize("value", [1, 0.5, "sgd", {"algorithm": "sgd"}, config.IOParameters(), AnalogConfig()],
                         ids=lambda v: type(v).__name__)
def test_training_rejects_anything_unregistered(value):
    for build in (lambda: AnalogConfig(training=value), lambda: replace_path(AnalogConfig(), "training", value)):
        with pytest.raises(TypeError, match="AnalogConfig.training must be None"):
            build()
