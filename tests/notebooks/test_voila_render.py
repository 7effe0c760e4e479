"""Every tutorial (notebooks/0*.ipynb) renders as a Voila page, code hidden, without an error output.

One Voila server (directory mode, tracebacks on) serves copies of the tutorials; each page is fetched
over HTTP, which returns once Voila has executed every cell. The page must show the tutorial's title
and its markdown, none of its code, and no error output; a notebook with a failing cell must fail the
same check (so the check can fail).

Time: nbval (tests/notebooks/test_notebooks.py) already runs every cell of every tutorial; executing
them all again in Voila costs minutes on 2 cores. By default each page is therefore the tutorial's
markdown, its first code cell (imports, ``tutorials.setup()``) and its exercise cells (``tNN.hint`` /
``tNN.check``, unanswered): what Voila adds to nbval's run (hidden code, markdown and math, the HTML of
hints and feedback, plotly.js embedded). ``AIMC_LAB_VOILA_FULL=1`` renders the whole tutorials.
"""

import html
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
FULL = os.environ.get("AIMC_LAB_VOILA_FULL", "0") == "1"
ERROR_MARKS = ("Traceback (most recent call last)", "There was an error when executing cell", "ExecutionError")


def _voila_copy(source: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(source, as_version=4)
    if FULL:
        return nb
    code = [c for c in nb.cells if c.cell_type == "code"]
    keep = {id(code[0])} | {id(c) for c in code if ".check(" in c.source or ".hint(" in c.source}
    nb.cells = [c for c in nb.cells if c.cell_type != "code" or id(c) in keep]
    return nb


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def voila_pages(tmp_path_factory):
    """``fetch(name)`` returns the HTML Voila renders for ``name`` in a folder of tutorial copies."""
    folder = tmp_path_factory.mktemp("voila")
    for source in TUTORIALS:
        nbformat.write(_voila_copy(source), folder / source.name)
    broken = v4.new_notebook(cells=[v4.new_markdown_cell("# broken"), v4.new_code_cell("1 / 0")])
    broken.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(broken, folder / "broken.ipynb")
    port = _free_port()
    env = dict(os.environ)
    env.setdefault("AIMC_LAB_FAST", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    log = open(folder / "voila.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
                             "--show_tracebacks=True", str(folder)], cwd=folder, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"voila did not start; see {log.name}")
            time.sleep(0.3)

    def fetch(name: str) -> str:
        url = f"http://127.0.0.1:{port}/voila/render/{name}"
        with urllib.request.urlopen(url, timeout=900) as response:
            return response.read().decode()

    yield fetch
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def test_tutorials_found():
    assert len(TUTORIALS) >= 3


def test_a_failing_cell_is_caught(voila_pages):
    page = voila_pages("broken.ipynb")
    assert "ZeroDivisionError" in page and any(mark in page for mark in ERROR_MARKS)


@pytest.mark.parametrize("notebook", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_renders_in_voila(voila_pages, notebook):
    nb = _voila_copy(notebook)
    page = html.unescape(voila_pages(notebook.name))   # Voila writes "·" as "&#183;"
    errors = [mark for mark in ERROR_MARKS if mark in page]
    assert not errors, f"{notebook.name}: Voila shows an error output ({errors})"
    title = next(c.source for c in nb.cells if c.cell_type == "markdown").splitlines()[0].lstrip("# ").strip()
    assert title in page, f"{notebook.name}: title {title!r} missing"
    first_code = next(c.source for c in nb.cells if c.cell_type == "code")
    line = next(ln for ln in first_code.splitlines() if len(ln.strip()) >= 12 and not ln.lstrip().startswith("#"))
    assert line.strip() not in page, f"{notebook.name}: code is visible ({line!r})"
    if "tutorials.setup(" in first_code:
        assert "window.Plotly = Plotly" in page, "plotly.js embedded by tutorials.setup()"
    n_checks = sum(".check(" in c.source for c in nb.cells if c.cell_type == "code")
    assert page.count("Not yet.") >= n_checks, f"{notebook.name}: an exercise's feedback is missing"
