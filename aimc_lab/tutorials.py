"""The tutorial notebooks and dashboards that ship with aimc-lab, and copying them to a folder.

A wheel carries them under ``aimc_lab/notebooks/``; a checkout (or an editable install) has them in
the repository's ``notebooks/``. ``aimc-lab tutorials DIR`` (or :func:`copy_tutorials`) copies them to
a folder of your own, where you can run and change them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import List, Union

__all__ = ["source_dir", "tutorial_files", "copy_tutorials"]

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
