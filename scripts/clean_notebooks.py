"""Keep committed notebooks small and reviewable: strip outputs, execution counts and widget state.

The notebooks under notebooks/ are the source: edit them in JupyterLab, then before committing run

    .venv/bin/python scripts/clean_notebooks.py            # clean every notebook under notebooks/
    .venv/bin/python scripts/clean_notebooks.py --check    # list unclean notebooks, exit 1 (CI does this)
    .venv/bin/python scripts/clean_notebooks.py PATH ...   # only these notebooks or folders

What is kept: the stored output of cells whose first line is ``# NBVAL_CHECK_OUTPUT`` (nbval compares
it in tests/notebooks; its execution count becomes 1, as nbval skips cells without one) and the
kernelspec. What goes: every other output and execution count, widget state (``metadata.widgets``:
plotly's 5 MB bundle), per-cell run metadata (timings, collapsed/scrolled), and language_info beyond
its name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, List, Optional

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
VOLATILE_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime", "jupyter")


def is_check_cell(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(CHECK_MARK)


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` without outputs (except in check cells), execution counts and volatile metadata; in place."""
    for key in list(nb.metadata):
        if key not in ("kernelspec", "language_info"):
            del nb.metadata[key]
    if "language_info" in nb.metadata:
        nb.metadata["language_info"] = {"name": nb.metadata["language_info"].get("name", "python")}
    for cell in nb.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        if is_check_cell(cell) and cell.outputs:
            cell.execution_count = 1
            for output in cell.outputs:
                if "execution_count" in output:
                    output["execution_count"] = 1
        else:
            cell.outputs = []
            cell.execution_count = None
    return nb


def notebooks(paths: Iterable[Path]) -> List[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.suffix == ".ipynb":
            found.append(path)
        else:
            raise ValueError(f"paths: {str(path)!r} is neither a folder nor a .ipynb file")
    return found


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"  # what nbformat.write puts on disk


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="strip outputs and widget state from notebooks")
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "notebooks"],
                        help="notebooks or folders (default: the repository's notebooks/)")
    parser.add_argument("--check", action="store_true", help="change nothing; list unclean notebooks, exit 1")
    args = parser.parse_args(argv)
    try:
        paths = notebooks(args.paths)
    except ValueError as err:
        parser.error(str(err))
    unclean = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        cleaned = render(clean(nbformat.reads(text, as_version=4)))
        if cleaned != text:
            unclean.append(path)
            if not args.check:
                path.write_text(cleaned, encoding="utf-8")
    for path in unclean:
        print(f"{'unclean' if args.check else 'cleaned'}: {path}")
    if args.check and unclean:
        print("run: .venv/bin/python scripts/clean_notebooks.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
