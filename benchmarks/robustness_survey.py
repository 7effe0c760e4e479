"""Robustness survey: aimc_lab used as a demanding user would, a few thousand cases, each outcome classified.

Areas: config (every field of every registered config class x bad and random values, at construction,
through ``replace_path`` and ``from_dict``), layers (AnalogLinear / AnalogConv2d / AnalogLSTM x the
default, standard-HWA, PCM-inference and in-memory configs x bad inputs, in eval and in a training
step), inference (program / drift / evaluate_over_time / calibration / hwa_train with bad arguments),
convert (torch models of every converted layer type x configs; the perfect config must match the
digital model),
pulsed (device presets and random device parameters trained with AnalogSGD, bad optimizer settings),
saveload (state_dict, whole-model torch.save, checkpoints, damaged files) and cli (``main(argv)`` with
bad arguments; no server is started).

Outcomes:

* correct - a finite result (or a valid call that returned normally),
* clear   - ValueError / TypeError / RuntimeError (or, for paths, an OSError) whose message names the
            parameter,
* silent  - garbage accepted: NaN/inf output or weights, a bad value accepted, state changed by a
            rejected call,
* crash   - any other exception (IndexError, ZeroDivisionError, math domain error, ...) or an error
            whose message does not name the parameter.

Prints a table of counts per area and every silent/crash case. Seeded; ``--quick`` runs a subset.

    python benchmarks/robustness_survey.py [--quick] [--csv PATH] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import dataclasses
import io
import math
import os
import random
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence

import torch
from torch import nn

import aimc_lab as al
from aimc_lab import cli, config, presets
from aimc_lab.devices import pulsed as P
from aimc_lab.train import ALGORITHMS, AnalogSGD, attach_hwa, training_config

OUTCOMES = ("correct", "clear", "silent", "crash")
CLEAR_TYPES = (ValueError, TypeError, RuntimeError)
NAN, INF = math.nan, math.inf


# ---------------------------------------------------------------------------------------------
# recording and classifying
# ---------------------------------------------------------------------------------------------


@dataclass
class Record:
    area: str
    case: str
    outcome: str
    detail: str


def names_any(message: str, names: Sequence[str]) -> bool:
    """Whether ``message`` contains one of ``names`` as a whole word."""
    return any(re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", message) for n in names)


def finite(obj: Any) -> bool:
    """Every floating tensor inside ``obj`` (tensors, modules, tuples, lists, dicts) is finite."""
    if isinstance(obj, torch.Tensor):
        return not obj.is_floating_point() and not obj.is_complex() or bool(torch.isfinite(obj).all())
    if isinstance(obj, nn.Module):
        return all(finite(t) for t in obj.state_dict().values())
    if isinstance(obj, (tuple, list)):
        return all(finite(v) for v in obj)
    if isinstance(obj, dict):
        return all(finite(v) for v in obj.values())
    if isinstance(obj, float):
        return math.isfinite(obj)
    return True


def snapshot(module: nn.Module) -> dict:
    out = {}
    for key, value in module.state_dict().items():
        out[key] = value.detach().clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)
    return out


def same_state(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key, va in a.items():
        vb = b[key]
        if isinstance(va, torch.Tensor):
            if not (isinstance(vb, torch.Tensor) and va.shape == vb.shape and va.dtype == vb.dtype
                    and torch.equal(va.nan_to_num(1.2345), vb.nan_to_num(1.2345))):
                return False
        elif isinstance(va, dict):
            if not isinstance(vb, dict) or not same_state(va, vb):
                return False
        elif va != vb:
            return False
    return True


def changed_keys(a: dict, b: dict) -> List[str]:
    keys = sorted(set(a) | set(b))
    return [k for k in keys if k not in a or k not in b or not same_state({k: a[k]}, {k: b[k]})]


class StateChanged(Exception):
    """A call was rejected but changed the model's state first (raised by :func:`guarded`)."""


def guarded(module: nn.Module, call: Callable[[], Any]) -> Any:
    """``call()``; if it raises, check that ``module``'s state is as before (else StateChanged)."""
    before = snapshot(module)
    try:
        return call()
    except Exception as err:
        keys = changed_keys(before, snapshot(module))
        if keys:
            raise StateChanged(f"{keys[:4]} changed; {type(err).__name__}: {err}") from err
        raise


def short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Survey:
    def __init__(self) -> None:
        self.records: List[Record] = []

    def add(self, area: str, case: str, outcome: str, detail: str = "") -> None:
        self.records.append(Record(area, case, outcome, short(detail)))

    def run(self, area: str, case: str, call: Callable[[], Any], names: Sequence[str], *, bad: bool = False,
            check: Optional[Callable[[Any], Optional[str]]] = None, state: Optional[nn.Module] = None,
            ok_errors: tuple = ()) -> Any:
        """Run ``call`` and record its outcome.

        ``bad``: the input is garbage, so returning normally is silent acceptance. ``check(result)``:
        None when the result is sane, else what is wrong with it (silent). ``state``: a module whose
        state a rejected call must leave unchanged. ``ok_errors``: further exception types that count as
        clear (e.g. FileNotFoundError for paths).
        """
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = guarded(state, call) if state is not None else call()
        except (KeyboardInterrupt, MemoryError):
            raise
        except BaseException as err:  # noqa: BLE001  (classifying every exception is the point)
            message = f"{type(err).__name__}: {err}"
            if isinstance(err, StateChanged):
                self.add(area, case, "silent", "state changed by a rejected call: " + str(err))
            elif isinstance(err, CLEAR_TYPES + ok_errors) and names_any(str(err), names):
                self.add(area, case, "clear", message)
            elif isinstance(err, CLEAR_TYPES + ok_errors):
                self.add(area, case, "crash", f"message names none of {list(names)[:3]}; {message}")
            else:
                self.add(area, case, "crash", message)
            return None
        if bad:
            self.add(area, case, "silent", f"accepted; returned {short(repr(result), 80)}")
            return None
        problem = check(result) if check is not None else (None if finite(result) else "NaN/inf in the result")
        self.add(area, case, "silent" if problem else "correct", problem or "")
        return result


# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def train_step(model: nn.Module, x: torch.Tensor, in_memory: bool) -> torch.Tensor:
    """One training step: forward, a squared loss, backward, optimizer step (AnalogSGD for in-memory
    tiles; SGD with the HWA clip/remap hook otherwise). Returns the output."""
    model.train()

    def forward_backward():
        y = model(x)
        out = y[0] if isinstance(y, tuple) else y
        out.float().pow(2).mean().backward()
        return out

    out = guarded(model, forward_backward)
    if in_memory:
        opt = AnalogSGD(model, lr=0.05)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        attach_hwa(opt, model)
    guarded(model, opt.step)
    return out


def sane_output_and_weights(model: nn.Module) -> Callable[[Any], Optional[str]]:
    def check(result: Any) -> Optional[str]:
        if not finite(result):
            return "NaN/inf in the output"
        if not finite(model):
            return "NaN/inf in the weights or state after the call"
        return None
    return check


def inference_configs() -> dict:
    split = config.MappingParameters(max_input_size=5, max_output_size=3)
    return {"default": config.AnalogConfig(), "standard_hwa": presets.standard_hwa(0.02),
            "pcm_inference": presets.pcm_inference(),
            "split_tiles_hwa": dataclasses.replace(presets.standard_hwa(0.02), mapping=split)}


def in_memory_configs(algorithms: Sequence[str]) -> dict:
    return {f"inmemory-{a}": training_config(a, device=P.SoftBounds(dw_min=0.01)) for a in algorithms}


# ---------------------------------------------------------------------------------------------
# area: config
# ---------------------------------------------------------------------------------------------


def bad_values(default: Any, rng: random.Random, randoms: int) -> List[tuple]:
    """(label, value, bad) for a field whose default is ``default``; bad: garbage that must be refused."""
    if isinstance(default, bool):
        return [("1", 1, True), ("0", 0, True), ("'yes'", "yes", True), ("None", None, True), ("1.0", 1.0, True)]
    if isinstance(default, int):
        values = [("nan", NAN, True), ("2.5", 2.5, True), ("'3'", "3", True), ("None", None, True),
                  ("True", True, True), ("1e40", 10 ** 40, True), ("-1", -1, False), ("0", 0, False),
                  ("2**31", 2 ** 31, False)]
        return values + [(f"rand {v}", v, False) for v in (rng.randint(0, 10 ** rng.randint(0, 6))
                                                          for _ in range(randoms))]
    if isinstance(default, float):
        values = [("nan", NAN, True), ("inf", INF, True), ("-inf", -INF, True), ("'1'", "1", True),
                  ("None", None, True), ("True", True, True), ("[d]", [default], True), ("1e300", 1e300, False),
                  ("-1e300", -1e300, False), ("10**400", 10 ** 400, True), ("1e-300", 1e-300, False),
                  ("-1.0", -1.0, False), ("0.0", 0.0, False)]
        rand = [rng.choice((-1, 1, 1)) * 10 ** rng.uniform(-6, 6) for _ in range(randoms)]
        return values + [(f"rand {v:.3g}", v, False) for v in rand]
    if isinstance(default, str):
        return [("''", "", True), ("'NOPE'", "NOPE", True), ("None", None, True), ("1", 1, True),
                (f"[{default!r}]", [default], True), ("upper", default.upper() + "_", True)]
    if isinstance(default, tuple):
        n = len(default)
        return [("0.5", 0.5, True), ("None", None, True), ("'abc'", "abc", True), ("()", (), True),
                ("nan-tuple", (NAN,) * n, True), ("inf-tuple", (1.0,) * (n - 1) + (INF,), True),
                ("str-tuple", ("a",) * n, True), ("longer", default + (default[-1],), False),
                ("negative", tuple(-abs(v) - 1 for v in default), False)]
    if dataclasses.is_dataclass(default) or default is None:
        return [("3", 3, True), ("'x'", "x", True), ("dict", {"a": 1}, True), ("None", None, default is not None),
                ("IOParameters()", config.IOParameters(), not isinstance(default, config.IOParameters))]
    return []


def use_config_object(obj: Any) -> Any:
    """Exercise an accepted config object the way the library would, returning the tensors it gives."""
    g = gen(1)
    x = torch.randn(4, 12, generator=g)
    if isinstance(obj, config.IOParameters):
        w = (0.3 * torch.randn(5, 12, generator=g)).clamp(-1, 1)
        return al.analog_mvm(x, w, obj, generator=g)
    if isinstance(obj, P.PulsedDevice):
        cfg = training_config("sgd", device=obj)
        return use_model(al.AnalogLinear(12, 5, config=cfg), x, in_memory=True)
    if type(obj).__name__ == "InMemoryTrainingParameters":
        cfg = config.AnalogConfig(training=obj, backward=config.IOParameters(bound_management="none"))
        return use_model(al.AnalogLinear(12, 5, config=cfg), x, in_memory=True)
    child = next(name for name, cls in config._CHILD_TYPES.items() if isinstance(obj, cls))
    cfg = config.replace_path(presets.standard_hwa(), child, obj)
    return use_model(al.AnalogLinear(12, 5, config=cfg), x, in_memory=False)


def use_model(model: nn.Module, x: torch.Tensor, in_memory: bool) -> Any:
    outs = [train_step(model, x, in_memory).detach()]
    model.eval()
    if not in_memory:
        al.program(model, generator=gen(2))
        al.drift(model, 3600.0, generator=gen(3))
    with torch.no_grad():
        outs.append(model(x))
    if not finite(model):
        raise FloatingPointError("NaN/inf in the model state after use")
    return outs


