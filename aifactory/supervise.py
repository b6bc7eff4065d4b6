"""Parts of a stack under supervision: restarted with exponential back-off, for ever.

A part that dies is started again after 0.5 s, then 1, 2, 4 … capped at 30 s while it keeps
dying; one that ran a minute before dying starts over at 0.5 s. Nothing else is touched: a
crash loop in one service never stops its siblings or the bus (they keep serving, and the
stack reports itself degraded until the part runs again).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aifactory.shared.natsd import EmbeddedNats, NatsServerError
from aifactory.shared.parts import PartState, PartStatus


@dataclass
class Backoff:
    """Delays before restarts: doubling from ``first`` up to ``cap``; reset by a stable run."""

    first: float = 0.5
    cap: float = 30.0
    stable: float = 60.0
    failures: int = 0

    def after_exit(self, uptime: float) -> float:
        if uptime >= self.stable:
            self.failures = 0
        self.failures += 1
        return float(min(self.cap, self.first * 2 ** (self.failures - 1)))


@dataclass
class Part(ABC):
    """One supervised process."""

    name: str
    log_path: Path
    backoff: Backoff = field(default_factory=Backoff)
    state: PartState = PartState.STOPPED
    restarts: int = 0
    last_exit_code: int | None = None
    last_exit: datetime | None = None
    started_at: float = 0.0
    next_start: float = 0.0

    @abstractmethod
    def _launch(self) -> None:
        """Start the process (raise :class:`PartStartError` when it cannot)."""

    @abstractmethod
    def exit_code(self) -> int | None:
        """``None`` while the process runs."""

    @property
    @abstractmethod
    def pid(self) -> int | None: ...

    @abstractmethod
    def terminate(self, timeout: float) -> None:
        """SIGTERM, wait, SIGKILL if it lingers."""

    def start(self) -> None:
        self._launch()
        self.state = PartState.RUNNING
        self.started_at = time.monotonic()

    def supervise(self, now: float) -> str | None:
        """Restart when due; returns a line for the user when something happened."""
        if self.state is PartState.RUNNING:
            code = self.exit_code()
            if code is None:
                return None
            return self._exited(code, now)
        if self.state is PartState.RESTARTING and now >= self.next_start:
            try:
                self.start()
            except PartStartError as exc:
                self.state = PartState.RUNNING  # so that the failure counts as an exit
                return self._exited(exc.code, now, reason=str(exc))
            self.restarts += 1
            return f"{self.name} restarted (pid {self.pid}, restart {self.restarts})"
        return None

    def _exited(self, code: int, now: float, reason: str | None = None) -> str:
        delay = self.backoff.after_exit(now - self.started_at)
        self.state = PartState.RESTARTING
        self.last_exit_code = code
        self.last_exit = datetime.now(UTC)
        self.next_start = now + delay
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        lines = reason or tail(self.log_path, 5)
        return f"{self.name} {how}; restarting in {delay:g}s. {self.log_path}:\n{lines}"

    def status(self) -> PartStatus:
        waiting = self.state is PartState.RESTARTING
        next_start = (
            datetime.now(UTC) + timedelta(seconds=max(0.0, self.next_start - time.monotonic()))
            if waiting
            else None
        )
        return PartStatus(
            name=self.name,
            state=self.state,
            pid=self.pid if self.state is PartState.RUNNING else None,
            restarts=self.restarts,
            last_exit_code=self.last_exit_code,
            last_exit=self.last_exit,
            next_start=next_start,
            log=str(self.log_path),
        )


class PartStartError(RuntimeError):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ServicePart(Part):
    """A service module run as ``python -m module`` with the stack's environment."""

    module: str = ""
    env: Callable[[], dict[str, str]] = dict
    proc: subprocess.Popen[bytes] | None = None

    def _launch(self) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def signal(self, signum: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def terminate(self, timeout: float) -> None:
        self.signal(signal.SIGTERM)
        self.wait(timeout)

    def wait(self, timeout: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=max(0.1, timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.state = PartState.STOPPED


@dataclass
class NatsPart(Part):
    """The embedded nats-server: restarted on the same store directory and port, so acked
    messages, consumers and KV survive and the services reconnect to the same URL."""

    nats: EmbeddedNats | None = None

    def _launch(self) -> None:
        assert self.nats is not None
        try:
            self.nats.start()
        except NatsServerError as exc:
            raise PartStartError(str(exc)) from exc

    def exit_code(self) -> int | None:
        return self.nats.exit_code() if self.nats is not None else None

    @property
    def pid(self) -> int | None:
        return self.nats.pid if self.nats is not None else None

    def terminate(self, timeout: float) -> None:
        if self.nats is not None:
            self.nats.stop(timeout)
        self.state = PartState.STOPPED


def tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"
