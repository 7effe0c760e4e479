"""The allocator tuning applied at import (aimc_lab._malloc)."""

import os
import subprocess
import sys

import pytest

from aimc_lab import _malloc


def test_bad_thresholds_are_rejected():
    with pytest.raises(ValueError, match="mmap_threshold"):
        _malloc.tune_malloc(mmap_threshold=-1)
    with pytest.raises(ValueError, match="trim_threshold"):
        _malloc.tune_malloc(trim_threshold=1.5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_applied_on_import_and_opt_out():
    code = "import aimc_lab._malloc as m; print(m.MALLOC_TUNED)"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                        env=dict(os.environ, AIMC_LAB_NO_MALLOC_TUNING="0"))
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, AIMC_LAB_NO_MALLOC_TUNING="1"))
    assert on.stdout.strip() == "True"
    assert off.stdout.strip() == "False"
