"""Named, documented hardware configurations.

* :func:`library_defaults` – every field at its default (docs/physics.md §1 table): a 7-bit DAC, 9-bit ADC with
  ±12 range, output noise 0.06, abs-max noise management, iterative bound management, no conductance
  noise model.
* :func:`standard_hwa` – the paper's "commonly used settings" (Le Gallo et al. 2023, after Rasch et al.,
  Nat. Commun. 2023): 8-bit DAC/ADC, ADC bound 10, output noise 0.04, PCM read noise 0.0175, IR drop,
  input ranges (learned or calibrated) instead of dynamic noise management, no bound management,
  512-input tiles with learned per-column output scales, channelwise remapping, clipping at 1,
  the PCM noise model and global drift compensation. ``modifier_std`` > 0 adds the weight-noise
  injection used while training (additive Gaussian, σ·max|W|); it is our choice, the paper tunes it.
* :func:`perfect` – a digital reference: exact matmuls, no noise model.
* :func:`pcm_inference` – library-default MVM plus the PCM model and global drift compensation.
"""

from __future__ import annotations

import numbers

from aimc_lab.config import (MAX_NOISE, AnalogConfig, ClipParameters, DriftCompensationParameters,
                             InputRangeParameters, IOParameters, MappingParameters, NoiseModelParameters,
                             RemapParameters, WeightModifierParameters)

__all__ = ["library_defaults", "standard_hwa", "perfect", "pcm_inference", "PRESETS", "by_name"]


def library_defaults() -> AnalogConfig:
    """All defaults (docs/physics.md §1); no conductance noise model."""
    return AnalogConfig()


def standard_io() -> IOParameters:
    """The MVM of the standard HWA preset (docs/physics.md §1, "Presets")."""
    return IOParameters(inp_res=1 / 254, inp_bound=1.0, out_res=1 / 254, out_bound=10.0, out_noise=0.04,
                        w_noise=0.0175, w_noise_type="pcm_read", ir_drop=1.0, noise_management="constant",
                        nm_thres=1.0, bound_management="none")


def standard_hwa(modifier_std: float = 0.0) -> AnalogConfig:
    """The paper's standard hardware-aware setting (see the module docstring)."""
    if isinstance(modifier_std, bool) or not isinstance(modifier_std, numbers.Real):
        raise TypeError(f"standard_hwa: modifier_std must be a number >= 0, got {type(modifier_std).__name__} "
                        f"{modifier_std!r}")
    if not 0 <= modifier_std <= MAX_NOISE:
        raise ValueError(f"standard_hwa: modifier_std = {modifier_std!r} is invalid; allowed: a finite number in "
                         f"[0, {MAX_NOISE:g}] (0 = no weight-noise injection)")
    modifier = (WeightModifierParameters(kind="add_normal", std_dev=modifier_std) if modifier_std > 0
                else WeightModifierParameters())
    return AnalogConfig(
        forward=standard_io(),
        mapping=MappingParameters(max_input_size=512, max_output_size=512, weight_scaling_omega=1.0,
                                  weight_scaling_columnwise=True, learn_out_scaling=True),
        noise_model=NoiseModelParameters(kind="pcm"),
        drift_compensation=DriftCompensationParameters(kind="global"),
        modifier=modifier,
        clip=ClipParameters(kind="fixed", fixed_value=1.0),
        remap=RemapParameters(kind="channelwise"),
        input_range=InputRangeParameters(enable=True, init_value=3.0, init_from_data=100, init_std_alpha=3.0,
                                         decay=0.001, input_min_percentage=0.95),
    )


def perfect() -> AnalogConfig:
    """Exact digital matmuls in analog layers (for references and sanity checks)."""
    return AnalogConfig(forward=IOParameters(is_perfect=True), backward=IOParameters(is_perfect=True))


def pcm_inference() -> AnalogConfig:
    """Library-default MVM with the PCM noise model and global drift compensation."""
    return AnalogConfig(noise_model=NoiseModelParameters(kind="pcm"),
                        drift_compensation=DriftCompensationParameters(kind="global"))


PRESETS = {"library defaults": library_defaults, "standard HWA": standard_hwa, "perfect": perfect,
           "PCM inference": pcm_inference}


def by_name(name: str) -> AnalogConfig:
    """The preset called ``name`` (keys of :data:`PRESETS`)."""
    if not isinstance(name, str):
        raise TypeError(f"preset name must be a str, one of {', '.join(repr(k) for k in PRESETS)}; got "
                        f"{type(name).__name__} {name!r}")
    if name not in PRESETS:
        raise ValueError(f"preset {name!r} is unknown; allowed: " + ", ".join(repr(k) for k in PRESETS))
    return PRESETS[name]()
