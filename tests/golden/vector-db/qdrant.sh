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
aif_replica_port[0]=$(aif_claim_port 6333)
aif_port_http=${aif_replica_port[0]}
aif_port_grpc=$(aif_claim_port 6334)
echo "aifactory: ports on $(hostname): http=${aif_port_http} grpc=${aif_port_grpc}"
# <<< aifactory ports <<<

# >>> aifactory environment >>>
export AIFACTORY_SERVICE_ID=svc-golden
export AIFACTORY_RECIPE=vector-db/qdrant
export AIFACTORY_JOB_NAME=aif-svc-golden
export QDRANT__SERVICE__HTTP_PORT="${aif_port_http}"
export QDRANT__SERVICE__GRPC_PORT="${aif_port_grpc}"
export QDRANT__TELEMETRY_DISABLED=true
# <<< aifactory environment <<<

if ! command -v apptainer >/dev/null 2>&1; then
  echo "aifactory: apptainer not found on $(hostname); load its module or install it" >&2
  exit 127
fi
mkdir -p -- /scratch/aifactory/jobs/svc-golden/qdrant/storage
mkdir -p -- /scratch/aifactory/jobs/svc-golden/qdrant/snapshots
launcher=(apptainer exec --bind /scratch/aifactory/jobs/svc-golden/qdrant/storage:/qdrant/storage --bind /scratch/aifactory/jobs/svc-golden/qdrant/snapshots:/qdrant/snapshots --pwd /qdrant --writable-tmpfs docker://qdrant/qdrant:v1.12.4)

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
    printf '"http": %d, ' "${aif_port_http}"
    printf '"grpc": %d' "${aif_port_grpc}"
    printf '},\n "replicas": ['
    cat replicas-*.part | paste -sd, -
    printf ']}\n'
  } >connection.json.tmp
  mv -f connection.json.tmp connection.json
fi

echo "aifactory: starting qdrant replica 0 on port ${aif_replica_port[0]}"
exec "${launcher[@]}" /qdrant/qdrant
