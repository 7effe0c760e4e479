"""Write the tutorial and dashboard notebooks (run: ``.venv/bin/python notebooks/build_notebooks.py``).

The notebooks are generated so that they are committed without outputs and stay reviewable as
Python. The only stored outputs are those of cells marked ``# NBVAL_CHECK_OUTPUT``: short,
size-independent lines that nbval compares (``tests/notebooks``). Edit the cell lists in
``notebooks/_cells_*.py`` and rerun this script.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
from nbformat import v4

HERE = Path(__file__).resolve().parent
KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(cells) -> nbformat.NotebookNode:
    """``cells``: ("md", text) | ("code", source) | ("check", source, expected stdout)."""
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(cells):
        kind, source = cell[0], cell[1].strip("\n")
        if kind == "md":
            new = v4.new_markdown_cell(source)
        elif kind == "code":
            new = v4.new_code_cell(source)
        elif kind == "check":
            new = v4.new_code_cell("# NBVAL_CHECK_OUTPUT\n" + source)
            new.outputs = [v4.new_output("stream", name="stdout", text=cell[2].lstrip("\n"))]
            new.execution_count = 1  # nbval treats a cell without a count as never run
        else:
            raise ValueError(f"unknown cell kind {kind!r}")
        new["id"] = f"cell-{i:02d}"
        nb.cells.append(new)
    return nb


def main() -> None:
    for module, path in (("_cells_01", "01_analog_mvm.ipynb"), ("_cells_02", "02_pcm_drift_inference.ipynb"),
                         ("_cells_03", "03_inmemory_training.ipynb"),
                         ("_cells_dashboards", None)):
        if not (HERE / f"{module}.py").exists():
            continue
        cells = _load(module)
        if path is not None:
            nbformat.write(build(cells.CELLS), HERE / path)
        else:
            for name, dash_cells in cells.DASHBOARDS.items():
                nbformat.write(build(dash_cells), HERE / "dashboards" / name)


if __name__ == "__main__":
    main()
