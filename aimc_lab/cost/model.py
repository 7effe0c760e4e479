"""Energy, latency and area of one analog MVM of a layer: the equations of docs/cost.md.

A layer's weight matrix [N, K] sits on an S x T grid of physical tiles of ``max_input_size`` rows x
``max_output_size`` columns (the simulator's tiling, ``config.mapping``). One MVM of the layer runs
``passes`` passes on every tile (iterative bound management repeats a pass at halved input scale);
the digital periphery corrects, accumulates and compensates once per MVM.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Dict, Optional

from aimc_lab.config import AnalogConfig, IOParameters, resolution_step
from aimc_lab.cost.params import CostParameters

__all__ = ["MVMCost", "mvm_cost", "converter_bits", "adc_energy", "dac_energy", "integration_time",
           "COMPONENTS"]

#: The energy components of :attr:`MVMCost.breakdown`, in this order.
COMPONENTS = ("dac", "array", "adc", "digital", "sram")


def converter_bits(res: float, params: CostParameters) -> float:
    """Bits of a converter with resolution ``res`` (docs/physics.md §1): a step of 1/n over the signed
    range is n steps, n + 1 levels, log2(n + 2) bits (1/254 -> 8, 1/510 -> 9); unquantized (res <= 0)
    -> ``params.default_bits``."""
    step = resolution_step(res)
    if step <= 0:
        return float(params.default_bits)
    return math.log2(1.0 / step + 2.0)


def adc_energy(bits: float, params: CostParameters) -> float:
    """Energy of one ADC conversion (J): floor + Walden FoM x 2^bits."""
    return params.adc_energy_floor + params.adc_fom * 2.0 ** bits


def dac_energy(bits: float, params: CostParameters) -> float:
    """Energy of one row driver for one pass (J): floor + FoM x 2^bits."""
    return params.dac_energy_floor + params.dac_fom * 2.0 ** bits


def integration_time(bits: float, params: CostParameters) -> float:
    """PWM integration window of one pass (s): the largest signed input lasts 2^(bits-1) LSB periods."""
    return params.pwm_lsb_time * 2.0 ** (bits - 1.0)


@dataclass(frozen=True)
class MVMCost:
    """The cost of ``mvms`` MVMs of one layer (1 unless scaled by :meth:`times`).

    ``breakdown`` maps each component of :data:`COMPONENTS` to joules and sums to ``energy_j``.
    ``ops`` counts a multiply and an add per weight: 2·K·N per MVM.
    """

    energy_j: float
    latency_s: float
    area_mm2: float
    ops: float
    breakdown: Dict[str, float]
    n_tiles: int
    grid: tuple
    adc_bits: float
    dac_bits: float
    passes: float
    mvms: int = 1
    details: Dict[str, float] = field(default_factory=dict)

    @property
    def tops_per_w(self) -> float:
        """Operations per joule, in TOPS/W (= 1e12 ops/J)."""
        return self.ops / self.energy_j / 1e12 if self.energy_j > 0 else math.inf

    @property
    def tops_per_mm2(self) -> float:
        """Throughput (ops / latency) per mm^2 of the tiles, in TOPS/mm^2."""
        if self.latency_s <= 0 or self.area_mm2 <= 0:
            return math.inf
        return self.ops / self.latency_s / 1e12 / self.area_mm2

    def times(self, mvms: int) -> "MVMCost":
        """``mvms`` MVMs in a row on the same tiles (weights stay put): energy, ops and latency scale,
        the area does not."""
        return MVMCost(self.energy_j * mvms, self.latency_s * mvms, self.area_mm2, self.ops * mvms,
                       {k: v * mvms for k, v in self.breakdown.items()}, self.n_tiles, self.grid,
                       self.adc_bits, self.dac_bits, self.passes, self.mvms * mvms, dict(self.details))


def _check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"mvm_cost: {name} must be an integer >= 1, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"mvm_cost: {name} = {value!r} is invalid; allowed: an integer >= 1")
    return int(value)


def _passes(io: IOParameters, passes: Optional[float], params: CostParameters) -> float:
    if passes is None:
        return params.bm_mean_passes if io.bound_management == "iterative" and not io.is_perfect else 1.0
    if isinstance(passes, bool) or not isinstance(passes, numbers.Real):
        raise TypeError(f"mvm_cost: passes must be a real number in [1, 64] or None, got {type(passes).__name__} "
                        f"{passes!r}")
    if not 1.0 <= float(passes) <= 64.0:
        raise ValueError(f"mvm_cost: passes = {passes!r} is invalid; allowed: a real number in [1, 64] or None")
    return float(passes)


def mvm_cost(config: AnalogConfig, in_features: int, out_features: int, params: Optional[CostParameters] = None,
             *, passes: Optional[float] = None) -> MVMCost:
    """Energy, latency and area of one MVM of a K = ``in_features`` x N = ``out_features`` layer.

    Args:
        config: the layer's hardware: converter resolutions (``forward.inp_res``/``out_res``), tile size
            (``mapping.max_input_size``/``max_output_size``), bound management, drift compensation,
            ``noise_model.g_max``.
        in_features, out_features: the layer's logical K and N.
        params: the cost model's numbers (default ``CostParameters()``).
        passes: mean passes per MVM (>= 1); None: 1, or ``params.bm_mean_passes`` under iterative
            bound management (measure it with :func:`aimc_lab.cost.bound_management_passes`).

    Returns:
        An :class:`MVMCost` (see docs/cost.md for every term).
    """
    if not isinstance(config, AnalogConfig):
        raise TypeError(f"mvm_cost: config must be an AnalogConfig, got {type(config).__name__}")
    params = CostParameters() if params is None else params
    if not isinstance(params, CostParameters):
        raise TypeError(f"mvm_cost: params must be a CostParameters or None, got {type(params).__name__}")
    K, N = _check_size("in_features", in_features), _check_size("out_features", out_features)
    io, mapping = config.forward, config.mapping
    n_passes = _passes(io, passes, params)
    rows, cols = mapping.max_input_size, mapping.max_output_size
    S, T = math.ceil(K / rows), math.ceil(N / cols)
    b_in = float(params.default_bits) if io.is_perfect else converter_bits(io.inp_res, params)
    b_out = float(params.default_bits) if io.is_perfect else converter_bits(io.out_res, params)

    # energy of one MVM; every used row is driven and every used column converted on every tile
    t_int = integration_time(b_in, params)
    g_mean = params.mean_abs_weight * config.noise_model.g_max * 1e-6  # S (µS -> S)
    e_dac = n_passes * K * T * dac_energy(b_in, params)  # each of T column tiles drives its own rows
    e_array = n_passes * K * N * g_mean * params.read_voltage ** 2 * params.mean_abs_input * t_int
    e_adc = n_passes * N * S * adc_energy(b_out, params)  # each of S input tiles converts its columns
    compensated = config.drift_compensation.kind != "none"
    mults = N * S + (N if compensated else 0)  # affine scale per tile output, drift compensation
    adds = N * S + N * (S - 1)  # affine offset per tile output, partial-sum accumulation
    e_digital = mults * params.digital_mult_energy + adds * params.digital_add_energy
    e_sram = (K * b_in + N * params.output_word_bits) * params.sram_energy_per_bit
    breakdown = {"dac": e_dac, "array": e_array, "adc": e_adc, "digital": e_digital, "sram": e_sram}

    # latency: a pass integrates, then each ADC converts its adc_share columns in series
    t_conv = params.adc_time_per_bit * b_out
    used_share = min(params.adc_share, cols)
    t_pass = t_int + used_share * t_conv
    n_tiles = S * T
    parallel = n_tiles if params.max_parallel_tiles == 0 else min(params.max_parallel_tiles, n_tiles)
    rounds = math.ceil(n_tiles / parallel)
    latency = n_passes * rounds * t_pass

    # area: the whole physical tiles (unused rows and columns included)
    n_adc = math.ceil(cols / params.adc_share)
    tile_area = (rows * cols * params.cell_area + n_adc * params.adc_area + rows * params.driver_area
                 + params.tile_periphery_area)
    details = {"t_integration_s": t_int, "t_conversion_s": t_conv, "t_pass_s": t_pass, "rounds": rounds,
               "adcs_per_tile": n_adc, "tile_area_mm2": tile_area}
    return MVMCost(sum(breakdown.values()), latency, n_tiles * tile_area, 2.0 * K * N, breakdown, n_tiles,
                   (S, T), b_out, b_in, n_passes, 1, details)
