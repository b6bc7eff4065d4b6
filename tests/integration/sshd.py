"""A real OpenSSH server on a loopback port for the ``slurm+ssh`` tests.

Started through ``deploy/local-sshd/up.sh`` (fresh host and user keys in a temporary
folder), so the tests, the benchmark and a developer trying it by hand use one set-up.
The SLURM commands run through it are the real local cluster's: "the login node" is this
machine reached over ssh.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aifactory.shared.natsd import free_port
from aifactory.shared.settings import SshSettings
from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
UP = ROOT / "deploy" / "local-sshd" / "up.sh"
DOWN = ROOT / "deploy" / "local-sshd" / "down.sh"


def sshd_binary() -> str | None:
    return shutil.which("sshd") or shutil.which("sshd", path="/usr/sbin:/sbin")


class LocalSshd:
    """One sshd started by ``up.sh`` in ``folder``; ``restart`` drops every session."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.env: dict[str, str] = {}

    def start(self) -> LocalSshd:
        out = subprocess.run(
            ["bash", str(UP), str(self.folder), str(self.port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            raise RuntimeError(f"local sshd did not start: {out.stderr.strip()}")
        self.env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        return self

    def stop(self) -> None:
        """Stop the server and end the sessions it serves (clients see a drop)."""
        subprocess.run(["bash", str(DOWN), str(self.folder)], check=True, timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def ssh_config(self) -> Path:
        """An empty OpenSSH client config: the developer's ~/.ssh/config stays out of it."""
        path = self.folder / "ssh_config"
        path.touch()
        return path

    @property
    def key_file(self) -> Path:
        return self.folder / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.folder / "known_hosts"

    @property
    def user(self) -> str:
        return self.env["AIFACTORY_SSH__USER"]

    def settings(self, **changes: Any) -> SshSettings:
        """Client settings for this server (no ~/.ssh/config: the tests own every value)."""
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "key_file": self.key_file,
            "known_hosts": self.known_hosts,
            "config_file": self.ssh_config,
            "command_timeout": 20.0,
            "connect_timeout": 5.0,
            "keepalive_interval": 2.0,
            "reconnect_max_delay": 2.0,
        }
        return SshSettings(**(values | changes))

    def service_env(self) -> dict[str, str]:
        """The same, as the environment of a service process."""
        return {
            **self.env,
            "AIFACTORY_SSH__CONFIG_FILE": str(self.ssh_config),
            "AIFACTORY_SSH__KEEPALIVE_INTERVAL": "2",
            "AIFACTORY_SSH__RECONNECT_MAX_DELAY": "2",
        }


def slurm_ready() -> None:
    """Fail (CI) or skip unless the local SLURM cluster answers with a usable node."""
    ok = shutil.which("sinfo") is not None
    if ok:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10
        )
        ok = out.returncode == 0 and any(
            s.startswith(("idle", "mix", "alloc")) for s in out.stdout.split()
        )
    need(ok, "a running SLURM cluster (sudo deploy/local-slurm/up.sh)")


def _local_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSshd]:
    need(sshd_binary() is not None, "sshd (openssh-server; deploy/setup.sh installs it)")
    need(shutil.which("ssh-keygen") is not None, "ssh-keygen (openssh-client)")
    server = LocalSshd(tmp_path_factory.mktemp("sshd")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSshd]:
    """A throw-away sshd on 127.0.0.1 (fails under AIFACTORY_REQUIRE_INTEGRATION=1 if
    openssh-server is missing); one per test, for tests that stop or restart it."""
    yield from _local_sshd(tmp_path_factory)


@pytest.fixture(scope="module")
def module_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSshd]:
    """The same, shared by a module's tests that only log in (each start/stop costs ~2 s)."""
    yield from _local_sshd(tmp_path_factory)