def survey_config(s: Survey, rng: random.Random, quick: bool) -> None:
    area = "config"
    classes = [c for name, c in sorted(config._REGISTRY.items()) if c is not config.AnalogConfig]
    randoms = 1 if quick else 3
    for cls in classes:
        try:
            base = cls()
        except Exception as err:  # noqa: BLE001
            s.add(area, f"{cls.__name__}()", "crash", f"default construction fails: {err}")
            continue
        child = next((n for n, c in config._CHILD_TYPES.items() if c is cls), None)
        root = config.AnalogConfig()
        if cls.__name__ == "InMemoryTrainingParameters":
            child, root = "training", training_config("sgd")
        elif cls is P.ConstantStep:
            child, root = "training.device", training_config("sgd")
        for f in dataclasses.fields(cls):
            default = getattr(base, f.name)
            for label, value, bad in bad_values(default, rng, randoms):
                case = f"{cls.__name__}.{f.name} = {label}"
                names = (f.name,)
                if bad:
                    s.run(area, case, lambda: cls(**{f.name: value}), names, bad=True)
                else:
                    s.run(area, case, lambda: use_config_object(cls(**{f.name: value})), names,
                          check=lambda r: None if finite(r) else "NaN/inf after using the accepted value")
                if child is None or (quick and not bad):
                    continue
                path = f"{child}.{f.name}"
                s.run(area, f"replace_path {path} = {label}",
                      lambda: config.replace_path(root, path, value), names, bad=bad, check=lambda r: None)
                data = root.to_dict()
                node = data
                for part in child.split("."):
                    node = node[part]
                node[f.name] = value
                s.run(area, f"from_dict {path} = {label}", lambda data=data: config.AnalogConfig.from_dict(data),
                      names, bad=bad, check=lambda r: None)
    # several random fields at once on the in-memory and standard presets
    for i in range(10 if quick else 40):
        cls = rng.choice([c for c in classes if c.__name__ in {k.__name__ for k in config._CHILD_TYPES.values()}
                          or issubclass(c, P.PulsedDevice)])
        base = cls()
        kwargs = {}
        for f in rng.sample(dataclasses.fields(cls), k=min(3, len(dataclasses.fields(cls)))):
            default = getattr(base, f.name)
            if isinstance(default, float) and not isinstance(default, bool):
                kwargs[f.name] = rng.choice((-1, 1, 1)) * 10 ** rng.uniform(-4, 4)
            elif isinstance(default, bool):
                kwargs[f.name] = rng.random() < 0.5
            elif "check" in f.metadata and "choices" in f.metadata["check"].keywords:
                kwargs[f.name] = rng.choice(f.metadata["check"].keywords["choices"])
        s.run(area, f"{cls.__name__}(random {sorted(kwargs)}) #{i}", lambda: use_config_object(cls(**kwargs)),
              tuple(kwargs) or ("-",), check=lambda r: None if finite(r) else "NaN/inf after using the config")
    # whole-tree garbage
    garbage = [
        ("AnalogConfig(training=3)", lambda: config.AnalogConfig(training=3), ("training",)),
        ("AnalogConfig(training='sgd')", lambda: config.AnalogConfig(training="sgd"), ("training",)),
        ("AnalogConfig(training=SoftBounds())", lambda: config.AnalogConfig(training=P.SoftBounds()), ("training",)),
        ("AnalogConfig(forward=dict)", lambda: config.AnalogConfig(forward={"out_noise": 0.1}), ("forward",)),
        ("from_dict('x')", lambda: config.AnalogConfig.from_dict("x"), ("data", "from_dict")),
        ("from_dict(None)", lambda: config.AnalogConfig.from_dict(None), ("data", "from_dict")),
        ("from_dict(__type__=Nope)", lambda: config.AnalogConfig.from_dict({"__type__": "Nope"}), ("Nope",)),
        ("from_dict(unknown key)", lambda: config.AnalogConfig.from_dict({"bogus": 1}), ("bogus",)),
        ("from_dict(training plain dict)", lambda: config.AnalogConfig.from_dict({"training": {"algorithm": "sgd"}}),
         ("training",)),
        ("replace_path('forward.')", lambda: config.replace_path(config.AnalogConfig(), "forward.", 1.0),
         ("path", "forward.")),
        ("replace_path(3)", lambda: config.replace_path(config.AnalogConfig(), 3, 1.0), ("path",)),
        ("replace_path(property)", lambda: config.replace_path(config.AnalogConfig(), "forward.inp_step", 1.0),
         ("inp_step",)),
        ("replace_path(training.x on None)",
         lambda: config.replace_path(config.AnalogConfig(), "training.algorithm", "sgd"), ("training",)),
        ("replace_path(dict config)", lambda: config.replace_path({}, "forward", 1), ("config",)),
        ("presets.by_name(None)", lambda: presets.by_name(None), ("name", "preset")),
        ("presets.by_name('x')", lambda: presets.by_name("x"), ("preset",)),
        ("presets.standard_hwa(-1)", lambda: presets.standard_hwa(-1.0), ("modifier_std",)),
        ("presets.standard_hwa(nan)", lambda: presets.standard_hwa(NAN), ("modifier_std",)),
        ("training_config('nope')", lambda: training_config("nope"), ("algorithm",)),
        ("training_config(device=3)", lambda: training_config("sgd", device=3), ("device",)),
        ("training_config(bogus=1)", lambda: training_config("sgd", bogus=1), ("bogus",)),
        ("training_config(transfer_every=nan)", lambda: training_config("ttv2", transfer_every=NAN),
         ("transfer_every",)),
        ("make_noise_model('pcm')", lambda: al.devices.make_noise_model("pcm"), ("params",)),
    ]
    for case, call, names in garbage:
        s.run(area, case, call, names, bad=True)


# ---------------------------------------------------------------------------------------------
# area: layers
# ---------------------------------------------------------------------------------------------


