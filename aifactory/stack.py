"""The embedded stack: one nats-server and the service processes, supervised.

Each service is its own process (as at scale), so ``kill -9`` of one is survivable: the
supervisor restarts it and it reconciles from JetStream. Stopping sends SIGTERM to every
child, waits, and only then stops NATS, so no service loses its bus mid-shutdown and no
process is left behind.

Safe on a shared login node: the bus requires the user's generated credentials, the
ingress its token, ports are the user's own (derived from the uid, else free ones), and
``stack.json`` tells this user's CLI where its own stack is. Nothing secret is passed on a
command line or in the environment: the services read ``credentials.json`` (mode 0600).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from aifactory.shared.credentials import ensure_credentials, private_dir
from aifactory.shared.executors.base import ExecutorError
from aifactory.shared.executors.factory import make_executor
from aifactory.shared.natsd import EmbeddedNats
from aifactory.shared.settings import Settings
from aifactory.shared.stackfile import (
    StackInfo,
    port_free,
    read_stack,
    remove_stack,
    user_ports,
    write_stack,
)

log = logging.getLogger(__name__)

#: Services that exist as runnable modules (logs is not built yet).
SERVICE_MODULES = (
    "aifactory.services.server",
    "aifactory.services.client",
    "aifactory.services.monitor",
)


class StackError(RuntimeError):
    """The stack could not start; the message says what is in the way."""


@dataclass
class Child:
    module: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)


#: The ports a stack needs, in the order they are taken from the user's block.
PORT_NAMES = ("nats", "ingress", "client", "monitor", "logs")
#: ``--with-prometheus``: a supervised Prometheus on the monitor's targets (one more port).
PROMETHEUS_MODULE = "aifactory.monitor.prometheus"


class Stack:
    def __init__(
        self,
        settings: Settings,
        *,
        modules: tuple[str, ...] = SERVICE_MODULES,
        insecure_loopback: bool = False,
        with_prometheus: bool = False,
    ) -> None:
        self.settings = settings
        if with_prometheus:
            modules = (*modules, PROMETHEUS_MODULE)
        self.modules = tuple(m for m in modules if _module_exists(m))
        self.with_prometheus = with_prometheus
        self.insecure_loopback = insecure_loopback or settings.insecure_loopback
        self.nats: EmbeddedNats | None = None
        self.children: list[Child] = []
        self.log_dir = settings.state_dir / "logs"
        self.ports: dict[str, int] = {}
        self.info: StackInfo | None = None

    @property
    def nats_url(self) -> str:
        return self.nats.url if self.nats else self.settings.nats_url

    def url(self, name: str) -> str:
        host = self.settings.ingress_host if name == "ingress" else "127.0.0.1"
        return f"http://{host}:{self.ports[name]}"

    def start(self) -> Stack:
        state_dir = private_dir(self.settings.state_dir)
        running = read_stack(state_dir)
        if running is not None:
            raise StackError(
                f"your stack already runs (pid {running.pid}, ingress {running.ingress_url}); "
                "'aifactory status' shows it"
            )
        credentials = ensure_credentials(state_dir)
        self.ports = self._choose_ports()
        host = urlparse(self.settings.nats_url).hostname or "127.0.0.1"
        private_dir(self.log_dir)
        self.nats = EmbeddedNats(
            state_dir / "nats",
            host=host,
            port=self.ports["nats"],
            user=credentials.nats_user,
            password=credentials.nats_password.get_secret_value(),
        ).start()
        self.info = StackInfo(
            pid=os.getpid(),
            uid=os.getuid(),
            executor=self.settings.executor,
            nats_url=self.nats.url,
            ingress_url=self.url("ingress"),
            client_url=self.url("client"),
            monitor_url=self.url("monitor"),
            logs_url=self.url("logs"),
            prometheus_url=self.url("prometheus") if self.with_prometheus else None,
            insecure_loopback=self.insecure_loopback,
        )
        write_stack(state_dir, self.info)
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

    def _choose_ports(self) -> dict[str, int]:
        """Explicit settings win (and must be free); the rest come from the user's block."""
        s = self.settings
        explicit: dict[str, int] = {}
        if "nats_url" in s.model_fields_set:
            explicit["nats"] = urlparse(s.nats_url).port or 4222
        for name in PORT_NAMES[1:]:
            if f"{name}_port" in s.model_fields_set:
                explicit[name] = getattr(s, f"{name}_port")
        for name, port in explicit.items():
            if not port_free(port):
                variable = "NATS_URL" if name == "nats" else f"{name.upper()}_PORT"
                raise StackError(
                    f"port {port} ({name}) is taken by another program or stack: "
                    f"change or unset AIFACTORY_{variable}"
                )
        names = (*PORT_NAMES, "prometheus") if self.with_prometheus else PORT_NAMES
        if self.with_prometheus and s.monitor.prometheus_port:
            explicit["prometheus"] = s.monitor.prometheus_port
        chosen = iter(user_ports(len(names)))
        ports = {name: explicit.get(name) or next(chosen) for name in names}
        taken = sorted(p for p in ports.values() if list(ports.values()).count(p) > 1)
        if taken:
            raise StackError(f"port {taken[0]} is set for two parts of the stack")
        return ports

    def _env(self) -> dict[str, str]:
        # Jobs inherit the services' PATH: put this environment's scripts (aifactory,
        # nats-server) first so native recipes find them without an activated venv.
        bin_dir = str(Path(sys.executable).parent)
        path = os.environ.get("PATH", "")
        if bin_dir not in path.split(os.pathsep):
            path = os.pathsep.join([bin_dir, path]) if path else bin_dir
        env = {**os.environ, "PATH": path, "AIFACTORY_NATS_URL": self.nats_url}
        for name in PORT_NAMES[1:]:
            env[f"AIFACTORY_{name.upper()}_PORT"] = str(self.ports[name])
        if "prometheus" in self.ports:
            env["AIFACTORY_MONITOR__PROMETHEUS_PORT"] = str(self.ports["prometheus"])
        if self.insecure_loopback:
            env["AIFACTORY_INSECURE_LOOPBACK"] = "true"
        return env

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
        names = {
            "aifactory.services.server": "ingress",
            "aifactory.services.client": "client",
            "aifactory.services.monitor": "monitor",
            "aifactory.services.logs": "logs",
        }
        urls = {
            m: f"http://127.0.0.1:{self.ports[names[m]]}/health" for m in self.modules if m in names
        }
        if PROMETHEUS_MODULE in self.modules:
            urls[PROMETHEUS_MODULE] = f"http://127.0.0.1:{self.ports['prometheus']}/-/ready"
        return urls

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
        if self.info is not None:
            remove_stack(self.settings.state_dir, self.info.pid)
            self.info = None

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
