"""The tutorial notebooks and dashboards that ship with aimc-lab, copying them to a folder, and the
two helpers every tutorial starts with.

A wheel carries them under ``aimc_lab/notebooks/``; a checkout (or an editable install) has them in
the repository's ``notebooks/``. ``aimc-lab tutorials DIR`` (or :func:`copy_tutorials`) copies them to
a folder of your own, where you can run and change them.

Inside a tutorial:

* :func:`setup` gives torch one thread unless you ask for more (on a small shared machine torch's
  idle OpenMP threads spin against every other process: tutorial 03 took 16 min with the default
  threads on a busy 2-core machine and about 1 min with one), and puts plotly.js into the notebook
  once, so that the figures of an executed notebook still show in an HTML export without network.
* :func:`show` draws a plotly figure as a plain output, not a widget; :func:`live` does the same and
  returns a :class:`LivePlot`, whose ``refresh()`` redraws it in place while a loop adds results. Why not a widget for these figures: a widget's view
  is drawn from the widget state, which an HTML export can only render with the widget manager from a
  CDN (blank offline), and which held plotly.js once per figure with ``FigureWidget`` (31-46 MB
  executed tutorials). A plain output carries the figure twice, as plotly's JSON (what JupyterLab's
  and Voila's plotly renderer draw) and as HTML that calls the plotly.js :func:`setup` embedded (what
  an nbconvert HTML export shows). Interactive figures (sliders) stay widgets
  (:mod:`aimc_lab.widgets`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import List, Optional, Union

__all__ = ["source_dir", "tutorial_files", "copy_tutorials", "setup", "show", "live", "LivePlot", "figure_bundle",
           "plotly_js_html"]

_HERE = Path(__file__).resolve().parent


def source_dir() -> Path:
    """The folder holding the shipped notebooks (``01_*.ipynb``, ..., ``dashboards/``)."""
    for candidate in (_HERE / "notebooks", _HERE.parent / "notebooks"):
        if any(candidate.glob("*.ipynb")):
            return candidate
    raise FileNotFoundError(f"no tutorial notebooks next to {_HERE} (looked in notebooks/ inside the package "
                            "and in the repository); reinstall aimc-lab")


def tutorial_files() -> List[Path]:
    """The shipped files, relative to :func:`source_dir`: the tutorials, the dashboards and their README."""
    root = source_dir()
    files = sorted(root.glob("*.ipynb")) + sorted((root / "dashboards").glob("*.ipynb"))
    readme = root / "dashboards" / "README.md"
    if readme.exists():
        files.append(readme)
    return [path.relative_to(root) for path in files]


def copy_tutorials(dest: Union[str, Path], overwrite: bool = False) -> List[Path]:
    """Copy the tutorials and dashboards into ``dest`` (created if missing); return the copied paths.

    Existing files are kept and reported (FileExistsError) unless ``overwrite`` is true, so a second
    copy never loses a student's edits.
    """
    if not isinstance(dest, (str, Path)):
        raise TypeError(f"dest must be a str or Path; got {type(dest).__name__}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be a bool; got {type(overwrite).__name__}")
    dest = Path(dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(f"dest {str(dest)!r} exists and is not a folder")
    root = source_dir()
    files = tutorial_files()
    clashes = [str(dest / rel) for rel in files if (dest / rel).exists()]
    if clashes and not overwrite:
        raise FileExistsError(f"{len(clashes)} file(s) already exist, e.g. {clashes[0]!r}; "
                              "copy into another folder or overwrite them (aimc-lab tutorials --force)")
    copied = []
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, dest / rel)
        copied.append(dest / rel)
    return copied


def _ipython():
    """The running IPython shell, or None outside one (a plain Python script)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return None
    return get_ipython()


def plotly_js_html() -> str:
    """An HTML snippet holding plotly.js itself (from plotly's Python package, no network), which
    defines ``window.Plotly`` for the HTML of every later figure."""
    from plotly.offline import get_plotlyjs

    # plotly.js registers itself with an AMD loader when one is on the page (define.amd) and then sets
    # no window.Plotly: hide the loader while the bundle runs.
    return ("<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
            "<script>(function () { var define = undefined, module = undefined, exports = undefined;\n"
            + get_plotlyjs() + "\n}).call(window);</script>")


