"""The wheel: kernels and widgets under aimc_lab.*, the tutorials and dashboards inside, triton only in
the extras that need it; installed outside the repository, it copies a tutorial out and runs it."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ["01_analog_mvm.ipynb", "02_pcm_drift_inference.ipynb", "03_inmemory_training.ipynb",
             "04_hwa_training.ipynb", "05_customization.ipynb"]


def test_kernels_and_widgets_map_into_the_package():
    import aimc_lab.kernels
    import aimc_lab.widgets

    assert Path(aimc_lab.kernels.__file__).parent == ROOT / "kernels"
    assert Path(aimc_lab.widgets.__file__).parent == ROOT / "widgets"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    pytest.importorskip("setuptools")
    # Built from a copy of the sources: setuptools reuses build/ in the tree, where files deleted from the
    # sources linger and would land in the wheel.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("aimc_lab", "kernels", "widgets", "notebooks"):
        shutil.copytree(ROOT / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return next(out.glob("aimc_lab-*.whl"))


@pytest.mark.slow
def test_wheel_contains_every_subpackage_and_the_notebooks(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("aimc_lab/__init__.py", "aimc_lab/__main__.py", "aimc_lab/cli.py", "aimc_lab/tutorials.py",
                     "aimc_lab/tile.py", "aimc_lab/kernels/__init__.py", "aimc_lab/kernels/backend.py",
                     "aimc_lab/kernels/analog_mvm/reference.py", "aimc_lab/kernels/analog_mvm/triton_impl.py",
                     "aimc_lab/widgets/__init__.py", "aimc_lab/widgets/digit_models.pt",
                     "aimc_lab/widgets/design_sweep.pt", "aimc_lab/cost/__init__.py",
                     "aimc_lab/exercises/t05.py", "aimc_lab/train/inmemory/__init__.py",
                     "aimc_lab/distributed.py", "aimc_lab/validation.py",
                     "aimc_lab/notebooks/dashboards/design_lab.ipynb",
                     "aimc_lab/notebooks/dashboards/README.md",
                     "aimc_lab/notebooks/dashboards/tile_lab.ipynb", "aimc_lab/notebooks/dashboards/drift_lab.ipynb",
                     *(f"aimc_lab/notebooks/{name}" for name in TUTORIALS)):
        assert required in names, f"{required} missing from {wheel.name}"
    assert not any(n.startswith(("kernels/", "widgets/", "tests/", "notebooks/")) for n in names)
    assert not any(n.startswith("aimc_lab/notebooks/") and n.endswith(".py") for n in names)


@pytest.mark.slow
def test_triton_is_only_in_the_gpu_and_test_extras(wheel):
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line[len("Requires-Dist: "):] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    triton = [r for r in requires if r.startswith("triton")]
    assert triton and all('extra == "gpu"' in r for r in triton), triton
    assert any(r.startswith("aimc-lab[") and "gpu" in r and 'extra == "test"' in r for r in requires), requires
    core = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("torch") for r in core) and not any(r.startswith("triton") for r in core)


@pytest.mark.slow
def test_installed_wheel_copies_and_runs_a_tutorial_outside_the_repository(wheel, tmp_path):
    """A fresh venv with only the wheel installed (--no-deps); its dependencies come from this
    environment through a .pth file (offline and fast). Outside the repository: `aimc-lab tutorials`,
    then tutorial 01 runs top to bottom under nbclient in fast mode."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "_aimc_lab_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                           str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    work = tmp_path / "student"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", AIMC_LAB_FAST="1", HOME=str(tmp_path),
               PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    where = subprocess.run([str(python), "-c", "import aimc_lab, aimc_lab.cli as c; print(aimc_lab.__file__); "
                            "print(c._dashboard('tile_lab'))"], cwd=work, env=env, capture_output=True, text=True,
                           timeout=300)
    assert where.returncode == 0, where.stderr[-3000:]
    package_file, dashboard = where.stdout.split()
    assert Path(package_file).is_relative_to(venv), f"aimc_lab imported from {package_file}, not the wheel"
    assert Path(dashboard).is_relative_to(venv)
    done = subprocess.run([str(venv / "bin" / "aimc-lab"), "tutorials", "course"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    course = work / "course"
    assert sorted(p.name for p in course.glob("*.ipynb")) == TUTORIALS
    assert sorted(p.name for p in (course / "dashboards").iterdir()) == ["README.md", "design_lab.ipynb",
                                                                          "drift_lab.ipynb", "tile_lab.ipynb"]
    run = ("import nbformat, nbclient\n"
           "nb = nbformat.read('course/01_analog_mvm.ipynb', as_version=4)\n"
           "nbclient.NotebookClient(nb, timeout=900, kernel_name='python3',\n"
           "                        resources={'metadata': {'path': 'course'}}).execute()\n"
           "import aimc_lab; print('RAN WITH', aimc_lab.__file__)\n"
           "outs = [o.get('text', '') for c in nb.cells if c.cell_type == 'code' for o in c.outputs]\n"
           "print('BACKEND' if any('backend' in t for t in outs) else 'NO OUTPUT')\n")
    done = subprocess.run([str(python), "-c", run], cwd=work, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    assert "BACKEND" in done.stdout and re.search(r"RAN WITH .*venv", done.stdout)


def test_library_works_without_triton():
    """A CPU/Binder install has no triton: the library imports and runs the torch reference."""
    code = ("import sys; sys.modules['triton'] = None\n"
            "import torch, aimc_lab as al\n"
            "from aimc_lab.kernels import backend\n"
            "model = al.convert_to_analog(torch.nn.Linear(8, 4), al.presets.standard_hwa())\n"
            "al.program(model); al.drift(model, 3600.0)\n"
            "print(backend.triton_available(), backend.active(), tuple(model(torch.randn(2, 8)).shape))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False", "torch", "(2,", "4)"]
