#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv. Idempotent: a second run installs
# nothing new.
#
#   bash scripts/setup.sh        # notebooks, dashboards and tests (extra "test": adds triton for the
#                                # kernel interpreter tests, nbval, Playwright, ...)
#   bash scripts/setup.sh lab    # notebooks and dashboards only (extra "lab": no triton on a CPU machine)
#
# torch: the CPU build when the machine has no NVIDIA GPU (about 200 MB, from PyTorch's CPU wheel index
# unless pip already resolves a +cpu build, e.g. from a local wheel), the CUDA build from the default
# index when it has one. Override with AIMC_LAB_TORCH=cpu|cuda (see scripts/torch_wheel.py).
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${1:-test}
case "$extra" in
  lab|test) ;;
  *) echo "usage: bash scripts/setup.sh [lab|test]  (got '$extra')" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# "test" includes "lab": a fresh test install also satisfies a later lab setup.
fresh() { [ -f ".venv/.aimc-lab-$1" ] && [ ! pyproject.toml -nt ".venv/.aimc-lab-$1" ]; }
if fresh "$extra" || { [ "$extra" = lab ] && fresh test; }; then
  exit 0
fi
.venv/bin/python -m pip install --quiet --upgrade pip
kind=$(.venv/bin/python scripts/torch_wheel.py --kind)
torch_args=()
while IFS= read -r arg; do torch_args+=("$arg"); done < <(.venv/bin/python scripts/torch_wheel.py --explain)
[ "${#torch_args[@]}" -gt 0 ]  # the script failed (its message is above)
# torch first, pinned exactly: an open range would resolve to the newest (CUDA) build.
.venv/bin/python -m pip install --quiet "${torch_args[@]}"
extras=$extra
if [ "$kind" = cuda ]; then
  extras="$extras,gpu"
fi
.venv/bin/python -m pip install --quiet -e ".[$extras]"
touch ".venv/.aimc-lab-$extra"
