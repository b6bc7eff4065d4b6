#!/bin/bash
#SBATCH --job-name=aif-svc-golden
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=32
#SBATCH --mem=128G
#SBATCH --time=02:00:00
#SBATCH --partition=gpu
#SBATCH --gres=gpu:4
#
# Rendered by aifactory: recipe inference/vllm-replicas (version 1),
# template vllm-replicas, runtime apptainer, service svc-golden.
# Kept beside the job output for debugging; re-render it rather than edit it.

set -euo pipefail

echo "aifactory: job ${SLURM_JOB_ID:-local} of service svc-golden (inference/vllm-replicas) starting on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"

mkdir -p -- /scratch/aifactory/jobs/svc-golden
cd -- /scratch/aifactory/jobs/svc-golden

# >>> aifactory environment >>>
export AIFACTORY_SERVICE_ID=svc-golden
export AIFACTORY_RECIPE=inference/vllm-replicas
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
default_gpus=0,1,2,3
IFS=, read -r -a gpus <<< "${CUDA_VISIBLE_DEVICES:-$default_gpus}"
if ((${#gpus[@]} < 4)); then
  echo "aifactory: 4 GPUs needed, CUDA_VISIBLE_DEVICES lists ${#gpus[@]}" >&2
  exit 1
fi

echo "aifactory: starting vllm-replicas replica 0 on port 8000"
devices=$(IFS=,; echo "${gpus[*]:0:1}")
echo "aifactory: replica 0 uses GPUs $devices"
CUDA_VISIBLE_DEVICES=$devices "${launcher[@]}" vllm serve facebook/opt-125m --host 0.0.0.0 --port 8000 --tensor-parallel-size 1 --pipeline-parallel-size 1 --max-model-len 2048 --served-model-name opt-125m &
pids+=("$!")

echo "aifactory: starting vllm-replicas replica 1 on port 8001"
devices=$(IFS=,; echo "${gpus[*]:1:1}")
echo "aifactory: replica 1 uses GPUs $devices"
CUDA_VISIBLE_DEVICES=$devices "${launcher[@]}" vllm serve facebook/opt-125m --host 0.0.0.0 --port 8001 --tensor-parallel-size 1 --pipeline-parallel-size 1 --max-model-len 2048 --served-model-name opt-125m &
pids+=("$!")

echo "aifactory: starting vllm-replicas replica 2 on port 8002"
devices=$(IFS=,; echo "${gpus[*]:2:1}")
echo "aifactory: replica 2 uses GPUs $devices"
CUDA_VISIBLE_DEVICES=$devices "${launcher[@]}" vllm serve facebook/opt-125m --host 0.0.0.0 --port 8002 --tensor-parallel-size 1 --pipeline-parallel-size 1 --max-model-len 2048 --served-model-name opt-125m &
pids+=("$!")

echo "aifactory: starting vllm-replicas replica 3 on port 8003"
devices=$(IFS=,; echo "${gpus[*]:3:1}")
echo "aifactory: replica 3 uses GPUs $devices"
CUDA_VISIBLE_DEVICES=$devices "${launcher[@]}" vllm serve facebook/opt-125m --host 0.0.0.0 --port 8003 --tensor-parallel-size 1 --pipeline-parallel-size 1 --max-model-len 2048 --served-model-name opt-125m &
pids+=("$!")

status=0
wait -n || status=$?
echo "aifactory: a child process exited with status $status; stopping the others" >&2
stop_children
exit "$status"
