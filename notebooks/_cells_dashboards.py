"""Cells of the Voila dashboards in notebooks/dashboards/ (built by build_notebooks.py).

Voila shows markdown and widget outputs and hides the code. Keep the code cells to building widgets.
"""

TILE_LAB = [
    ("md", r"""
# Tile lab · analog in-memory computing

A crossbar tile of 512×512 weights multiplies a batch of input vectors. Every control changes one property of the
hardware; the plots show the analog outputs against the exact result $Wx$ and the error histogram.
Start from a preset, then change **one control at a time**. The drift controls act when *PCM noise* is on.
"""),
    ("code", r"""
import os

import torch

from aimc_lab.widgets import ConductanceExplorer, TileExplorer

torch.set_num_threads(1)
FAST = os.environ.get("AIMC_LAB_FAST", "0") == "1"
TileExplorer(preset="standard HWA", size=512, n_inputs=128 if FAST else 256, seed=0)
"""),
    ("md", r"""
## Conductances

How the weights of a small tile become conductance pairs $G^+ - G^-$, how precisely they are
programmed, and how PCM conductances drift over ten years.
"""),
    ("code", r"""
ConductanceExplorer(size=32, seed=0)
"""),
]

DRIFT_LAB = [
    ("md", r"""
# Drift lab · accuracy of an analog network over time

A small network classifies 8×8 handwritten digits. It is programmed onto PCM tiles once; the
conductances then drift. Compare a network trained normally with one trained **hardware-aware**
(with weight noise), with and without drift compensation, from 1 second to 1 year.
"""),
    ("code", r"""
import os

import torch

from aimc_lab.widgets import DriftExplorer

torch.set_num_threads(1)
FAST = os.environ.get("AIMC_LAB_FAST", "0") == "1"
explorer = DriftExplorer(fast=FAST, seed=0, run=False)
explorer
"""),
    ("code", r"""
explorer.run()   # trains two small models, then evaluates; the progress bar follows
"""),
]

DASHBOARDS = {"tile_lab.ipynb": TILE_LAB, "drift_lab.ipynb": DRIFT_LAB}
