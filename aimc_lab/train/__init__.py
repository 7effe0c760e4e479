"""Training analog models: hardware-aware training and post-training input-range calibration.

* :mod:`.hwa` – post-step hooks (clip, remap) for any torch optimizer and a small training loop
* :mod:`.calibration` – input-range calibration from sample data
* :mod:`.inmemory` – in-memory training tiles, one module per algorithm (SGD, Tiki-Taka, TTv2, c-TTv2, AGAD,
  mixed precision) and their registry
* :mod:`.analog_sgd` – the optimizer that routes analog-tile updates to pulsed device updates (any other
  torch optimizer refuses, at its first step, a model with in-memory tiles)
"""

from aimc_lab.train.calibration import CALIBRATION_METHODS, calibrate_input_ranges
from aimc_lab.train.hwa import attach_hwa, clip_tile, clip_weights, detach_hwa, hwa_train, remap_weights
from aimc_lab.train.inmemory import ALGORITHMS, InMemoryTile, InMemoryTrainingParameters, training_config
from aimc_lab.train.analog_sgd import AnalogSGD

__all__ = ["attach_hwa", "detach_hwa", "clip_tile", "clip_weights", "remap_weights", "hwa_train",
           "calibrate_input_ranges", "CALIBRATION_METHODS",
           "ALGORITHMS", "InMemoryTile", "InMemoryTrainingParameters", "training_config", "AnalogSGD"]