def setup(threads: Optional[int] = None, *, embed_plotly: bool = True) -> str:
    """Prepare a tutorial's kernel; returns a line saying what was set (print it).

    ``threads``: torch's intra-op threads. ``None`` takes ``OMP_NUM_THREADS`` from the environment when
    it is set, else 1: one thread is the fast choice on a laptop or a shared 2-core machine, where idle
    OpenMP threads spin against every other process (a busy 2-core machine ran tutorial 03 in 16 min
    with torch's default threads and in about 1 min with one). Start Jupyter with ``OMP_NUM_THREADS=4``
    (or call ``setup(threads=4)``) on a machine of your own with idle cores.

    ``embed_plotly``: display plotly.js once (about 4.6 MB in a saved notebook), so that the figures of
    :func:`show` still draw in an HTML export (``jupyter nbconvert --to html``) without network. Outside
    IPython nothing is displayed.
    """
    import torch

    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        threads = int(env) if env.isdigit() and int(env) > 0 else 1
        source = "OMP_NUM_THREADS" if env.isdigit() and int(env) > 0 else "default for small machines"
    else:
        if isinstance(threads, bool) or not isinstance(threads, int):
            raise TypeError(f"threads must be an int >= 1 or None; got {type(threads).__name__} {threads!r}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1 (or None for OMP_NUM_THREADS, else 1); got {threads}")
        source = "setup(threads=...)"
    if not isinstance(embed_plotly, bool):
        raise TypeError(f"embed_plotly must be a bool; got {type(embed_plotly).__name__}")
    torch.set_num_threads(threads)
    if embed_plotly and _ipython() is not None:
        from IPython.display import display

        display({"text/html": plotly_js_html(), "text/plain": "(plotly.js, for figures in HTML exports)"},
                raw=True)
    return (f"torch uses {threads} thread{'s' if threads > 1 else ''} ({source}); for more, start Jupyter "
            "with OMP_NUM_THREADS=4 or call setup(threads=4)")


def figure_bundle(figure) -> dict:
    """The outputs of one static figure: plotly's JSON (drawn by JupyterLab's and Voila's plotly
    renderer), HTML calling ``window.Plotly`` (drawn in nbconvert HTML exports, see :func:`setup`) and
    a line of text."""
    import plotly.graph_objects as go
    import plotly.io as pio

    if not isinstance(figure, go.Figure):
        raise TypeError(f"figure must be a plotly.graph_objects.Figure; got {type(figure).__name__}")
    config = {"displaylogo": False}
    spec = json.loads(pio.to_json(figure, validate=False))
    spec["config"] = config
    layout = figure.layout
    height = f"{layout.height}px" if layout.height else "450px"
    width = f"{layout.width}px" if layout.width else "100%"
    html = pio.to_html(figure, include_plotlyjs=False, include_mathjax=False, full_html=False, config=config,
                       default_width=width, default_height=height, validate=False)
    title = layout.title.text if layout.title and layout.title.text else "figure"
    return {"application/vnd.plotly.v1+json": spec, "text/html": html,
            "text/plain": f"<plotly figure: {title}, {len(figure.data)} trace(s)>"}


class LivePlot:
    """A plotly figure shown as a plain output (see the module docstring) that can be redrawn in place.

    ``plot = live(fig)`` draws ``fig`` now; change ``fig`` (``fig.add_scatter(...)``, ``fig.data[0].y =
    ...``) and call ``plot.refresh()`` to redraw the same output. Refreshes closer together than
    ``min_interval`` seconds are skipped unless ``force=True``: call ``plot.refresh(force=True)`` after
    the loop so the last state is what the notebook keeps.
    """

    def __init__(self, figure, min_interval: float = 0.5) -> None:
        import plotly.graph_objects as go

        if not isinstance(figure, go.Figure):
            raise TypeError(f"figure must be a plotly.graph_objects.Figure; got {type(figure).__name__}")
        if isinstance(min_interval, bool) or not isinstance(min_interval, (int, float)) or not min_interval >= 0:
            raise ValueError(f"min_interval must be a number of seconds >= 0; got {min_interval!r}")
        self.figure = figure
        self.min_interval = float(min_interval)
        self._handle = None
        self._last = 0.0
        self.refreshes = 0

    def display(self) -> "LivePlot":
        """Show the figure as a new output (in IPython; a no-op elsewhere) and remember where it is."""
        if _ipython() is not None:
            from IPython.display import display

            self._handle = display(figure_bundle(self.figure), raw=True, display_id=True)
        self._last = time.monotonic()
        return self

    def refresh(self, force: bool = False) -> None:
        """Redraw the output with the figure as it is now (skipped within ``min_interval`` of the last
        draw unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        self.refreshes += 1
        if self._handle is not None:
            self._handle.update(figure_bundle(self.figure), raw=True)

    def __repr__(self) -> str:
        return f"<LivePlot of {figure_bundle(self.figure)['text/plain']}, {self.refreshes} refresh(es)>"


def show(figure) -> None:
    """Draw a plotly figure now, as a plain output (see the module docstring)."""
    LivePlot(figure).display()


def live(figure, min_interval: float = 0.5) -> LivePlot:
    """Draw a plotly figure now and return the :class:`LivePlot` that redraws it as results arrive."""
    return LivePlot(figure, min_interval=min_interval).display()
