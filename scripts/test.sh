#!/usr/bin/env bash
# Set up the environment, lint, and run every test: library, kernels (Triton interpreter), notebooks
# (nbval) and the Voila dashboards in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
# Browser tests use Debian's Chromium (never a downloaded browser).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; browser tests will be skipped"
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export AIMC_LAB_FAST=${AIMC_LAB_FAST:-1}
# Lint first (seconds): the small rule set in pyproject.toml (unused imports, undefined names, ...).
.venv/bin/python -m ruff check .
exec .venv/bin/python -m pytest "$@"
