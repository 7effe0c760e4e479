"""A plotly figure as a widget that keeps updating however slowly the page loads.

Why not plotly's ``FigureWidget``: it is an anywidget whose JavaScript module *is* plotly.js
(~4.6 MB). anywidget (0.11) gives a model's module 2 s to load and initialize; past that it rejects
the model for good and drops every later message from the kernel to that model ("[anywidget] Failed
to initialize model."). The first state still draws, so the figure looks fine and silently never
changes again: what a loaded machine or a Binder session on shared CPUs hits.

Here the parts are split so that no timeout can lose an update:

* :class:`FigureState` holds the figure (traces and layout). It is a plain ``@jupyter-widgets/base``
  ``WidgetModel``, which every Jupyter frontend (JupyterLab, Voila, Notebook 7) knows without any
  extension or module to load, so its updates are never gated by anywidget. Numeric arrays travel as
  binary float32/int32 buffers, not JSON lists.
* :class:`PlotlyLibrary` holds plotly.js itself (the copy inside plotly's Python package, gzipped):
  one model per kernel, shared by every figure; the page decompresses and evaluates it once.
* :class:`Figure` is the view: an anywidget with a module of a few KB that returns at once, so it is
  ready long before anywidget's 2 s limit. Its ``render`` returns at once (the controls around it show
  without waiting for plotly.js); once the page has painted, it loads plotly.js (no time limit), draws
  the state with ``Plotly.react`` and redraws on every state change, coalescing changes that arrive
  during a draw and decoding the layout again only when it changed. Even if anywidget gave up on this view model, its view still renders and follows the
  state model. After each draw the plot element carries ``data-revision`` (a counter) and
  ``data-draw-ms`` (how long decoding and drawing took), which the browser tests use to time updates.

The Python side is a ``plotly.graph_objects.Figure``: ``figure.data[0].y = ...``, ``figure.layout``,
``with figure.batch_update(): ...`` work as on a ``FigureWidget``; every change (one per batch) is
sent as one message with only the traits that changed.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gzip
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import anywidget
import ipywidgets as W
import numpy as np
import plotly
import plotly.graph_objects as go
import traitlets

__all__ = ["Figure", "FigureState", "PlotlyLibrary", "encode"]

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@lru_cache(maxsize=1)
def _plotly_js_gz() -> bytes:
    """plotly.min.js from plotly's Python package, gzipped (4.8 MB -> 1.7 MB, 0.15 s, once)."""
    return gzip.compress(PLOTLY_JS.read_bytes(), compresslevel=1, mtime=0)


