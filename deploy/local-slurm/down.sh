#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by up.sh (slurmd, then slurmctld).
# Job and node state under /var/spool/slurm* is kept, so up.sh resumes where it left off.
# Pass --munge to stop munged as well (other software on the machine may use it).
set -euo pipefail

# shellcheck source=SCRIPTDIR/daemons.sh
. "$(dirname "${BASH_SOURCE[0]}")/daemons.sh"
[[ $(id -u) -eq 0 ]] || {
    log "ERROR: run as root"
    exit 1
}

if [[ -d /run/systemd/system ]]; then
    systemctl stop slurmd slurmctld || true
    [[ ${1:-} == --munge ]] && systemctl stop munge
    exit 0
fi
stop_daemon /run/slurmd.pid slurmd
stop_daemon /run/slurmctld.pid slurmctld
if [[ ${1:-} == --munge ]]; then
    stop_daemon /run/munge/munged.pid munged
fi
log "stopped"
