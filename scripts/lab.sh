#!/usr/bin/env bash
# Set up the environment and open JupyterLab on the tutorial notebooks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/jupyter lab --notebook-dir=notebooks "$@"
