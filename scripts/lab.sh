#!/usr/bin/env bash
# Set up the environment (extra "lab") and open JupyterLab on the tutorial notebooks.
# Extra arguments go to JupyterLab, e.g. bash scripts/lab.sh --port 8890 --no-browser
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh lab
# One torch thread per kernel unless told otherwise: on a small shared machine idle OpenMP threads
# spin and slow every other kernel down (OMP_NUM_THREADS=4 bash scripts/lab.sh to change it).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
root_args=()
if [ "$(id -u)" = 0 ]; then
  # Containers, CI and Binder-like images run as root; JupyterLab refuses to start there without it.
  root_args=(--allow-root)
fi
exec .venv/bin/jupyter lab --notebook-dir=notebooks ${root_args[@]+"${root_args[@]}"} "$@"