def encode(value: Any) -> Any:
    """A plotly JSON value with every numeric array as ``{"ndarray": dtype, "shape", "buffer"}``
    (float32 or int32 bytes; ipywidgets sends bytes as binary buffers). Other values stay JSON.

    Numeric arrays arrive as numpy arrays or as plotly's base64 form ``{"dtype": "f8", "bdata": ...,
    "shape": "r, c"}`` (what ``to_plotly_json`` makes of numpy arrays)."""
    if isinstance(value, dict) and "bdata" in value and "dtype" in value and set(value) <= {"bdata", "dtype", "shape"}:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if "shape" in value:
            arr = arr.reshape([int(n) for n in str(value["shape"]).split(",")])
        value = arr
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiub" and value.size > 0:
        kind = "int32" if value.dtype.kind in "iub" else "float32"
        arr = np.ascontiguousarray(value, dtype=kind)
        return {"ndarray": kind, "shape": list(arr.shape), "buffer": arr.tobytes()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


class PlotlyLibrary(W.Widget):
    """plotly.js (gzipped bytes) in a plain widget model, sent to the page once per kernel."""

    version = traitlets.Unicode(plotly.__version__).tag(sync=True)
    source = traitlets.Bytes().tag(sync=True)

    _shared = None

    @classmethod
    def shared(cls) -> "PlotlyLibrary":
        """The kernel's one instance (created again if it was closed)."""
        if cls._shared is None or cls._shared.comm is None:
            cls._shared = cls(source=_plotly_js_gz())
        return cls._shared


class FigureState(W.Widget):
    """The figure's traces and layout, plotly JSON with binary arrays (see :func:`encode`)."""

    data = traitlets.List().tag(sync=True)
    layout = traitlets.Dict().tag(sync=True)


class _TrackedFigure(go.Figure):
    """A ``go.Figure`` that tells ``on_change(data, layout)`` which part changed after every change
    plotly would send to a view (once per ``batch_update``): the hooks ``FigureWidget`` uses to message
    its frontend."""

    def __init__(self, figure: go.Figure, on_change) -> None:
        super().__init__(figure)
        self._on_change = on_change

    def _changed(self, data: bool, layout: bool) -> None:
        on_change = getattr(self, "_on_change", None)
        if on_change is not None:
            on_change(data, layout)

    def _send_addTraces_msg(self, *args, **kwargs) -> None:
        self._changed(True, False)

    _send_moveTraces_msg = _send_deleteTraces_msg = _send_restyle_msg = _send_addTraces_msg

    def _send_relayout_msg(self, *args, **kwargs) -> None:
        self._changed(False, True)

    def _send_update_msg(self, restyle_data=None, relayout_data=None, *args, **kwargs) -> None:
        self._changed(bool(restyle_data), bool(relayout_data))

    def _send_animate_msg(self, *args, **kwargs) -> None:
        self._changed(True, True)


_ESM = r"""
const LIBRARIES = (globalThis.__aimc_lab_plotly ??= {});

function modelId(ref) { return ref.startsWith("IPY_MODEL_") ? ref.slice(10) : ref; }

// plotly.js once per page (per version): gunzip the bytes of the library model, evaluate the bundle
// as a module (its UMD wrapper assigns module.exports). No time limit: a slow page just draws later.
function loadPlotly(library) {
  const version = library.get("version");
  LIBRARIES[version] ??= (async () => {
    const gz = library.get("source");
    const stream = new Blob([gz]).stream().pipeThrough(new DecompressionStream("gzip"));
    const code = await new Response(stream).text();
    const url = URL.createObjectURL(new Blob(
      ["const module = { exports: {} };\n", code, "\nexport default module.exports;\n"],
      { type: "text/javascript" }));
    try { return (await import(url)).default; } finally { URL.revokeObjectURL(url); }
  })();
  return LIBRARIES[version];
}

// {ndarray, shape, buffer} -> Float32Array / Int32Array (rows of one for 2-D); the rest as is.
function decode(value) {
  if (Array.isArray(value)) return value.map(decode);
  if (value === null || typeof value !== "object") return value;
  if (typeof value.ndarray === "string") {
    const view = value.buffer;  // a DataView into the message; copy for alignment
    const bytes = view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
    const flat = value.ndarray === "int32" ? new Int32Array(bytes) : new Float32Array(bytes);
    if (value.shape.length !== 2) return flat;
    const [rows, cols] = value.shape;
    return Array.from({ length: rows }, (_, i) => flat.subarray(i * cols, (i + 1) * cols));
  }
  const out = {};
  for (const [k, v] of Object.entries(value)) out[k] = decode(v);
  return out;
}

function models(model) {
  const manager = model.widget_manager;
  return Promise.all([manager.get_model(modelId(model.get("state"))),
                      manager.get_model(modelId(model.get("library")))]);
}

export default {
  async render({ model, el }) {
    const plot = document.createElement("div");
    plot.className = "aimc-lab-figure";
    plot.dataset.revision = "0";
    el.appendChild(plot);
    const [state, library] = await models(model);
    // reserve the figure's height while plotly.js loads, so the page does not jump when it draws
    plot.style.minHeight = `${Number(state.get("layout").height) || 0}px`;
    let busy = false, again = false, alive = true, revision = 0;
    let Plotly = null, rawLayout = null, layout = null;
    const draw = async () => {
      if (busy) { again = true; return; }
      busy = true;
      try {
        Plotly ??= await loadPlotly(library);
        do {
          again = false;
          const start = performance.now();
          // the layout is decoded again only when it changed: an unchanged layout object lets
          // Plotly.react skip its layout diff and relayout
          if (state.get("layout") !== rawLayout) {
            rawLayout = state.get("layout");
            layout = decode(rawLayout);
            layout.uirevision ??= "aimc-lab";  // keep the user's zoom across updates from the kernel
          }
          if (!alive) return;
          await Plotly.react(plot, decode(state.get("data")), layout, { displaylogo: false });
          plot.dataset.drawMs = (performance.now() - start).toFixed(1);
          plot.dataset.revision = String(++revision);
        } while (again && alive);
      } finally {
        busy = false;
      }
    };
    const onChange = () => { draw().catch((e) => console.error("[aimc-lab figure]", e)); };
    state.on("change", onChange);
    // not awaited: the view (and the controls around it) shows at once. plotly.js is loaded (once per
    // page) by the first draw, after the page has painted the controls: evaluating its 4.6 MB holds
    // the page's only thread for a while, so it waits until the widgets are on screen (a background
    // tab paints nothing: the timeout starts it there)
    let started = false;
    const start = () => { if (!started) { started = true; onChange(); } };
    requestAnimationFrame(() => setTimeout(start, 0));
    setTimeout(start, 500);
    return () => {
      alive = false;
      state.off("change", onChange);
      if (Plotly) Plotly.purge(plot);
    };
  },
};
"""


class Figure(anywidget.AnyWidget):
    """A plotly figure shown as a widget and updated in place (see the module docstring).

    ``Figure(go.Figure(...))``; ``figure.data``, ``figure.layout``, ``figure.batch_update()`` and the
    methods of ``go.Figure`` (``update_layout``, ``add_scatter``, ...) act on the underlying figure
    (``figure.plotly``) as on a ``FigureWidget``, and every change reaches every view, including views
    that attach later (Voila, a reloaded page).
    """

    _esm = _ESM
    state = traitlets.Instance(FigureState).tag(sync=True, **W.widget_serialization)
    library = traitlets.Instance(PlotlyLibrary).tag(sync=True, **W.widget_serialization)

    def __init__(self, figure: go.Figure, **kwargs) -> None:
        self._holding, self._dirty = 0, [True, True]
        self.plotly = _TrackedFigure(figure, self._changed)
        super().__init__(state=FigureState(), library=PlotlyLibrary.shared(), **kwargs)
        self._push()

    @property
    def data(self):
        return self.plotly.data

    @property
    def layout(self):
        return self.plotly.layout

    def __getattr__(self, name: str):
        """Any other public method of ``go.Figure`` (``add_scatter``, ``update_xaxes``, ``add_hline``,
        ...), applied as one batch (one message); a method returning the figure returns this widget,
        so calls chain as on a ``FigureWidget``."""
        plotly_figure = self.__dict__.get("plotly")
        if name.startswith("_") or plotly_figure is None or not callable(getattr(go.Figure, name, None)):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        method = getattr(plotly_figure, name)

        @functools.wraps(method)
        def batched(*args, **kwargs):
            # held, not in plotly's batch mode: methods such as add_hline read back the layout they set
            with self._held():
                result = method(*args, **kwargs)
            return self if result is plotly_figure else result

        return batched

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """Send nothing inside the block; then what changed, as one message."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        self._push()

    @contextlib.contextmanager
    def batch_update(self) -> Iterator[None]:
        """Apply every change inside the block, then send them as one message (one redraw)."""
        with self._held(), self.plotly.batch_update():
            yield

    def _changed(self, data: bool, layout: bool) -> None:
        self._dirty = [self._dirty[0] or data, self._dirty[1] or layout]
        self._push()

    def _push(self) -> None:
        """Send what changed (data, layout or both) in one message. Reads plotly's own storage
        (``_data``, ``_layout``: what ``FigureWidget`` sends too) rather than ``to_plotly_json()``,
        which deep-copies the layout with its template and base64-encodes every array."""
        if self._holding or getattr(self, "state", None) is None:
            return
        data, layout = self._dirty
        self._dirty = [False, False]
        with self.state.hold_sync():
            if data:
                self.state.data = encode(self.plotly._data)
            if layout:
                self.state.layout = encode(self.plotly._layout)

    def close(self) -> None:
        self.state.close()
        super().close()
