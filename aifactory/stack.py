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
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import httpx

from aifactory.shared.credentials import ensure_credentials, private_dir
from aifactory.shared.executors.base import ExecutorError
from aifactory.shared.executors.factory import make_executor
from aifactory.shared.natsd import EmbeddedNats
from aifactory.shared.parts import StackParts, remove_parts, write_parts
from aifactory.shared.settings import Settings
from aifactory.shared.stackfile import (
    StackInfo,
    port_free,
    read_stack,
    remove_stack,
    user_ports,
    write_stack,
)
from aifactory.supervise import Backoff, NatsPart, Part, PartStartError, ServicePart, tail

log = logging.getLogger(__name__)

#: Services that exist as runnable modules.
SERVICE_MODULES = (
    "aifactory.services.server",
    "aifactory.services.client",
    "aifactory.services.monitor",
    "aifactory.services.logs",
)


class StackError(RuntimeError):
    """The stack could not start; the message says what is in the way."""


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
        on_note: Callable[[str], None] | None = None,
        with_prometheus: bool = False,
    ) -> None:
        """``on_note``: told when a part dies or restarts (``aifactory up`` prints it)."""
        self.settings = settings
        self.on_note = on_note
        if with_prometheus:
            modules = (*modules, PROMETHEUS_MODULE)
        self.modules = tuple(m for m in modules if _module_exists(m))
        self.with_prometheus = with_prometheus
        self.insecure_loopback = insecure_loopback or settings.insecure_loopback
        self.nats: EmbeddedNats | None = None
        self.nats_part: NatsPart | None = None
        self.children: list[ServicePart] = []
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
            store_key=credentials.store_key.get_secret_value() if credentials.store_key else None,
        )
        self.nats_part = NatsPart("nats", self.nats.log_path, self._backoff(), nats=self.nats)
        try:
            self.nats_part.start()
        except PartStartError as exc:
            raise StackError(f"the embedded NATS did not start: {exc}") from exc
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
                name = module.rsplit(".", 1)[-1]
                log_path = self.log_dir / f"{name}.log"
                child = ServicePart(name, log_path, self._backoff(), module=module, env=self._env)
                child.start()
                self.children.append(child)
            self.write_parts()
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _backoff(self) -> Backoff:
        s = self.settings
        return Backoff(first=s.restart_backoff, cap=max(s.restart_backoff, s.restart_backoff_max))

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

    @property
    def parts(self) -> list[Part]:
        return [*([self.nats_part] if self.nats_part else []), *self.children]

    def write_parts(self) -> None:
        status = StackParts(supervisor_pid=os.getpid(), parts=[p.status() for p in self.parts])
        write_parts(self.settings.state_dir, status)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until every service answers ``/health``, restarting what dies meanwhile (a part
        killed while the stack starts is restarted, not a reason to give up)."""
        deadline = time.monotonic() + timeout
        pending = dict(self.health_urls())
        while pending and time.monotonic() < deadline:
            self.supervise_once()
            for module, url in list(pending.items()):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url, timeout=0.5).status_code == 200:
                        del pending[module]
            time.sleep(0.1)
        if pending:
            failing = [c for c in self.children if c.module in pending]
            tails = "\n".join(f"{c.log_path}:\n{tail(c.log_path)}" for c in failing)
            raise StackError(f"not healthy after {timeout:g}s: {', '.join(pending)}\n{tails}")

    def supervise_once(self) -> list[str]:
        """Restart what died, when its back-off allows; lines for the user. Never raises
        for a crash loop: the rest of the stack keeps running."""
        now = time.monotonic()
        notes = [note for part in self.parts if (note := part.supervise(now)) is not None]
        if notes:
            self.write_parts()
            for note in notes:
                if self.on_note is not None:
                    self.on_note(note)
                else:
                    log.warning("%s", note)
        return notes

    def stop(self, timeout: float = 15.0) -> None:
        try:
            asyncio.run(make_executor(self.settings).stop_with_stack())
        except (ExecutorError, OSError) as exc:
            log.warning("could not stop the executor's jobs: %s", exc)
        for child in self.children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            child.wait(deadline - time.monotonic())
        self.children.clear()
        if self.nats_part is not None:
            self.nats_part.terminate(timeout)
            self.nats_part = None
        self.nats = None
        remove_parts(self.settings.state_dir)
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
