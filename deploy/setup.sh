#!/usr/bin/env bash
# Shared set-up for deploy/test.sh and deploy/quickstart.sh: system packages (as root, with
# apt), the virtual environment in .venv and the project installed into it. Idempotent.
#   AIFACTORY_SETUP_SYSTEM=0  skip the apt step
#   AIFACTORY_SETUP_EXTRAS    pip extras to install (default: dev,chroma: the tests and
#                             examples/vector-db.yaml run a real Chroma server)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

system_packages() {
  # command:package pairs the integration tests and benchmarks need.
  local wanted=(
    sbatch:slurm-wlm slurmctld:slurmctld munged:munge shellcheck:shellcheck
    promtool:prometheus prometheus-node-exporter:prometheus-node-exporter
    sshd:openssh-server wrk:wrk taskset:util-linux
    chromium:chromium
  )
  local missing=() pair
  for pair in "${wanted[@]}"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair#*:}")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: missing system packages (${missing[*]}); install them as root with apt" >&2
    return 0
  fi
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if [ "${AIFACTORY_SETUP_SYSTEM:-1}" = 1 ]; then
  system_packages
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.aifactory-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log=.venv/pip-install.log
  echo "setup: installing aifactory and its dependencies into .venv (log: $log)" >&2
  if ! { .venv/bin/python -m pip install --upgrade pip \
         && .venv/bin/python -m pip install -e ".[${AIFACTORY_SETUP_EXTRAS:-dev,chroma}]"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "setup: pip install failed; full log in $log" >&2
    exit 1
  fi
  touch "$stamp"
fi
