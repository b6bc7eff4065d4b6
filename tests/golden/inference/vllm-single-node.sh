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

# >>> aifactory ports >>>
aif_claims="${TMPDIR:-/tmp}/aifactory-ports-$(id -u)"
[[ -d $aif_claims ]] || mkdir -m 700 -- "$aif_claims"
if [[ -L $aif_claims || ! -O $aif_claims ]]; then
  echo "aifactory: $aif_claims is not a folder of yours; remove it" >&2
  exit 1
fi
# Is something listening on TCP port $1 of this node (any address)?
aif_port_busy() {
  if command -v ss >/dev/null 2>&1; then
    [[ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]]
  else
    (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}
# Claim, for this job, the first free port from $1 up (at most 1000 tried); print it.
aif_claim_port() {
  local port=$1 last=$(($1 + 999)) owner lock
  exec {lock}>"$aif_claims/.lock"
  flock "$lock"
  while ((port <= last && port <= 65535)); do
    owner=$(cat -- "$aif_claims/$port" 2>/dev/null || true)
    if [[ -n $owner && -d /proc/$owner ]] || aif_port_busy "$port"; then
      port=$((port + 1))
      continue
    fi
    echo "$$" >"$aif_claims/$port"
    flock -u "$lock"
    echo "$port"
    return 0
  done
  flock -u "$lock"
  echo "aifactory: no free port in $1..$last on $(hostname)" >&2
  return 1
}
# Which node of the job this is: 0 runs the batch script; others run it through srun.
aif_node=${AIFACTORY_NODE:-0}
if [[ ! $aif_node =~ ^[0-9]+$ ]]; then
  echo "aifactory: AIFACTORY_NODE must be a node index, got $aif_node" >&2
  exit 2
fi
aif_replica_port=()
aif_replica_port[0]=$(aif_claim_port 8000)
aif_port_http=${aif_replica_port[0]}
echo "aifactory: ports on $(hostname): http=${aif_port_http}"
# <<< aifactory ports <<<

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
launcher=(apptainer exec --nv docker://vllm/vllm-openai:v0.33.0)

echo "aifactory: CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset}"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi -L || true
fi

# >>> aifactory exporters >>>
aif_port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
# Run "$@" <flag>=:<port> on a free port: sets aif_pid and aif_port, or returns 1.
aif_start() {
  local flag=$1 log=$2 port attempt tries
  shift 2
  for ((attempt = 0; attempt < 8; attempt++)); do
    port=$((20000 + RANDOM % 12000))
    if aif_port_open "$port"; then
      continue
    fi
    "$@" "$flag=:$port" >>"$log" 2>&1 &
    aif_pid=$!
    for ((tries = 0; tries < 100; tries++)); do
      if ! kill -0 "$aif_pid" 2>/dev/null; then
        break
      fi
      if aif_port_open "$port"; then
        aif_port=$port
        return 0
      fi
      sleep 0.1
    done
    kill "$aif_pid" 2>/dev/null || true
  done
  return 1
}
# One node's exporters; $1: a process whose end stops them (0: the job's signal does).
aif_exporters() {
  set +eu
  local watch=$1 index=${SLURM_NODEID:-0} host node=null gpu=null pids=() cmd=()
  [[ $index =~ ^[0-9]+$ ]] || index=0
  host=$(hostname -s 2>/dev/null || hostname)
  [[ $host =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || host=localhost
  local file="exporters-$index.json" log="exporters-$index.log"
  # Off the job's output: a background process holding it would keep whoever reads it
  # (the scheduler, a test) waiting for the end of the stream.
  exec >>"$log" 2>&1 </dev/null
  cmd=("$(command -v prometheus-node-exporter || command -v node_exporter)")
  if [[ -n ${cmd[0]} ]] && aif_start --web.listen-address "$log" "${cmd[@]}"; then
    node=$aif_port
    pids+=("$aif_pid")
  else
    echo "aifactory: no node exporter on $host (install prometheus-node-exporter)"
  fi
  cmd=()
  if command -v dcgm-exporter >/dev/null 2>&1; then
    cmd=(dcgm-exporter)
  elif command -v apptainer >/dev/null 2>&1; then
    cmd=(apptainer exec --nv docker://nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless dcgm-exporter)
  fi
  if ((${#cmd[@]})) && aif_start --address "$log" "${cmd[@]}"; then
    gpu=$aif_port
    pids+=("$aif_pid")
  else
    echo "aifactory: no dcgm-exporter on $host"
  fi
  printf '{"node_index": %s, "host": "%s", "node_exporter_port": %s, "dcgm_exporter_port": %s}\n' \
    "$index" "$host" "$node" "$gpu" >"$file.tmp" && mv -f -- "$file.tmp" "$file"
  echo "aifactory: exporters on $host: node ${node/null/none}, gpu ${gpu/null/none}"
  trap 'kill "${pids[@]}" 2>/dev/null; exit 0' TERM INT
  while ((watch == 0)) || kill -0 "$watch" 2>/dev/null; do
    sleep 1
  done
  kill "${pids[@]}" 2>/dev/null
}
echo "aifactory: starting metrics exporters (ports: exporters-<node>.json, output: exporters-<node>.log)"
if [[ ${SLURM_JOB_NUM_NODES:-1} -gt 1 && ${SLURM_CLUSTER_NAME:-} != local ]] && command -v srun >/dev/null 2>&1; then
  srun --overlap --nodes="$SLURM_JOB_NUM_NODES" --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 \
    bash -c "$(declare -f aif_port_open aif_start aif_exporters); aif_exporters 0" \
    >>exporters-srun.log 2>&1 </dev/null &
else
  aif_exporters "$$" &
fi
disown
# <<< aifactory exporters <<<

aif_host=$(hostname)
if [[ ! $aif_host =~ ^[A-Za-z0-9._-]+$ || ! ${SLURM_JOB_ID:-local} =~ ^[A-Za-z0-9._-]+$ ]]; then
  echo "aifactory: host name or job id cannot be published safely" >&2
  exit 1
fi
{
  printf '{"index": %d, "host": "%s", "port": %d}\n' 0 "$aif_host" "${aif_replica_port[0]}"
} >"replicas-$aif_node.part.tmp"
mv -f "replicas-$aif_node.part.tmp" "replicas-$aif_node.part"
if ((aif_node == 0)); then
  {
    printf '{"job_id": "%s", "host": "%s", "pid": %d, "started": "%s",\n' \
      "${SLURM_JOB_ID:-local}" "$aif_host" "$$" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf ' "ports": {'
    printf '"http": %d' "${aif_port_http}"
    printf '},\n "replicas": ['
    cat replicas-*.part | paste -sd, -
    printf ']}\n'
  } >connection.json.tmp
  mv -f connection.json.tmp connection.json
fi

echo "aifactory: starting vllm-single-node replica 0 on port ${aif_replica_port[0]}"
exec "${launcher[@]}" vllm serve facebook/opt-125m --host 0.0.0.0 --port "${aif_replica_port[0]}" --tensor-parallel-size 1 --pipeline-parallel-size 1 --max-model-len 2048 --served-model-name opt-125m
