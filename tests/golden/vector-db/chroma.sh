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

echo "aifactory: starting chroma replica 0 on port 8000"
exec "${launcher[@]}" chroma run --host 0.0.0.0 --port 8000 --path /scratch/aifactory/jobs/svc-golden/chroma-data
