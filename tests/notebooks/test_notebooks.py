"""Every notebook under notebooks/ runs top to bottom under nbval.

nbval needs the notebook paths on its own command line, so each notebook runs in a child pytest:
``--nbval-lax`` (only cells marked ``# NBVAL_CHECK_OUTPUT`` are compared with their stored output),
``--nbval-current-env`` (the kernel runs in this interpreter's environment) and a sanitize file for
plotly uids, widget ids, memory addresses and timings. ``AIMC_LAB_FAST`` defaults to "1" here (the
notebooks shrink their sizes, same code path); set it to "0" to run the full versions.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
SANITIZE = Path(__file__).with_name("sanitize.cfg")


def test_notebooks_found():
    names = {p.name for p in NOTEBOOKS}
    assert {"01_analog_mvm.ipynb", "02_pcm_drift_inference.ipynb", "03_inmemory_training.ipynb",
            "04_hwa_training.ipynb", "05_customization.ipynb"} <= names


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[str(p.relative_to(ROOT / "notebooks")) for p in NOTEBOOKS])
def test_notebook_runs_under_nbval(notebook, tmp_path):
    env = dict(os.environ)
    env.setdefault("AIMC_LAB_FAST", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
           f"--nbval-sanitize-with={SANITIZE}", "--nbval-cell-timeout=600", f"--rootdir={tmp_path}",
           "-o", "addopts=", "-o", "testpaths=", str(notebook)]
    result = subprocess.run(cmd, cwd=notebook.parent, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"nbval failed for {notebook.name}:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
