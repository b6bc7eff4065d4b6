"""The embedded stack: one nats-server and the service processes, supervised.

Each service is its own process (as at scale), so ``kill -9`` of one is survivable: the
supervisor restarts it and it reconciles from JetStream. Stopping sends SIGTERM to every
child, waits, and only then stops NATS, so no service loses its bus mid-shutdown and no
process is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from aifactory.shared.executors.base import ExecutorError
from aifactory.shared.executors.factory import make_executor
from aifactory.shared.natsd import EmbeddedNats
from aifactory.shared.settings import Settings

log = logging.getLogger(__name__)

#: Services that exist as runnable modules (monitor and logs are not built yet).
SERVICE_MODULES = ("aifactory.services.server", "aifactory.services.client")


class StackError(RuntimeError):
    """The stack could not start; the message says what is in the way."""


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Child:
    module: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)


class Stack:
    def __init__(self, settings: Settings, *, modules: tuple[str, ...] = SERVICE_MODULES) -> None:
        self.settings = settings
        self.modules = tuple(m for m in modules if _module_exists(m))
        self.nats: EmbeddedNats | None = None
        self.children: list[Child] = []
        self.log_dir = settings.state_dir / "logs"

    @property
    def nats_url(self) -> str:
        return self.nats.url if self.nats else self.settings.nats_url

    def start(self) -> Stack:
        url = urlparse(self.settings.nats_url)
        host, port = url.hostname or "127.0.0.1", url.port or 4222
        if port_open(host, port):
            raise StackError(
                f"something already listens on {host}:{port} (another 'aifactory up'?); "
                "stop it or set AIFACTORY_NATS_URL to a free port"
            )
        if port_open(self.settings.ingress_host, self.settings.ingress_port):
            raise StackError(
                f"port {self.settings.ingress_port} is taken; set AIFACTORY_INGRESS_PORT"
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.nats = EmbeddedNats(self.settings.state_dir / "nats", host=host, port=port).start()
        try:
            for module in self.modules:
                child = Child(module, self.log_dir / f"{module.rsplit('.', 1)[-1]}.log")
                self._spawn(child)
                self.children.append(child)
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _env(self) -> dict[str, str]:
        # Jobs inherit the services' PATH: put this environment's scripts (aifactory,
        # nats-server) first so native recipes find them without an activated venv.
        bin_dir = str(Path(sys.executable).parent)
        path = os.environ.get("PATH", "")
        if bin_dir not in path.split(os.pathsep):
            path = os.pathsep.join([bin_dir, path]) if path else bin_dir
        return {**os.environ, "PATH": path, "AIFACTORY_NATS_URL": self.nats_url}

    def _spawn(self, child: Child) -> None:
        with child.log_path.open("ab") as out:
            child.proc = subprocess.Popen(
                [sys.executable, "-m", child.module],
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def health_urls(self) -> dict[str, str]:
        s = self.settings
        ports = {
            "aifactory.services.server": s.ingress_port,
            "aifactory.services.client": s.client_port,
        }
        return {m: f"http://127.0.0.1:{ports[m]}/health" for m in self.modules if m in ports}

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        pending = dict(self.health_urls())
        while pending and time.monotonic() < deadline:
            for child in self.children:
                if child.proc is not None and child.proc.poll() is not None:
                    raise StackError(
                        f"{child.module} exited with code {child.proc.returncode}; "
                        f"see {child.log_path}:\n{_tail(child.log_path)}"
                    )
            for module, url in list(pending.items()):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url, timeout=0.5).status_code == 200:
                        del pending[module]
            time.sleep(0.1)
        if pending:
            raise StackError(f"not healthy after {timeout:g}s: {', '.join(pending)}")

    def supervise_once(self, max_restarts_per_minute: int = 5) -> list[str]:
        """Restart children that died; returns messages for the user."""
        notes = []
        now = time.monotonic()
        for child in self.children:
            if child.proc is None or child.proc.poll() is None:
                continue
            child.restarts = [t for t in child.restarts if now - t < 60] + [now]
            if len(child.restarts) > max_restarts_per_minute:
                raise StackError(
                    f"{child.module} keeps dying (exit {child.proc.returncode}); "
                    f"see {child.log_path}:\n{_tail(child.log_path)}"
                )
            notes.append(f"{child.module} exited ({child.proc.returncode}); restarting")
            self._spawn(child)
        return notes

    def stop(self, timeout: float = 15.0) -> None:
        try:
            asyncio.run(make_executor(self.settings).stop_with_stack())
        except (ExecutorError, OSError) as exc:
            log.warning("could not stop the executor's jobs: %s", exc)
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %ss; killing it", child.module, timeout)
                child.proc.kill()
                child.proc.wait()
        self.children.clear()
        if self.nats is not None:
            self.nats.stop()
            self.nats = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _module_exists(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(f"{module}.__main__") is not None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