def layer_specs() -> dict:
    """name -> (factory(config), input shape, feature axis)."""
    return {
        "linear": (lambda cfg: al.AnalogLinear(16, 8, config=cfg), (4, 16), -1),
        "conv2d": (lambda cfg: al.AnalogConv2d(3, 4, 3, padding=1, config=cfg), (2, 3, 6, 6), 1),
        "lstm": (lambda cfg: al.AnalogLSTM(6, 5, config=cfg), (5, 2, 6), -1),
    }


def input_cases(shape: tuple, axis: int, quick: bool) -> List[tuple]:
    """(label, builder() -> x, bad, extra names) inputs for a layer expecting ``shape``."""
    g = gen(5)
    base = torch.randn(shape, generator=g)

    def with_value(v):
        def build():
            x = base.clone()
            x.view(-1)[3] = v
            return x
        return build

    def wrong_features():
        s = list(shape)
        s[axis] += 1
        return torch.randn(s, generator=gen(6))

    def empty():
        s = list(shape)
        s[0 if axis != 0 else 1] = 0
        return torch.zeros(s)

    def non_contiguous():
        x = torch.randn(tuple(reversed(shape)), generator=gen(7)).permute(*reversed(range(len(shape))))
        assert not x.is_contiguous()
        return x

    cases = [
        ("normal", lambda: base.clone(), False, ()),
        ("zeros", lambda: torch.zeros(shape), False, ()),
        ("one NaN", with_value(NAN), True, ("NaN", "nan")),
        ("one +inf", with_value(INF), True, ("inf",)),
        ("one -inf", with_value(-INF), True, ("inf",)),
        ("huge 1e30", lambda: base * 1e30, False, ()),
        ("huge 1e38", lambda: base * 1e38, False, ()),
        ("tiny 1e-30", lambda: base * 1e-30, False, ()),
        ("empty batch", empty, False, ()),
        ("wrong features", wrong_features, True, ("shape",)),
        ("scalar", lambda: torch.tensor(1.0), True, ("shape",)),
        ("float64", lambda: base.double(), False, ("dtype",)),
        ("float16", lambda: base.half(), False, ("dtype",)),
        ("bfloat16", lambda: base.bfloat16(), False, ("dtype",)),
        ("int64", lambda: (base * 3).long(), False, ("dtype",)),
        ("bool", lambda: base > 0, False, ("dtype",)),
        ("non-contiguous", non_contiguous, False, ()),
        ("broadcast view (stride 0)", lambda: base[:1].expand(shape), False, ()),
        ("list", lambda: base.tolist(), True, ("Tensor", "tensor")),
        ("numpy", lambda: base.numpy(), True, ("Tensor", "tensor")),
        ("None", lambda: None, True, ("Tensor", "tensor")),
    ]
    if quick:
        keep = {"normal", "one NaN", "one +inf", "huge 1e38", "empty batch", "wrong features", "float64",
                "bfloat16", "int64", "non-contiguous", "list"}
        cases = [c for c in cases if c[0] in keep]
    return cases


def survey_layers(s: Survey, rng: random.Random, quick: bool) -> None:
    area = "layers"
    configs = {**inference_configs(), **in_memory_configs(ALGORITHMS)}
    names = ("x", "input", "inputs", "in_features", "in_channels", "input_size")
    for layer_name, (factory, shape, axis) in layer_specs().items():
        for cfg_name, cfg in configs.items():
            in_memory = cfg.training is not None
            torch.manual_seed(0)
            try:
                template = factory(cfg)
            except Exception as err:  # noqa: BLE001
                clear = isinstance(err, CLEAR_TYPES) and names_any(str(err), ("training", "config", "in-memory"))
                s.add(area, f"{layer_name}/{cfg_name} construction", "clear" if clear else "crash",
                      f"{type(err).__name__}: {err}")
                continue
            for label, build, bad, extra in input_cases(shape, axis, quick):
                for mode in ("eval", "train"):
                    model = copy.deepcopy(template)
                    case = f"{layer_name}/{cfg_name}/{mode}: {label}"

                    def call(model=model, build=build, mode=mode):
                        x = build()
                        if mode == "eval":
                            model.eval()
                            with torch.no_grad():
                                return model(x)
                        return train_step(model, x, in_memory)

                    s.run(area, case, call, names + extra, bad=bad, state=model if mode == "eval" else None,
                          check=sane_output_and_weights(model))


# ---------------------------------------------------------------------------------------------
# area: inference
# ---------------------------------------------------------------------------------------------


