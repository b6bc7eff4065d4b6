#!/usr/bin/env bash
# Start a throw-away OpenSSH server on a loopback port, for the slurm+ssh tests and benchmark.
#
#   deploy/local-sshd/up.sh DIR PORT
#
# Everything lives in DIR (created mode 0700): a fresh host key and user key, the
# authorized_keys and known_hosts files that go with them, the config, the pid file and the
# log. Nothing outside DIR is touched except /run/sshd (privilege separation, as root).
# The server listens on 127.0.0.1:PORT only, accepts keys only, and lets the user log in as
# itself (root included: PermitRootLogin prohibit-password) with TCP forwarding and SFTP.
# Prints the variables a client needs (AIFACTORY_SSH__*) on stdout. Stop it with down.sh DIR.
set -euo pipefail

die() {
    echo "local-sshd: $*" >&2
    exit 1
}

[[ $# -eq 2 ]] || die "usage: $0 DIR PORT"
dir="$1"
port="$2"
if [[ ! $port =~ ^[1-9][0-9]{0,4}$ ]] || ((port > 65535)); then
    die "PORT must be 1-65535, not '$port'"
fi
export PATH="$PATH:/usr/sbin:/sbin"
sshd="$(command -v sshd)" || die "sshd not found: install openssh-server (deploy/setup.sh does)"
keygen="$(command -v ssh-keygen)" || die "ssh-keygen not found: install openssh-client"

mkdir -p "$dir"
chmod 0700 "$dir"
dir="$(cd "$dir" && pwd)"
[[ $dir != *[[:space:]]* ]] || die "DIR must not contain spaces (sshd_config paths): '$dir'"
if [[ $(id -u) -eq 0 ]]; then
    mkdir -p /run/sshd
    chmod 0755 /run/sshd
fi

[[ -f $dir/host_ed25519 ]] || "$keygen" -q -t ed25519 -N '' -C aifactory-test-host -f "$dir/host_ed25519"
[[ -f $dir/id_ed25519 ]] || "$keygen" -q -t ed25519 -N '' -C aifactory-test-user -f "$dir/id_ed25519"
cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >"$dir/known_hosts"

cat >"$dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
AllowTcpForwarding yes
MaxSessions 20
MaxStartups 100:30:200
Subsystem sftp internal-sftp
LogLevel INFO
CONF

"$sshd" -t -f "$dir/sshd_config" || die "sshd refused the config (see above)"
rm -f "$dir/sshd.pid"
"$sshd" -f "$dir/sshd_config" -E "$dir/sshd.log"

for _ in $(seq 100); do
    if [[ -s $dir/sshd.pid ]] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        cat <<OUT
AIFACTORY_SSH__HOST=127.0.0.1
AIFACTORY_SSH__PORT=$port
AIFACTORY_SSH__USER=$(id -un)
AIFACTORY_SSH__KEY_FILE=$dir/id_ed25519
AIFACTORY_SSH__KNOWN_HOSTS=$dir/known_hosts
OUT
        exit 0
    fi
    sleep 0.05
done
die "sshd did not listen on 127.0.0.1:$port within 5 s; its log: $(tail -5 "$dir/sshd.log" 2>/dev/null)"
