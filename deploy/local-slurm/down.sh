#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by up.sh (slurmd, then slurmctld).
# Job and node state under /var/spool/slurm* is kept, so up.sh resumes where it left off.
# Pass --munge to stop munged as well (other software on the machine may use it).
set -euo pipefail

log() { printf 'local-slurm: %s\n' "$*" >&2; }
[[ $(id -u) -eq 0 ]] || {
    log "ERROR: run as root"
    exit 1
}

# stop PIDFILE NAME: TERM, wait up to 15 s, then KILL. A stale pid file is removed.
stop() {
    local pid i
    [[ -s $1 ]] || return 0
    pid=$(<"$1")
    if [[ ! $pid =~ ^[0-9]+$ ]] || [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$2" ]]; then
        rm -f "$1"
        return 0
    fi
    log "stopping $2 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        [[ -e /proc/$pid ]] || break
        sleep 0.1
    done
    if [[ -e /proc/$pid ]]; then
        log "$2 ignored SIGTERM for 15 s, killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}

if [[ -d /run/systemd/system ]]; then
    systemctl stop slurmd slurmctld || true
    [[ ${1:-} == --munge ]] && systemctl stop munge
    exit 0
fi
stop /run/slurmd.pid slurmd
stop /run/slurmctld.pid slurmctld
if [[ ${1:-} == --munge ]]; then
    stop /run/munge/munged.pid munged
fi
log "stopped"
