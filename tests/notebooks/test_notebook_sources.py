"""The notebooks are their own source: committed clean (no outputs but the nbval-checked ones, no widget
state), and the notebook browser shows only notebooks. scripts/clean_notebooks.py cleans them."""

import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat import v4

from script_module import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "clean_notebooks.py"


def _cleaner():
    return load_script(SCRIPT, "clean_notebooks")


def test_committed_notebooks_are_clean():
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{done.stdout}{done.stderr}"


def test_notebook_folder_holds_only_notebooks():
    extra = [p.relative_to(ROOT).as_posix() for p in (ROOT / "notebooks").rglob("*")
             if p.is_file() and p.suffix != ".ipynb" and not {".ipynb_checkpoints", "__pycache__"} & set(p.parts)]
    assert extra == ["notebooks/dashboards/README.md"]


def test_cleaning_an_executed_notebook_restores_the_committed_file(tmp_path):
    cleaner = _cleaner()
    source = ROOT / "notebooks" / "01_analog_mvm.ipynb"
    nb = nbformat.read(source, as_version=4)
    check_cells = [c for c in nb.cells if cleaner.is_check_cell(c)]
    assert check_cells and all(c.outputs for c in check_cells), "tutorial 01 stores nbval-checked output"
    # What saving after a run in JupyterLab adds:
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"x": "5 MB"}}}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python"}
    for count, cell in enumerate(nb.cells, start=3):
        cell.metadata["execution"] = {"iopub.status.idle": "2026-11-30T05:00:00Z"}
        if cell.cell_type == "code":
            cell.execution_count = count
            if not cleaner.is_check_cell(cell):
                cell.outputs = [v4.new_output("stream", name="stdout", text="noise\n")]
    dirty = tmp_path / "01_analog_mvm.ipynb"
    nbformat.write(nb, dirty)
    assert subprocess.run([sys.executable, str(SCRIPT), "--check", str(dirty)], capture_output=True).returncode == 1
    assert subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True).returncode == 0
    assert dirty.read_text() == source.read_text()


def test_bad_path_is_named(tmp_path):
    (tmp_path / "x.txt").write_text("")
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "x.txt")], capture_output=True, text=True)
    assert done.returncode != 0 and "is neither a folder nor a .ipynb file" in done.stderr
