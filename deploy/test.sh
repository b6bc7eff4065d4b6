#!/usr/bin/env bash
# The whole test suite, with its own set-up: system packages, venv, the local single-node
# SLURM cluster, then lint (ruff), types (mypy) and pytest. Set
# AIFACTORY_REQUIRE_INTEGRATION=1 (CI does) to turn any missing real part into a failure.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash deploy/setup.sh
if [ "$(id -u)" = 0 ] && command -v slurmctld >/dev/null 2>&1; then
  bash deploy/local-slurm/up.sh
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
