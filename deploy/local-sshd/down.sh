#!/usr/bin/env bash
# Stop the sshd that up.sh DIR started, and the sessions it is serving (by their pids: the
# listener's children), so clients see their connections drop as on a real restart.
set -euo pipefail
[[ $# -eq 1 ]] || {
    echo "usage: $0 DIR" >&2
    exit 2
}
[[ -d $1 ]] || exit 0
dir="$(cd "$1" && pwd)"
pidfile="$dir/sshd.pid"
[[ -s $pidfile ]] || exit 0
pid="$(cat "$pidfile")"
[[ $pid =~ ^[0-9]+$ ]] || exit 0
if [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" != *"$dir/sshd_config"* ]]; then
    rm -f "$pidfile" # a stale file: that pid is not our sshd any more
    exit 0
fi
children="$(pgrep -P "$pid" || true)"
kill "$pid" 2>/dev/null || true
for child in $children; do
    kill "$child" 2>/dev/null || true
done
for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
rm -f "$pidfile"
