#!/bin/bash
#SBATCH --job-name=aif-svc-golden
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=512M
#SBATCH --time=01:00:00
#SBATCH --partition=cpu
#
# Rendered by aifactory: recipe inference/simulator (version 1),
# template inference, runtime native, service svc-golden.
# Kept beside the job output for debugging; re-render it rather than edit it.

set -euo pipefail

echo "aifactory: job ${SLURM_JOB_ID:-local} of service svc-golden (inference/simulator) starting on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"

mkdir -p -- /scratch/aifactory/jobs/svc-golden
cd -- /scratch/aifactory/jobs/svc-golden

# >>> aifactory environment >>>
export AIFACTORY_SERVICE_ID=svc-golden
export AIFACTORY_RECIPE=inference/simulator
export AIFACTORY_JOB_NAME=aif-svc-golden
# <<< aifactory environment <<<

launcher=(env --)

echo "aifactory: starting simulator replica 0 on port 8000"
exec "${launcher[@]}" aifactory simulate --host 0.0.0.0 --port 8000 --model simulated-llm --ttft-ms 50 --itl-ms 10
