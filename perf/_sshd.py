"""A throw-away sshd on loopback for the SSH benchmarks (``deploy/local-sshd/up.sh``).

"The login node" is this machine over ssh: what is measured is the SSH path itself (a
persistent asyncssh connection, SFTP, forwards) against bare OpenSSH in the same run.
Kept apart from the tests' helper on purpose: a benchmark never depends on test fixtures;
the shell script is the one shared part.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from _common import ROOT

from aifactory.shared.natsd import free_port
from aifactory.shared.settings import SshSettings

UP = ROOT / "deploy" / "local-sshd" / "up.sh"
DOWN = ROOT / "deploy" / "local-sshd" / "down.sh"


class Sshd:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.env: dict[str, str] = {}

    def start(self, *, realtime: bool = False) -> Sshd:
        """``realtime``: sshd (and the sessions it forks) at SCHED_FIFO 1, as the other
        processes of a benchmark that asks for it."""
        prefix = ["chrt", "-f", "1"] if realtime else []
        out = subprocess.run(
            [*prefix, "bash", str(UP), str(self.folder), str(self.port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            raise RuntimeError(f"local sshd did not start: {out.stderr.strip()}")
        self.env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        (self.folder / "ssh_config").touch()
        self.env["AIFACTORY_SSH__CONFIG_FILE"] = str(self.folder / "ssh_config")
        return self

    def stop(self) -> None:
        subprocess.run(["bash", str(DOWN), str(self.folder)], timeout=30)

    def settings(self) -> SshSettings:
        return SshSettings(
            host="127.0.0.1",
            port=self.port,
            user=self.env["AIFACTORY_SSH__USER"],
            key_file=self.folder / "id_ed25519",
            known_hosts=self.folder / "known_hosts",
            config_file=self.folder / "ssh_config",
        )

    def ssh_argv(self) -> list[str]:
        """Bare OpenSSH to the same server: a new login per command (the baseline)."""
        return [
            "ssh",
            "-p",
            str(self.port),
            "-i",
            str(self.folder / "id_ed25519"),
            "-F",
            str(self.folder / "ssh_config"),
            "-o",
            f"UserKnownHostsFile={self.folder / 'known_hosts'}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            f"{self.env['AIFACTORY_SSH__USER']}@127.0.0.1",
        ]
