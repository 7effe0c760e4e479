"""Energy, latency and area beside accuracy: an analytic cost model of analog MVMs (docs/cost.md).

::

    from aimc_lab.cost import CostParameters, mvm_cost, estimate
    c = mvm_cost(config, in_features=256, out_features=256)
    c.energy_j, c.latency_s, c.area_mm2, c.tops_per_w, c.tops_per_mm2, c.breakdown
    table = estimate(model, input_shape=(1, 64))   # one row per tile, then a "total" row
"""

from aimc_lab.cost.model import (COMPONENTS, MVMCost, adc_energy, converter_bits, dac_energy, integration_time,
                                 mvm_cost)
from aimc_lab.cost.params import CostParameters
from aimc_lab.cost.estimate import bound_management_passes, count_mvms, estimate, network_totals

__all__ = ["CostParameters", "MVMCost", "mvm_cost", "COMPONENTS", "converter_bits", "adc_energy", "dac_energy",
           "integration_time", "estimate", "count_mvms", "bound_management_passes", "network_totals"]
