#!/bin/bash
#SBATCH --job-name=aif-svc-golden
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --partition=cpu
#
# Rendered by aifactory: recipe vector-db/qdrant (version 1),
# template service, runtime apptainer, service svc-golden.
# Kept beside the job output for debugging; re-render it rather than edit it.

set -euo pipefail

echo "aifactory: job ${SLURM_JOB_ID:-local} of service svc-golden (vector-db/qdrant) starting on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"

mkdir -p -- /scratch/aifactory/jobs/svc-golden
cd -- /scratch/aifactory/jobs/svc-golden

# >>> aifactory environment >>>
export AIFACTORY_SERVICE_ID=svc-golden
export AIFACTORY_RECIPE=vector-db/qdrant
export AIFACTORY_JOB_NAME=aif-svc-golden
export QDRANT__SERVICE__HTTP_PORT=6333
export QDRANT__SERVICE__GRPC_PORT=6334
export QDRANT__TELEMETRY_DISABLED=true
# <<< aifactory environment <<<

if ! command -v apptainer >/dev/null 2>&1; then
  echo "aifactory: apptainer not found on $(hostname); load its module or install it" >&2
  exit 127
fi
mkdir -p -- /scratch/aifactory/jobs/svc-golden/qdrant/storage
mkdir -p -- /scratch/aifactory/jobs/svc-golden/qdrant/snapshots
launcher=(apptainer exec --bind /scratch/aifactory/jobs/svc-golden/qdrant/storage:/qdrant/storage --bind /scratch/aifactory/jobs/svc-golden/qdrant/snapshots:/qdrant/snapshots --pwd /qdrant --writable-tmpfs docker://qdrant/qdrant:v1.12.4)

echo "aifactory: starting qdrant replica 0 on port 6333"
exec "${launcher[@]}" /qdrant/qdrant