def survey_inference(s: Survey, rng: random.Random, quick: bool) -> None:
    area = "inference"
    times = [("0", 0.0, False), ("1", 1.0, False), ("1 year", 3.1536e7, False), ("1e12", 1e12, False),
             ("nan", NAN, True), ("inf", INF, True), ("-1", -1.0, True), ("'1h'", "1h", True), ("None", None, True),
             ("True", True, True), ("1e300", 1e300, False), ("tensor(5.)", torch.tensor(5.0), False)]
    for cfg_name, cfg in {**inference_configs(), "reram": config.AnalogConfig(
            noise_model=config.NoiseModelParameters(kind="reram"))}.items():
        model = nn.Sequential(al.AnalogLinear(12, 6, config=cfg))
        x = torch.randn(8, 12, generator=gen(8))
        al.program(model, generator=gen(9))
        for label, t, bad in times:
            def call(t=t):
                al.drift(model, t, generator=gen(4))
                model.eval()
                with torch.no_grad():
                    return model(x)
            s.run(area, f"{cfg_name}: drift(t={label})", call, ("t", "t_inference", "time"), bad=bad, state=model,
                  check=sane_output_and_weights(model))
        for label, times_arg, bad in [("[1, 3600]", [1.0, 3600.0], False), ("[]", [], True), ("[nan]", [NAN], True),
                                      ("[-5]", [-5.0], True), ("'1'", "1", True), ("[1, None]", [1.0, None], True)]:
            y = torch.randint(0, 6, (8,), generator=gen(10))
            s.run(area, f"{cfg_name}: evaluate_over_time(times={label})",
                  lambda times_arg=times_arg, y=y: al.evaluate_over_time(model, (x, y), times=times_arg, repeats=1),
                  ("times", "t", "t_inference", "time"), bad=bad, check=lambda r: None)
        for label, data, bad in [("labels float", (x, torch.rand(8)), True), ("labels wrong length",
                                 (x, torch.zeros(3, dtype=torch.long)), True), ("x with NaN", (x * NAN, torch.zeros(
                                     8, dtype=torch.long)), True), ("not a pair", x, True)]:
            s.run(area, f"{cfg_name}: accuracy({label})", lambda data=data: al.accuracy(model, data),
                  ("data", "labels", "y", "x", "targets", "inputs", "input"), bad=bad, check=lambda r: None)
    digital = nn.Sequential(nn.Linear(4, 3))
    for label, call, names in [
        ("convert_to_analog(config=dict)", lambda: al.convert_to_analog(digital, {"forward": {}}), ("config",)),
        ("convert_to_analog(config='standard')", lambda: al.convert_to_analog(digital, "standard"), ("config",)),
        ("convert_to_analog(config=IOParameters())", lambda: al.convert_to_analog(digital, config.IOParameters()),
         ("config",)),
        ("convert_to_analog(model='x')", lambda: al.convert_to_analog("x"), ("model",)),
        ("program(digital model)", lambda: al.program(digital), ("model", "analog")),
        ("drift(digital model)", lambda: al.drift(digital, 1.0), ("model", "analog")),
        ("AnalogLinear(0, 3)", lambda: al.AnalogLinear(0, 3), ("in_features",)),
        ("AnalogLinear(2.5, 3)", lambda: al.AnalogLinear(2.5, 3), ("in_features",)),
        ("AnalogLinear(4, 3, config=3)", lambda: al.AnalogLinear(4, 3, config=3), ("config",)),
        ("AnalogConv2d(3, 4, 0)", lambda: al.AnalogConv2d(3, 4, 0), ("kernel_size",)),
        ("AnalogConv2d(3, 4, 3, groups=2)", lambda: al.AnalogConv2d(3, 4, 3, groups=2), ("groups",)),
        ("AnalogLSTM(6, 0)", lambda: al.AnalogLSTM(6, 0), ("hidden_size",)),
        ("AnalogLSTM(6, 5, dropout=2)", lambda: al.AnalogLSTM(6, 5, dropout=2.0), ("dropout",)),
        ("AnalogLSTM(6, 5, num_layers=nan)", lambda: al.AnalogLSTM(6, 5, num_layers=NAN), ("num_layers",)),
    ]:
        s.run(area, label, call, names, bad=True)
    hwa = nn.Sequential(al.AnalogLinear(12, 6, config=presets.standard_hwa()))
    xs, ys = torch.randn(32, 12, generator=gen(15)), torch.randint(0, 6, (32,), generator=gen(16))
    for label, kwargs, bad in [("defaults", {}, False), ("method='nope'", {"method": "nope"}, True),
                               ("quantile=nan", {"quantile": NAN}, True), ("quantile=0", {"quantile": 0.0}, True),
                               ("quantile=2", {"quantile": 2.0}, True), ("std_alpha=-1", {"std_alpha": -1.0}, True),
                               ("batch_size=0", {"batch_size": 0}, True), ("max_samples=0", {"max_samples": 0}, True),
                               ("max_batches=-1", {"max_batches": -1}, True)]:
        s.run(area, f"calibrate_input_ranges({label})",
              lambda kwargs=kwargs: al.train.calibrate_input_ranges(hwa, xs, **kwargs), tuple(kwargs) or ("-",),
              bad=bad, state=hwa, check=lambda r: None if finite(r) and finite(hwa) else "NaN ranges or weights")
    for label, data, bad in [("NaN inputs", xs * NAN, True), ("empty", xs[:0], False), ("3-D", xs[None], False)]:
        s.run(area, f"calibrate_input_ranges(data={label})",
              lambda data=data: al.train.calibrate_input_ranges(hwa, data), ("data", "x", "input", "inputs"),
              bad=bad, state=hwa, check=lambda r: None if finite(hwa) else "NaN in the model")
    for label, kwargs, bad in [("1 epoch", {}, False), ("epochs=0", {"epochs": 0}, True),
                               ("epochs=-1", {"epochs": -1}, True), ("lr=nan", {"lr": NAN}, True),
                               ("lr=-1", {"lr": -1.0}, True), ("loader=None", {"loader": None}, True),
                               ("labels NaN", {"loader": (xs, ys.float() * NAN)}, True),
                               ("inputs NaN", {"loader": (xs * NAN, ys)}, True)]:
        kwargs = {"loader": (xs, ys), **kwargs}
        s.run(area, f"hwa_train({label})", lambda kwargs=kwargs: al.train.hwa_train(hwa, **kwargs),
              tuple(k for k in kwargs if k != "loader" or label.startswith(("loader", "labels", "inputs")))
              + ("data", "x", "y", "labels", "inputs", "input"),
              bad=bad, state=hwa, check=lambda r: None if finite(r) and finite(hwa) else "NaN loss or weights")
    layer = al.AnalogLinear(4, 3)
    for label, w, bad in [("NaN weight", torch.full((3, 4), NAN), True), ("inf weight", torch.full((3, 4), INF), True),
                          ("wrong shape", torch.zeros(4, 3), True), ("huge 1e30", torch.full((3, 4), 1e30), False),
                          ("float64", torch.zeros(3, 4, dtype=torch.float64), False)]:
        s.run(area, f"AnalogLinear.set_weights({label})", lambda w=w: layer.set_weights(w),
              ("weight", "weights"), bad=bad, state=layer, check=lambda r: None if finite(layer) else "NaN in layer")


# ---------------------------------------------------------------------------------------------
# area: convert
# ---------------------------------------------------------------------------------------------


