#!/bin/bash
#SBATCH --job-name=aif-svc-golden
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=02:00:00
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#
# Rendered by aifactory: recipe inference/ollama (version 1),
# template inference, runtime apptainer, service svc-golden.
# Kept beside the job output for debugging; re-render it rather than edit it.

set -euo pipefail

echo "aifactory: job ${SLURM_JOB_ID:-local} of service svc-golden (inference/ollama) starting on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"

mkdir -p -- /scratch/aifactory/jobs/svc-golden
cd -- /scratch/aifactory/jobs/svc-golden

# >>> aifactory environment >>>
export AIFACTORY_SERVICE_ID=svc-golden
export AIFACTORY_RECIPE=inference/ollama
export AIFACTORY_JOB_NAME=aif-svc-golden
export OLLAMA_HOST=0.0.0.0:11434
# <<< aifactory environment <<<

if ! command -v apptainer >/dev/null 2>&1; then
  echo "aifactory: apptainer not found on $(hostname); load its module or install it" >&2
  exit 127
fi
launcher=(apptainer run --nv docker://ollama/ollama:0.3.14)

echo "aifactory: CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset}"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi -L || true
fi

echo "aifactory: starting ollama replica 0 on port 11434"
exec "${launcher[@]}" serve
