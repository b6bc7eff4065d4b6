#!/bin/bash
#SBATCH --job-name=aif-svc-golden
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=64
#SBATCH --mem=400G
#SBATCH --time=04:00:00
#SBATCH --partition=gpu
#SBATCH --gres=gpu:4
#
# Rendered by aifactory: recipe inference/vllm-multinode (version 1),
# template vllm-multinode, runtime apptainer, service svc-golden.
# Kept beside the job output for debugging; re-render it rather than edit it.

set -euo pipefail

echo "aifactory: job ${SLURM_JOB_ID:-local} of service svc-golden (inference/vllm-multinode) starting on $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"

mkdir -p -- /scratch/aifactory/jobs/svc-golden
cd -- /scratch/aifactory/jobs/svc-golden

# >>> aifactory environment >>>
export AIFACTORY_SERVICE_ID=svc-golden
export AIFACTORY_RECIPE=inference/vllm-multinode
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
if [[ -z "${SLURM_JOB_NODELIST:-}" ]]; then
  echo "aifactory: vllm-multinode needs a SLURM allocation (SLURM_JOB_NODELIST is unset)" >&2
  exit 1
fi
mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
if ((${#nodes[@]} < 2)); then
  echo "aifactory: 2 nodes needed, the allocation has ${#nodes[@]}" >&2
  exit 1
fi
head_node=${nodes[0]}
ray_address="${head_node}:6379"
echo "aifactory: ray head on $head_node, workers on ${nodes[*]:1}"
"${launcher[@]}" ray start --head --port=6379 --block &
pids+=("$!")
ray_ready=false
for ((attempt = 0; attempt < 90; attempt++)); do
  if "${launcher[@]}" ray status --address="$ray_address" >/dev/null 2>&1; then
    ray_ready=true
    break
  fi
  sleep 2
done
if [[ $ray_ready != true ]]; then
  echo "aifactory: the ray head did not come up on $ray_address" >&2
  stop_children
  exit 1
fi
srun --nodes=1 --ntasks=1 --ntasks-per-node=1 --cpus-per-task=64 --gres=gpu:4 --exclude="$head_node" "${launcher[@]}" ray start --address="$ray_address" --block &
pids+=("$!")

echo "aifactory: starting vllm-multinode replica 0 on port 8000"
RAY_ADDRESS=$ray_address "${launcher[@]}" vllm serve meta-llama/Llama-3.1-70B-Instruct --host 0.0.0.0 --port 8000 --tensor-parallel-size 4 --pipeline-parallel-size 2 --distributed-executor-backend ray --max-model-len 8192 &
pids+=("$!")

status=0
wait -n || status=$?
echo "aifactory: a child process exited with status $status; stopping the others" >&2
stop_children
exit "$status"
