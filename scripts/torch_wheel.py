"""Which torch build ``scripts/setup.sh`` installs: prints the ``pip install`` arguments, one per line.

    python scripts/torch_wheel.py            # the arguments, e.g. torch==2.13.0 / --extra-index-url / URL
    python scripts/torch_wheel.py --kind     # only the decision: cpu or cuda
    python scripts/torch_wheel.py --explain  # the arguments, and why (on stderr)

``AIMC_LAB_TORCH`` chooses the build: ``auto`` (default), ``cpu`` or ``cuda``. ``auto`` means ``cuda`` when
the machine has an NVIDIA driver (``nvidia-smi`` on PATH or ``/proc/driver/nvidia``), ``cpu`` otherwise.

- ``cuda``: ``torch==2.13.0`` from the default index. PyPI's Linux wheel is the CUDA build (it pulls
  the nvidia-* / cuda runtime packages and triton: several GB).
- ``cpu`` on Linux: PyTorch's CPU wheel index (about 200 MB instead of several GB), added as an extra
  index so that every other package still comes from the default one; ``2.13.0+cpu`` sorts above
  ``2.13.0``, so pip takes the CPU build. When pip's own configuration already resolves a ``+cpu``
  build (a wheel on local disk via ``find-links``, a mirror), that resolution is kept and the CPU
  index is never contacted: setup works offline from it.
- ``cpu`` on macOS and Windows: the default index (PyPI's wheels there are CPU builds).

Standard library only: it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from typing import Callable, List, Mapping, Optional

TORCH_VERSION = "2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CHOICES = ("auto", "cpu", "cuda")

__all__ = ["TORCH_VERSION", "CPU_INDEX", "requested", "has_nvidia_gpu", "decide", "default_resolution",
           "pip_args", "main"]


def requested(environ: Mapping[str, str]) -> str:
    """The value of ``AIMC_LAB_TORCH`` (``auto`` when unset or empty), validated."""
    value = environ.get("AIMC_LAB_TORCH", "").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"AIMC_LAB_TORCH must be one of {', '.join(CHOICES)}; got {environ['AIMC_LAB_TORCH']!r}")
    return value


def has_nvidia_gpu(which: Callable[[str], Optional[str]] = shutil.which,
                   exists: Callable[[str], bool] = os.path.exists) -> bool:
    """True when an NVIDIA driver is present: ``nvidia-smi`` on PATH or ``/proc/driver/nvidia``."""
    return which("nvidia-smi") is not None or exists("/proc/driver/nvidia")


def decide(environ: Mapping[str, str], gpu: Callable[[], bool] = has_nvidia_gpu) -> str:
    """``"cpu"`` or ``"cuda"``: ``AIMC_LAB_TORCH`` when it names one, else whether there is a GPU."""
    value = requested(environ)
    if value != "auto":
        return value
    return "cuda" if gpu() else "cpu"


def default_resolution(python: str = sys.executable, timeout: float = 300.0) -> Optional[str]:
    """The torch version pip's own configuration resolves for ``torch==TORCH_VERSION`` (a dry run that
    downloads metadata at most), e.g. ``"2.13.0+cpu"``; None when pip cannot resolve it."""
    cmd = [python, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps", "--ignore-installed",
           "--report", "-", f"torch=={TORCH_VERSION}"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        report = json.loads(done.stdout)
        versions = [item["metadata"]["version"] for item in report["install"]
                    if item["metadata"]["name"].lower() == "torch"]
    except (ValueError, KeyError, TypeError):
        return None
    return versions[0] if versions else None


def pip_args(kind: str, system: str, resolved: Callable[[], Optional[str]]) -> List[str]:
    """The arguments after ``pip install`` for build ``kind`` on ``system`` (``platform.system()``).
    ``resolved`` is only called for a CPU build on Linux (see :func:`default_resolution`)."""
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"kind must be 'cpu' or 'cuda'; got {kind!r}")
    pin = [f"torch=={TORCH_VERSION}"]
    if kind == "cuda" or system != "Linux":
        return pin
    version = resolved()
    if version is not None and version.endswith("+cpu"):
        return pin
    return pin + ["--extra-index-url", CPU_INDEX]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="print the pip arguments that install the right torch build")
    parser.add_argument("--kind", action="store_true", help="print only the decision: cpu or cuda")
    parser.add_argument("--explain", action="store_true", help="also say why, on stderr")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter whose pip configuration is probed (default: this one)")
    args = parser.parse_args(argv)
    try:
        kind = decide(os.environ)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.kind:
        print(kind)
        return 0
    probed: List[Optional[str]] = []

    def resolved() -> Optional[str]:
        probed.append(default_resolution(args.python))
        return probed[-1]

    result = pip_args(kind, platform.system(), resolved)
    if args.explain:
        why = (f"AIMC_LAB_TORCH={os.environ['AIMC_LAB_TORCH']}" if os.environ.get("AIMC_LAB_TORCH")
               else ("an NVIDIA driver was found" if kind == "cuda" else "no NVIDIA driver was found"))
        print(f"torch build: {kind} ({why})", file=sys.stderr)
        if probed:
            print(f"pip's own configuration resolves torch {probed[0] or '(nothing)'}; "
                  + ("keeping it" if len(result) == 1 else f"adding {CPU_INDEX}"), file=sys.stderr)
    print("\n".join(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
