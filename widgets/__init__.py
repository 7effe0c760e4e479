"""Interactive views of the simulator: ipywidgets layouts with plotly figures updated in place.

Python owns the state (a frozen config plus a few data controls); every computation goes through the
public API of :mod:`aimc_lab`. Each widget is an ``ipywidgets.VBox``: ``display(TileExplorer())``.
The plots are :class:`Figure` widgets, which keep updating however slowly a page loads (plotly's
``FigureWidget`` does not; see :mod:`aimc_lab.widgets._figure`); use ``Figure(go.Figure(...))`` in
your own widgets the same way.

* :class:`TileExplorer` – one tile, every MVM nonideality on a control, analog vs ideal outputs
* :class:`ConductanceExplorer` – programmed conductances, programming error, drift of target states
* :class:`DriftExplorer` – a network's accuracy over a year of drift, with and without HWA training
* :class:`DeviceExplorer` – pulse responses of the pulsed-device presets (in-memory training)
* :class:`DesignExplorer` – the Design lab: accuracy after drift vs energy per inference, per design
"""

from aimc_lab.widgets._figure import Figure
from aimc_lab.widgets.conductance_explorer import ConductanceExplorer
from aimc_lab.widgets.design_explorer import DesignExplorer
from aimc_lab.widgets.device_explorer import DeviceExplorer
from aimc_lab.widgets.drift_explorer import DriftExplorer
from aimc_lab.widgets.tile_explorer import TileExplorer

__all__ = ["TileExplorer", "ConductanceExplorer", "DriftExplorer", "DeviceExplorer", "DesignExplorer", "Figure"]
