# shellcheck shell=bash
# Helpers shared by up.sh and down.sh (sourced, not run).

log() { printf 'local-slurm: %s\n' "$*" >&2; }

# pid_alive PIDFILE NAME: the pid file names a live process whose command is NAME.
pid_alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]]
}

# stop_daemon PIDFILE NAME: TERM, wait up to 15 s, then KILL. A stale pid file is removed.
stop_daemon() {
    local pid i
    if ! pid_alive "$1" "$2"; then
        rm -f "$1"
        return 0
    fi
    pid=$(<"$1")
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
