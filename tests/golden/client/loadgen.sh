#!/bin/bash
#SBATCH --job-name=aif-svc-golden
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=1G
#SBATCH --time=01:00:00
#SBATCH --partition=cpu
#
# Rendered by aifactory: recipe client/loadgen (version 1),
# template loadgen, runtime native, service svc-golden.
# Kept beside the job output for debugging; re-render it rather than edit it.

set -euo pipefail

echo "aifactory: job ${SLURM_JOB_ID:-local} of service svc-golden (client/loadgen) starting on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"

mkdir -p -- /scratch/aifactory/jobs/svc-golden
cd -- /scratch/aifactory/jobs/svc-golden

# >>> aifactory environment >>>
export AIFACTORY_SERVICE_ID=svc-golden
export AIFACTORY_RECIPE=client/loadgen
export AIFACTORY_JOB_NAME=aif-svc-golden
# <<< aifactory environment <<<

launcher=(env --)

pids=()
# shellcheck disable=SC2317  # also called by the trap
stop_children() {
  trap - TERM INT
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
  fi
  wait || true
}
# shellcheck disable=SC2317  # called by the trap below
on_signal() {
  echo "aifactory: stop signal received; stopping child processes" >&2
  stop_children
  exit 143
}
trap on_signal TERM INT
if [[ -z "${AIFACTORY_BENCHMARK_ID:-}" ]]; then
  echo "aifactory: AIFACTORY_BENCHMARK_ID is not set: no benchmark to work for" >&2
  exit 2
fi
if [[ -n "${AIFACTORY_NATS_SECRETS_FILE:-}" ]]; then
  # The bus credentials the coordinator left for the workers: gone when the job ends.
  trap 'rm -f -- "$AIFACTORY_NATS_SECRETS_FILE"' EXIT
fi
worker=(aifactory bench worker --benchmark-id "$AIFACTORY_BENCHMARK_ID")
launch=${AIFACTORY_WORKER_LAUNCH:-auto}
if [[ $launch == auto ]]; then
  launch=local
  if [[ -n "${SLURM_JOB_ID:-}" && "${SLURM_CLUSTER_NAME:-}" != local ]] && command -v srun >/dev/null 2>&1; then
    launch=srun
  fi
fi
if [[ $launch == srun ]]; then
  echo "aifactory: srun: ${SLURM_JOB_NUM_NODES:-1} node(s) x 1 workers"
  srun --kill-on-bad-exit=1 "${launcher[@]}" "${worker[@]}" &
  pids+=("$!")
else
  total=1
  echo "aifactory: starting $total worker processes on $(hostname)"
  for ((i = 0; i < total; i++)); do
    AIFACTORY_WORKER_ID=$i "${launcher[@]}" "${worker[@]}" &
    pids+=("$!")
  done
fi

remaining=${#pids[@]}
while ((remaining > 0)); do
  status=0
  wait -n || status=$?
  remaining=$((remaining - 1))
  if ((status != 0)); then
    echo "aifactory: a worker exited with status $status; stopping the others" >&2
    stop_children
    exit "$status"
  fi
done
echo "aifactory: all workers done"
