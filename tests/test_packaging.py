"""The wheel contains the kernels and widgets under aimc_lab.*, and the layout imports correctly."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_kernels_and_widgets_map_into_the_package():
    import aimc_lab.kernels
    import aimc_lab.widgets

    assert Path(aimc_lab.kernels.__file__).parent == ROOT / "kernels"
    assert Path(aimc_lab.widgets.__file__).parent == ROOT / "widgets"


@pytest.mark.slow
def test_wheel_contains_every_subpackage(tmp_path):
    pytest.importorskip("setuptools")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, text=True)
    wheel = next(tmp_path.glob("aimc_lab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("aimc_lab/__init__.py", "aimc_lab/tile.py", "aimc_lab/kernels/__init__.py",
                     "aimc_lab/kernels/backend.py", "aimc_lab/kernels/analog_mvm/reference.py",
                     "aimc_lab/kernels/analog_mvm/triton_impl.py", "aimc_lab/widgets/__init__.py"):
        assert required in names, f"{required} missing from {wheel.name}"
    assert not any(n.startswith(("kernels/", "widgets/", "tests/")) for n in names)
