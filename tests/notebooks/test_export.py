"""Executed tutorials stay small and their figures show in an HTML export without network.

The mechanism (aimc_lab.tutorials.setup / show / LivePlot) is checked on a small notebook that uses it
the way the tutorials do: executed by nbclient as ``jupyter nbconvert --execute`` does (widget state
stored), exported to HTML, opened in headless Chromium with every request off the machine refused, and
the plots counted. The tutorials themselves are executed at full size for the issue's closing note.
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from aimc_lab import tutorials

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")

CELLS = [
    "from aimc_lab.tutorials import live, setup, show\nimport plotly.graph_objects as go\nprint(setup())",
    # a static figure
    "show(go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name='static'), layout=dict(title='static one')))",
    # a live figure: drawn empty first, then a curve per result, then the final state
    "fig = go.Figure(layout=dict(title='live one', height=300, width=500))\n"
    "plot = live(fig, min_interval=0)\n"
    "for k in range(3):\n"
    "    fig.add_scatter(x=[0, 1], y=[k, k + 1], name=f'curve {k}')\n"
    "    plot.refresh()\n"
    "plot.refresh(force=True)",
    # a widget in the same notebook (its state is stored, as with the tutorials' explorers)
    "import ipywidgets as W\nW.IntSlider(3)",
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    from nbclient import NotebookClient

    folder = tmp_path_factory.mktemp("export")
    nb = v4.new_notebook(cells=[v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env_before = os.environ.get("OMP_NUM_THREADS")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True,
                       resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
    path = folder / "small.ipynb"
    nbformat.write(nb, path)
    return path


def test_setup_sets_threads_and_checks_its_arguments():
    import torch

    before = torch.get_num_threads()
    try:
        assert "2 threads (setup(threads=...))" in tutorials.setup(threads=2, embed_plotly=False)
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="threads must be >= 1"):
            tutorials.setup(threads=0)
        with pytest.raises(TypeError, match="threads must be an int"):
            tutorials.setup(threads=1.5)
    finally:
        torch.set_num_threads(before)


def test_live_plot_throttles_refreshes():
    import plotly.graph_objects as go

    plot = tutorials.live(go.Figure(), min_interval=60)
    plot.refresh()                     # within min_interval of the first draw: skipped
    assert plot.refreshes == 0
    plot.refresh(force=True)
    assert plot.refreshes == 1
    with pytest.raises(TypeError, match="figure must be a plotly"):
        tutorials.show({"data": []})
    with pytest.raises(ValueError, match="min_interval"):
        tutorials.live(go.Figure(), min_interval=-1)


def test_executed_notebook_is_small_and_keeps_the_final_figure(executed):
    nb = nbformat.read(executed, as_version=4)
    size = executed.stat().st_size
    js = len(tutorials.plotly_js_html())
    assert size < js + 500_000, f"executed notebook is {size / 1e6:.1f} MB; plotly.js alone is {js / 1e6:.1f} MB"
    htmls = [o for c in nb.cells for o in c.outputs if "text/html" in o.get("data", {})]
    assert sum("window.Plotly = Plotly" in o.data["text/html"] for o in htmls) == 1, "plotly.js once"
    live = [o for o in nb.cells[2].outputs if o.output_type == "display_data"]
    assert len(live) == 1, "the live figure is one output, redrawn in place"
    spec = live[0].data["application/vnd.plotly.v1+json"]
    assert [t["name"] for t in spec["data"]] == ["curve 0", "curve 1", "curve 2"]
    assert "curve 2" in live[0].data["text/html"]
    assert "widgets" in nb.metadata, "the slider's widget state was stored (the case that blanked exports)"


_BROWSER_SCRIPT = """
import json, sys
from playwright.sync_api import sync_playwright
html, chromium, shot = sys.argv[1], sys.argv[2], sys.argv[3]
errors = []
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, headless=True,
                                args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
    page = browser.new_page()
    page.route(lambda url: not url.startswith(("file://", "data:", "blob:")), lambda route: route.abort())
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(html, wait_until="load")
    page.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length >= 2", timeout=60_000)
    plots = page.evaluate("document.querySelectorAll('.plotly-graph-div').length")
    legends = page.evaluate("Array.from(document.querySelectorAll('.plotly-graph-div .legendtext'), e => e.textContent)")
    if shot:
        page.screenshot(path=shot, full_page=True)
    browser.close()
print(json.dumps({"plots": plots, "legends": legends, "errors": errors}))
"""


def test_html_export_draws_every_static_figure_offline(executed, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    import json
    import subprocess
    import sys

    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(executed))
    html = tmp_path / "small.html"
    html.write_text(body)
    shot = (str(Path(os.environ["AIMC_LAB_ARTIFACTS"]) / "export_small.png")
            if os.environ.get("AIMC_LAB_ARTIFACTS") else "")
    # Its own process: in the full suite pytest-playwright's session already runs a sync Playwright (and
    # so an event loop) in this thread, where a second sync_playwright() refuses to start.
    done = subprocess.run([sys.executable, "-c", _BROWSER_SCRIPT, html.as_uri(), str(CHROMIUM), shot],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    page_plots, legends, errors = result["plots"], result["legends"], result["errors"]
    assert {"curve 0", "curve 1", "curve 2"} <= set(legends)
    assert page_plots == 2, "each figure once (show() and live() return nothing that displays again)"
    assert not [e for e in errors if "Plotly" in e], errors
