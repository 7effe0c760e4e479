"""The numbers of the cost model: one frozen, validated dataclass, every default with its source.

docs/cost.md gives the equations these fields enter and, for each default, where it comes from
(a published figure, or an assumption fitted to IBM's HERMES core where no figure is published).
Change a field with ``dataclasses.replace``; bad values raise ``ValueError``/``TypeError`` naming
the field, the value and the allowed range, like the simulator's own configs.
"""

from __future__ import annotations

from dataclasses import dataclass

from aimc_lab.validation import check_fields, check_int, check_real, checked

__all__ = ["CostParameters"]

#: Largest energy (J), time (s) or area (mm^2) a single field may hold; a sanity bound, not physics.
_HUGE = 1e3


@dataclass(frozen=True)
class CostParameters:
    """Energy, time and area of the parts of an analog MVM (docs/cost.md).

    Energies in joules, times in seconds, areas in mm^2, voltages in volts.

    ADC (docs/cost.md "ADC"): energy per conversion ``adc_energy_floor + adc_fom * 2**bits`` (Walden
    figure of merit: flat at low resolution, then x2 per bit = x4 per 2 bits), one conversion per used
    column and pass; ``adc_share`` columns share one ADC (conversions in series), each conversion
    taking ``adc_time_per_bit * bits`` (successive approximation: one comparison per bit).

    Input (DAC) side: pulse-width-modulated inputs; the integration window of one pass is
    ``pwm_lsb_time * 2**(dac_bits - 1)``; a row driver spends ``dac_energy_floor + dac_fom * 2**bits``
    per pass.

    Array: ``read_voltage**2 * g * t`` per cross-point, with g = ``mean_abs_weight`` x the config's
    ``noise_model.g_max`` and the inputs on for ``mean_abs_input`` of the window on average.

    Digital periphery: per output, an affine correction (scale and offset), accumulation of partial
    sums over input tiles, drift compensation (when the config enables it): ``digital_mult_energy``
    and ``digital_add_energy`` per operation; activations move through SRAM at
    ``sram_energy_per_bit`` (inputs at the DAC's bits, outputs at ``output_word_bits``).

    Parallelism: ``max_parallel_tiles`` physical tiles of a layer compute at once (0: all of them).

    Area per physical tile: ``cell_area`` per cross-point (a differential weight), ``adc_area`` per
    ADC, ``driver_area`` per row, ``tile_periphery_area`` (digital unit and buffers).

    ``default_bits``: the resolution assumed for a converter the config does not quantize
    (``is_perfect`` or a resolution <= 0): the simulation then says nothing about it.
    ``bm_mean_passes``: mean passes per MVM assumed under iterative bound management when the caller
    gives none (measure it with :func:`aimc_lab.cost.bound_management_passes`).
    """

    adc_fom: float = checked(100e-15, check_real, lo=0.0, hi=_HUGE)
    adc_energy_floor: float = checked(4e-12, check_real, lo=0.0, hi=_HUGE)
    adc_share: int = checked(1, check_int, lo=1, hi=2 ** 20)
    adc_time_per_bit: float = checked(1e-9, check_real, lo=0.0, hi=_HUGE)
    pwm_lsb_time: float = checked(1e-9, check_real, lo=0.0, hi=_HUGE, lo_open=True)
    dac_fom: float = checked(1e-15, check_real, lo=0.0, hi=_HUGE)
    dac_energy_floor: float = checked(0.1e-12, check_real, lo=0.0, hi=_HUGE)
    read_voltage: float = checked(0.2, check_real, lo=0.0, hi=10.0)
    mean_abs_weight: float = checked(0.25, check_real, lo=0.0, hi=1.0)
    mean_abs_input: float = checked(0.25, check_real, lo=0.0, hi=1.0)
    digital_mult_energy: float = checked(1.1e-12, check_real, lo=0.0, hi=_HUGE)
    digital_add_energy: float = checked(0.4e-12, check_real, lo=0.0, hi=_HUGE)
    sram_energy_per_bit: float = checked(10e-12 / 64, check_real, lo=0.0, hi=_HUGE)
    output_word_bits: int = checked(16, check_int, lo=1, hi=64)
    max_parallel_tiles: int = checked(0, check_int, lo=0, hi=2 ** 31 - 1)
    cell_area: float = checked(4e-6, check_real, lo=0.0, hi=_HUGE)
    adc_area: float = checked(600e-6, check_real, lo=0.0, hi=_HUGE)
    driver_area: float = checked(20e-6, check_real, lo=0.0, hi=_HUGE)
    tile_periphery_area: float = checked(0.15, check_real, lo=0.0, hi=_HUGE)
    default_bits: int = checked(8, check_int, lo=1, hi=32)
    bm_mean_passes: float = checked(1.0, check_real, lo=1.0, hi=64.0)

    def __post_init__(self) -> None:
        check_fields(self)
