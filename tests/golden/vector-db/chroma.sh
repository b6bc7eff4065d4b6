#!/bin/bash
#SBATCH --job-name=aif-svc-golden
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --partition=cpu
#
# Rendered by aifactory: recipe vector-db/chroma (version 1),
# template service, runtime native, service svc-golden.
# Kept beside the job output for debugging; re-render it rather than edit it.

set -euo pipefail

echo "aifactory: job ${SLURM_JOB_ID:-local} of service svc-golden (vector-db/chroma) starting on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"

mkdir -p -- /scratch/aifactory/jobs/svc-golden
cd -- /scratch/aifactory/jobs/svc-golden

# >>> aifactory environment >>>
export AIFACTORY_SERVICE_ID=svc-golden
export AIFACTORY_RECIPE=vector-db/chroma
export AIFACTORY_JOB_NAME=aif-svc-golden
export ANONYMIZED_TELEMETRY=False
# <<< aifactory environment <<<

launcher=(env --)

echo "aifactory: starting chroma replica 0 on port 8000"
exec "${launcher[@]}" chroma run --host 0.0.0.0 --port 8000 --path /scratch/aifactory/jobs/svc-golden/chroma-data
