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
# Rendered by aifactory: recipe inference/vllm-single-node (version 1),
# template vllm, runtime apptainer, service svc-golden.
# Kept beside the job output for debugging; re-render it rather than edit it.

set -euo pipefail

echo "aifactory: job ${SLURM_JOB_ID:-local} of service svc-golden (inference/vllm-single-node) starting on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"

mkdir -p -- /scratch/aifactory/jobs/svc-golden
cd -- /scratch/aifactory/jobs/svc-golden

# >>> aifactory environment >>>
export AIFACTORY_SERVICE_ID=svc-golden
export AIFACTORY_RECIPE=inference/vllm-single-node
export AIFACTORY_JOB_NAME=aif-svc-golden
export VLLM_NO_USAGE_STATS=1
export DO_NOT_TRACK=1
# <<< aifactory environment <<<

# Secrets are never written into this script. They are inherited from the environment
# sbatch was called in (SLURM exports it by default) and apptainer passes the environment
# into the container.
secrets=(HF_TOKEN)
for secret in "${secrets[@]}"; do
  if [[ -z "${!secret:-}" ]]; then
    echo "aifactory: warning: secret $secret is not set in the submit environment" >&2
  fi
done

if ! command -v apptainer >/dev/null 2>&1; then
  echo "aifactory: apptainer not found on $(hostname); load its module or install it" >&2
  exit 127
fi
launcher=(apptainer exec --nv docker://vllm/vllm-openai:v0.6.3)

echo "aifactory: CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset}"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi -L || true
fi

echo "aifactory: starting vllm-single-node replica 0 on port 8000"
exec "${launcher[@]}" vllm serve facebook/opt-125m --host 0.0.0.0 --port 8000 --tensor-parallel-size 1 --pipeline-parallel-size 1 --max-model-len 2048 --served-model-name opt-125m
