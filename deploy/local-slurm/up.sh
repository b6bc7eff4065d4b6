#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine, for tests and CI.
#
# Idempotent: installs slurm-wlm and munge only when missing, keeps an existing munge key,
# rewrites the config only when it changed and restarts the daemons only then (or when they
# are not running). Runs without systemd (containers) by starting the daemons directly.
#
# Environment knobs (all optional):
#   AIFACTORY_SLURM_GPUS        count-only GPU GRES advertised by the node   (default 4)
#   AIFACTORY_SLURM_OVERSUB     jobs that may share one core (OverSubscribe) (default 8)
#   AIFACTORY_SLURM_WAIT        seconds to wait for the node to come up      (default 60)
set -euo pipefail

GPUS="${AIFACTORY_SLURM_GPUS:-4}"
OVERSUB="${AIFACTORY_SLURM_OVERSUB:-8}"
WAIT_S="${AIFACTORY_SLURM_WAIT:-60}"

CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
CTLD_SPOOL=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
FAKE_GPU_DIR=/var/lib/aifactory-local-slurm/fake-gpus

# shellcheck source=SCRIPTDIR/daemons.sh
. "$(dirname "${BASH_SOURCE[0]}")/daemons.sh"
die() {
    log "ERROR: $*"
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and starts daemons)"
for knob in GPUS OVERSUB WAIT_S; do
    [[ ${!knob} =~ ^[1-9][0-9]*$ ]] || die "$knob must be a positive integer, not '${!knob}'"
done
export PATH="$PATH:/usr/sbin:/sbin"

# --- packages -------------------------------------------------------------------------------
missing=()
for bin in slurmctld slurmd slurmstepd sinfo sbatch munged; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
if ((${#missing[@]})); then
    log "installing slurm-wlm and munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends slurm-wlm munge
fi

systemd_running() { [[ -d /run/systemd/system ]]; }


# --- munge ----------------------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating munge key"
    install -d -o munge -g munge -m 0700 /etc/munge
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    if systemd_running; then
        systemctl restart munge
    else
        runuser -u munge -- munged
    fi
    for ((i = 0; i < 50; i++)); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null || die "munged does not answer; see /var/log/munge/munged.log"
fi

# --- slurm.conf -----------------------------------------------------------------------------
host=$(hostname -s)
# slurmd -C prints "NodeName=<host> CPUs=.. Boards=.. ... RealMemory=<MiB>" then "UpTime=..".
hw=$(slurmd -C | head -n 1)
[[ $hw == NodeName=* ]] || die "unexpected 'slurmd -C' output: $hw"
real_mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
[[ -n $real_mem ]] || die "no RealMemory in 'slurmd -C' output: $hw"
# Leave headroom for the OS so slurmd never marks the node invalid for "low RealMemory".
mem=$((real_mem * 95 / 100))
hw_fields=$(sed -e 's/^NodeName=[^ ]* //' -e 's/ *RealMemory=[0-9]*//' <<<"$hw")

proctrack=proctrack/linuxproc # cgroups are not delegated inside containers
new_conf=$(mktemp)
new_gres=$(mktemp)
trap 'rm -f "$new_conf" "$new_gres"' EXIT
cat >"$new_conf" <<EOF
# Written by aifactory deploy/local-slurm/up.sh: a single-node cluster for tests and CI.
ClusterName=aifactory-local
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=${CTLD_SPOOL}
SlurmdSpoolDir=${SLURMD_SPOOL}
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=${proctrack}
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Ended jobs stay visible to squeue for 5 minutes; pollers read their end state there.
MinJobAge=300
ReturnToService=2
# Short grace between SIGTERM and SIGKILL at cancel/timeout keeps tests quick.
KillWait=5
InactiveLimit=0
Waittime=0
NodeName=${host} NodeAddr=127.0.0.1 ${hw_fields} RealMemory=${mem} Gres=gpu:${GPUS} State=UNKNOWN
# OverSubscribe lets many 1-CPU test jobs run at once on a 2-core machine (memory stays
# a consumable resource, GPUs are never shared).
PartitionName=cpu Nodes=${host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:${OVERSUB}
PartitionName=gpu Nodes=${host} Default=NO MaxTime=INFINITE State=UP OverSubscribe=FORCE:${OVERSUB}
EOF
cat >"$new_gres" <<EOF
# Fake GPUs: SLURM 22.05 drops file-less gpu GRES ("Removing file-less GPU"), so each GPU is
# an empty placeholder file. Jobs asking --gres=gpu:N get N of them and CUDA_VISIBLE_DEVICES,
# as on a real GPU node; no device is opened (TaskPlugin=task/none, no cgroup constraints).
AutoDetect=off
NodeName=${host} Name=gpu File=${FAKE_GPU_DIR}/gpu[0-$((GPUS - 1))]
EOF

changed=0
install -d -m 0755 "$CONF_DIR" "$LOG_DIR" "$CTLD_SPOOL" "$SLURMD_SPOOL" "$FAKE_GPU_DIR"
for ((i = 0; i < GPUS; i++)); do
    [[ -e $FAKE_GPU_DIR/gpu$i ]] || : >"$FAKE_GPU_DIR/gpu$i"
done
for pair in "$new_conf:$CONF_DIR/slurm.conf" "$new_gres:$CONF_DIR/gres.conf"; do
    src=${pair%%:*}
    dst=${pair#*:}
    if ! cmp -s "$src" "$dst"; then
        install -m 0644 "$src" "$dst"
        changed=1
        log "wrote $dst"
    fi
done

# --- daemons --------------------------------------------------------------------------------
if ((changed)); then
    stop_daemon "$SLURMD_PID" slurmd
    stop_daemon "$CTLD_PID" slurmctld
fi
start_daemons() {
    if systemd_running; then
        pid_alive "$CTLD_PID" slurmctld || systemctl restart slurmctld
        pid_alive "$SLURMD_PID" slurmd || systemctl restart slurmd
        return
    fi
    if ! pid_alive "$CTLD_PID" slurmctld; then
        log "starting slurmctld"
        slurmctld
    fi
    if ! pid_alive "$SLURMD_PID" slurmd; then
        log "starting slurmd"
        slurmd
    fi
}
start_daemons

# --- wait for the node ----------------------------------------------------------------------
deadline=$((SECONDS + WAIT_S))
state=""
while ((SECONDS < deadline)); do
    state=$(sinfo -h -N -n "$host" -o '%t' 2>/dev/null | head -n 1 || true)
    case $state in
    idle | mix | alloc) break ;;
    inval*) break ;; # config disagrees with the hardware: waiting will not help
    down* | drain* | drng* | fail*)
        # ReturnToService=2 normally clears this; a node left down by an old config is resumed.
        scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
        ;;
    esac
    sleep 0.5
done
case $state in
idle | mix | alloc) log "node $host is $state; partitions: $(sinfo -h -o '%P' | tr '\n' ' ')" ;;
*)
    log "node $host did not come up within ${WAIT_S}s (state: '${state:-no answer}')"
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log"; do
        log "--- tail of $f"
        tail -n 25 "$f" >&2 2>/dev/null || true
    done
    exit 1
    ;;
esac