class Shared(nn.Module):
    """One Linear used twice, next to a plain parameter: conversion must keep the sharing."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(5, 5)
        self.scale = nn.Parameter(torch.ones(5))

    def forward(self, x):
        return self.layer(torch.tanh(self.layer(x))) * self.scale


def torch_models() -> dict:
    """name -> (module factory, input shape)."""
    return {
        "mlp (no bias)": (lambda: nn.Sequential(nn.Linear(7, 5, bias=False), nn.ReLU(), nn.Linear(5, 3)), (4, 7)),
        "conv1d stride 2 dilation 2": (lambda: nn.Conv1d(3, 4, 3, stride=2, dilation=2), (2, 3, 11)),
        "conv2d groups 2": (lambda: nn.Conv2d(4, 6, 3, groups=2, padding=1), (2, 4, 5, 5)),
        "lstm 2 layers bidirectional": (lambda: nn.LSTM(5, 4, num_layers=2, bidirectional=True, batch_first=True),
                                        (2, 6, 5)),
        "gru": (lambda: nn.GRU(5, 4), (6, 2, 5)),
        "rnn relu": (lambda: nn.RNN(5, 4, nonlinearity="relu"), (6, 2, 5)),
        "lstm cell": (lambda: nn.LSTMCell(5, 4), (3, 5)),
        "shared linear": (Shared, (3, 5)),
    }


def first(y: Any) -> torch.Tensor:
    return y[0] if isinstance(y, tuple) else y


def survey_convert(s: Survey, rng: random.Random, quick: bool) -> None:
    area = "convert"
    configs = {**inference_configs(), "perfect": presets.perfect(), **in_memory_configs(("sgd",))}
    for model_name, (factory, shape) in torch_models().items():
        torch.manual_seed(3)
        digital = factory().eval()
        x = torch.randn(shape, generator=gen(17))
        with torch.no_grad():
            expected = first(digital(x))
        for cfg_name, cfg in configs.items():
            def call(digital=digital, cfg=cfg, x=x, expected=expected, cfg_name=cfg_name):
                analog = al.convert_to_analog(digital, cfg).eval()
                with torch.no_grad():
                    y = first(analog(x))
                if y.shape != expected.shape:
                    return f"output shape {tuple(y.shape)} instead of {tuple(expected.shape)}"
                if not finite(y):
                    return "NaN/inf in the output"
                error = float((y - expected).norm() / expected.norm().clamp(min=1e-12))
                if cfg_name == "perfect" and error > 1e-4:
                    return f"perfect config differs from the digital model by {error:.2g} (relative L2)"
                back = al.convert_to_digital(analog).eval()
                with torch.no_grad():
                    again = first(back(x))
                if cfg_name == "perfect" and float((again - expected).abs().max()) > 1e-4:
                    return "convert_to_digital(convert_to_analog(m)) differs from m"
                return None
            s.run(area, f"{model_name} / {cfg_name}", call, ("model", "config"), check=lambda r: r)
    digital = nn.Sequential(nn.Linear(4, 3))
    for label, value in [("{}", {}), ("''", ""), ("0", 0), ("False", False), ("[]", [])]:
        s.run(area, f"convert_to_analog(config={label})", lambda value=value: al.convert_to_analog(digital, value),
              ("config",), bad=True)


# ---------------------------------------------------------------------------------------------
# area: pulsed devices
# ---------------------------------------------------------------------------------------------


def random_device(cls: type, rng: random.Random) -> Any:
    base = cls()
    kwargs = {}
    for f in dataclasses.fields(cls):
        default = getattr(base, f.name)
        if rng.random() < 0.5:
            continue
        if isinstance(default, bool):
            kwargs[f.name] = rng.random() < 0.5
        elif isinstance(default, (int, float)):
            scale = abs(default) if default else 0.1
            kwargs[f.name] = rng.choice((-1, 1, 1, 1)) * scale * 10 ** rng.uniform(-2, 2)
        elif isinstance(default, tuple):
            kwargs[f.name] = tuple(abs(v) * 10 ** rng.uniform(-1, 1) for v in default + (1.0,) * rng.randint(0, 3))
    return kwargs


def survey_pulsed(s: Survey, rng: random.Random, quick: bool) -> None:
    area = "pulsed"
    x = torch.randn(8, 10, generator=gen(11))
    algorithms = ALGORITHMS if not quick else ("sgd", "ttv2", "c-ttv2", "mixed-precision")
    for preset_name, preset in P.PRESETS.items():
        for algorithm in algorithms:
            def call(preset=preset, algorithm=algorithm):
                torch.manual_seed(0)
                model = al.AnalogLinear(10, 4, config=training_config(algorithm, device=preset()))
                outs = [train_step(model, x, in_memory=True).detach() for _ in range(3)]
                return outs, model
            s.run(area, f"preset {preset_name} x {algorithm}: 3 AnalogSGD steps", call, ("device",))
    models = getattr(P, "MODELS", ())
    for cls in models:
        for i in range(4 if quick else 15):
            kwargs = random_device(cls, rng)
            names = tuple(kwargs) or ("-",)

            def call(cls=cls, kwargs=kwargs):
                device = cls(**kwargs)
                model = al.AnalogLinear(10, 4, config=training_config("sgd", device=device))
                outs = [train_step(model, x, in_memory=True).detach() for _ in range(2)]
                response = P.pulse_response(device, n_up=20, n_down=20)
                return outs, model, response
            s.run(area, f"{cls.__name__}(random #{i}: {short(repr(kwargs), 90)})", call, names)
    model = al.AnalogLinear(10, 4, config=training_config("sgd", device=P.SoftBounds(dw_min=0.01)))
    for name in ("lr", "weight_decay"):
        for label, value in [("nan", NAN), ("inf", INF), ("-1", -1.0), ("'0.1'", "0.1"), ("None", None),
                             ("True", True), ("1e300", 1e300)]:
            s.run(area, f"AnalogSGD({name}={label})", lambda name=name, value=value: AnalogSGD(model, **{name: value}),
                  (name,), bad=value != 1e300, check=lambda r: None)

            def step_with(name=name, value=value):
                opt = AnalogSGD(model, lr=0.05)
                model.train()
                model(x).pow(2).mean().backward()
                opt.param_groups[0][name] = value
                guarded(model, opt.step)
            s.run(area, f"AnalogSGD.step with param_groups {name}={label}", step_with, (name,), bad=value != 1e300)
    for label, call, names in [
        ("pulse_response(n_up=-1)", lambda: P.pulse_response(P.SoftBounds(), n_up=-1), ("n_up",)),
        ("pulse_response(n_up=2.5)", lambda: P.pulse_response(P.SoftBounds(), n_up=2.5), ("n_up",)),
        ("pulse_response(traces=0)", lambda: P.pulse_response(P.SoftBounds(), traces=0), ("traces",)),
        ("pulse_response(device=3)", lambda: P.pulse_response(3), ("device",)),
        ("DeviceArray(out_features=0)", lambda: P.DeviceArray(P.SoftBounds(), 0, 4), ("out_features",)),
    ]:
        s.run(area, label, call, names, bad=True)


# ---------------------------------------------------------------------------------------------
# area: save / load
# ---------------------------------------------------------------------------------------------


def survey_saveload(s: Survey, rng: random.Random, quick: bool, tmp: str) -> None:
    area = "saveload"
    configs = {**inference_configs(), **in_memory_configs(("sgd", "ttv2", "mixed-precision"))}
    for layer_name, (factory, shape, _) in layer_specs().items():
        if quick and layer_name == "lstm":
            continue
        for cfg_name, cfg in configs.items():
            in_memory = cfg.training is not None
            try:
                torch.manual_seed(1)
                model = nn.Sequential(factory(cfg))
                train_step(model, torch.randn(shape, generator=gen(12)), in_memory)
                if not in_memory:
                    al.program(model, generator=gen(13))
            except Exception as err:  # noqa: BLE001
                s.add(area, f"{layer_name}/{cfg_name} setup", "crash", f"{type(err).__name__}: {err}")
                continue
            state = snapshot(model)

            def state_dict_round_trip(model=model, factory=factory, cfg=cfg, state=state):
                fresh = nn.Sequential(factory(cfg))
                fresh.load_state_dict(model.state_dict())
                return None if same_state(state, snapshot(fresh)) else "state differs after load_state_dict"
            s.run(area, f"{layer_name}/{cfg_name}: state_dict round trip", state_dict_round_trip, ("state_dict",),
                  check=lambda r: r)

            def whole_model(model=model, state=state, path=os.path.join(tmp, f"{layer_name}-{cfg_name}.pt")):
                torch.save(model, path)
                loaded = torch.load(path, weights_only=False)
                return None if same_state(state, snapshot(loaded)) else "state differs after torch.load"
            s.run(area, f"{layer_name}/{cfg_name}: torch.save(model)", whole_model, ("model",), check=lambda r: r)

            def checkpoint(model=model, factory=factory, cfg=cfg, state=state,
                           path=os.path.join(tmp, f"{layer_name}-{cfg_name}.ckpt")):
                al.save_checkpoint(model, path)
                loaded = al.load_checkpoint(path, lambda: nn.Sequential(factory(cfg)))
                return None if same_state(state, snapshot(loaded)) else "state differs after load_checkpoint"
            s.run(area, f"{layer_name}/{cfg_name}: save/load_checkpoint", checkpoint, ("checkpoint",),
                  check=lambda r: r)

            def deepcopy_forward(model=model):
                twin = copy.deepcopy(model).eval()
                with torch.no_grad():
                    return twin(torch.randn(shape, generator=gen(14)))
            s.run(area, f"{layer_name}/{cfg_name}: deepcopy + forward", deepcopy_forward, ("model",))

    torch.manual_seed(2)
    model = nn.Sequential(al.AnalogLinear(6, 3, config=presets.standard_hwa()))
    good = os.path.join(tmp, "good.ckpt")
    al.save_checkpoint(model, good)
    garbage = os.path.join(tmp, "garbage.ckpt")
    with open(garbage, "wb") as fh:
        fh.write(bytes(rng.randrange(256) for _ in range(300)))
    a_list = os.path.join(tmp, "list.ckpt")
    torch.save([1, 2, 3], a_list)
    nan_state = {k: (v * NAN if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
                 for k, v in model.state_dict().items()}
    wrong_shape = {k: (torch.zeros(7, 7) if k.endswith("weight") and isinstance(v, torch.Tensor) else v)
                   for k, v in model.state_dict().items()}
    cases = [
        ("load_checkpoint(missing file)", lambda: al.load_checkpoint(os.path.join(tmp, "nope.ckpt"), model),
         ("nope.ckpt", "path"), True),
        ("load_checkpoint(garbage bytes)", lambda: al.load_checkpoint(garbage, model), ("garbage.ckpt", "checkpoint"),
         True),
        ("load_checkpoint(a list)", lambda: al.load_checkpoint(a_list, model), ("list.ckpt", "checkpoint"), True),
        ("load_checkpoint(a directory)", lambda: al.load_checkpoint(tmp, model), ("path", "checkpoint", tmp), True),
        ("load_checkpoint(other config)", lambda: al.load_checkpoint(good, nn.Sequential(al.AnalogLinear(6, 3))),
         ("config", "configs"), True),
        ("load_checkpoint(other shape)", lambda: al.load_checkpoint(good, nn.Sequential(
            al.AnalogLinear(5, 3, config=presets.standard_hwa()))), ("state_dict", "shape", "config", "configs"),
         True),
        ("load_checkpoint(model=3)", lambda: al.load_checkpoint(good, 3), ("model", "model_factory_or_model"), True),
        ("load_checkpoint(path=None)", lambda: al.load_checkpoint(None, model), ("path",), True),
        ("save_checkpoint(missing dir)", lambda: al.save_checkpoint(model, os.path.join(tmp, "no", "x.ckpt")),
         ("path", "no"), True),
        ("save_checkpoint(model=3)", lambda: al.save_checkpoint(3, good + "2"), ("model",), True),
        ("load_state_dict(NaN tensors)", lambda: model.load_state_dict(nan_state), ("state_dict", "NaN"), True),
        ("load_state_dict(wrong shape)", lambda: model.load_state_dict(wrong_shape), ("weight", "shape"), True),
        ("load_state_dict(missing keys)", lambda: model.load_state_dict({}), ("state_dict", "Missing"), True),
    ]
    for label, call, names, bad in cases:
        s.run(area, label, call, names, bad=bad, state=model, ok_errors=(OSError, EOFError))


# ---------------------------------------------------------------------------------------------
# area: cli
# ---------------------------------------------------------------------------------------------


def survey_cli(s: Survey, rng: random.Random, quick: bool, tmp: str) -> None:
    area = "cli"
    a_file = os.path.join(tmp, "a_file.txt")
    with open(a_file, "w") as fh:
        fh.write("x")
    cases = [
        (["info"], False, ()),
        (["mvm-error", "--size", "8", "--vectors", "4"], False, ()),
        (["--help"], False, ()),
        ([], True, ("command", "usage")),
        (["nope"], True, ("command", "nope", "choice")),
        (["tutorials", os.path.join(tmp, "tut")], False, ()),
        (["tutorials", a_file], True, ("dest", a_file)),
        (["tutorials"], True, ("dest",)),
        (["serve"], True, ("notebook",)),
        (["serve", "x.ipynb", "--port", "0"], True, ("--port", "port")),
        (["serve", "x.ipynb", "--port", "abc"], True, ("--port", "port")),
        (["lab", "--port", "70000"], True, ("--port", "port")),
        (["mvm-error", "--bogus"], True, ("--bogus",)),
    ]
    for value in ["0", "-1", "abc", "1e3", "5000", "", "nan", "2.5", str(2 ** 70)]:
        cases.append((["mvm-error", "--size", value], True, ("--size", "size")))
    for value in ["0", "-3", "x", str(10 ** 9)]:
        cases.append((["mvm-error", "--size", "8", "--vectors", value], True, ("--vectors", "vectors")))
    for value in ["-1", str(2 ** 64), "x", "1.5"]:
        cases.append((["mvm-error", "--size", "8", "--vectors", "4", "--seed", value], True, ("--seed", "seed")))
    cases.append((["mvm-error", "--size", "4096", "--vectors", "4096"], True, ("--vectors", "--size")))
    for argv, bad, names in cases:
        def call(argv=argv, bad=bad, names=names):
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = cli.main(list(argv))
                except SystemExit as exit_:
                    code = exit_.code
            text = err.getvalue() + out.getvalue()
            if code in (0, None):
                return f"exit 0: {short(text, 80)}"
            if names_any(text, names):
                raise ValueError(f"exit {code}: {text}")
            raise SystemExit(f"exit {code} without naming {list(names)}: {text}")
        s.run(area, "aimc-lab " + " ".join(argv), call, names or ("-",), bad=bad, check=lambda r: None)


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------


def print_table(records: List[Record], seconds: dict) -> None:
    areas = list(dict.fromkeys(r.area for r in records))
    header = f"{'area':10s} {'cases':>6s} " + " ".join(f"{o:>8s}" for o in OUTCOMES) + f" {'seconds':>8s}"
    print(header)
    print("-" * len(header))
    for area in areas + ["total"]:
        rows = [r for r in records if area in (r.area, "total")]
        counts = [sum(r.outcome == o for r in rows) for o in OUTCOMES]
        secs = sum(seconds.values()) if area == "total" else seconds.get(area, 0.0)
        print(f"{area:10s} {len(rows):6d} " + " ".join(f"{c:8d}" for c in counts) + f" {secs:8.1f}")
    bad = [r for r in records if r.outcome in ("silent", "crash")]
    print(f"\n{len(bad)} silent / crash cases:")
    for r in bad:
        print(f"  [{r.outcome}] {r.area}: {r.case}\n      {r.detail}")
    causes: dict = {}
    for r in bad:
        detail = re.sub(r"^message names none of \[[^]]*\]; ", "(parameter not named) ", r.detail)
        cause = re.sub(r"'[^']*'", "'…'", re.sub(r"-?\d[\d.e+-]*", "#", detail))[:120]
        causes.setdefault((r.outcome, r.area, cause), []).append(r.case)
    print(f"\nthe same, grouped by cause ({len(causes)} causes):")
    for (outcome, area, cause), cases in sorted(causes.items(), key=lambda kv: -len(kv[1])):
        print(f"  {len(cases):4d} [{outcome}] {area}: {cause}\n       e.g. {'; '.join(cases[:3])}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a subset that runs in about a minute")
    parser.add_argument("--csv", metavar="PATH", help="also write every case (area, case, outcome, detail)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random cases")
    parser.add_argument("--areas", default="config,layers,inference,convert,pulsed,saveload,cli",
                        help="comma-separated areas to run")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    s = Survey()
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        runners = {"config": lambda: survey_config(s, rng, args.quick),
                   "layers": lambda: survey_layers(s, rng, args.quick),
                   "inference": lambda: survey_inference(s, rng, args.quick),
                   "convert": lambda: survey_convert(s, rng, args.quick),
                   "pulsed": lambda: survey_pulsed(s, rng, args.quick),
                   "saveload": lambda: survey_saveload(s, rng, args.quick, tmp),
                   "cli": lambda: survey_cli(s, rng, args.quick, tmp)}
        for area in args.areas.split(","):
            start = time.perf_counter()
            runners[area]()
            seconds[area] = time.perf_counter() - start
    print_table(s.records, seconds)
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["area", "case", "outcome", "detail"])
            writer.writerows([r.area, r.case, r.outcome, r.detail] for r in s.records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
