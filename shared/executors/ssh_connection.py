"""One persistent SSH connection to a login node: commands, SFTP and port forwards.

Why one connection and not ``ssh host squeue`` per call: a login (key exchange,
authentication) costs tens of milliseconds and more on a WAN, login nodes throttle new
logins (``MaxStartups``, fail2ban), and some sites ask for a second factor on each. asyncssh
multiplexes everything on one connection:

- commands are argument lists quoted once with :func:`shlex.join` (a value is never pasted
  into a shell string any other way), at most ``max_sessions`` at once (OpenSSH's
  ``MaxSessions``), each with a timeout;
- one SFTP client per connection moves scripts, secrets and job output;
- local port forwards reach services on compute nodes; after a reconnect they are opened
  again on the same local ports, so the URLs recorded for them stay valid.

Logging in (host keys checked, trust on first use, jump hosts) is :mod:`.ssh_hosts`.

A lost connection is re-made lazily by the next command, with exponential back-off up to
``reconnect_max_delay``; while forwards are open a watcher re-makes it at once, so a tunnel
comes back without waiting for the next poll. Each jump host (``proxy_jump``) is a
connection of its own, kept and closed with the login node's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncssh

from aifactory.shared.executors.ssh_hosts import (
    Hop,
    SshConnectionLost,
    SshError,
    login,
    parse_jumps,
)
from aifactory.shared.executors.ssh_shell import (
    CLIENT_MARGIN_S,
    KILL_AFTER_S,
    TIMED_OUT,
    RemoteShell,
    ShellBroken,
)
from aifactory.shared.settings import SshSettings

log = logging.getLogger(__name__)

#: The first reconnect waits this long; each failure doubles it up to the settings' ceiling.
FIRST_RETRY_DELAY = 0.5


@dataclass(slots=True)
class _Forward:
    """A local port forward and the connection its listener lives on."""

    host: str
    port: int
    local_port: int
    listener: asyncssh.SSHListener | None = None
    conn: asyncssh.SSHClientConnection | None = None


class SshConnection:
    """The connection the ``slurm+ssh`` executor runs everything over."""

    def __init__(self, settings: SshSettings) -> None:
        if not settings.host:
            raise SshError(
                "the slurm+ssh executor needs a login node: set AIFACTORY_SSH__HOST "
                "(and AIFACTORY_SSH__USER, AIFACTORY_SSH__KEY_FILE as needed)"
            )
        self.settings = settings
        self.target = Hop(settings.host, settings.port, settings.user)
        self.jumps = parse_jumps(settings.proxy_jump)
        #: Remote commands started so far: tests and benchmarks count round trips by it.
        self.execs = 0
        #: Successful logins to the login node (1 + reconnects).
        self.logins = 0
        self._conn: asyncssh.SSHClientConnection | None = None
        self._hops: list[asyncssh.SSHClientConnection] = []
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()
        self._sessions = asyncio.Semaphore(settings.max_sessions)
        #: Long-lived shells not running a command now (at most ``max_sessions``).
        self._idle_shells: list[RemoteShell] = []
        self._use_shells = settings.persistent_shell
        self._failures = 0
        self._retry_at = 0.0
        self._forwards: dict[tuple[str, int], _Forward] = {}
        self._forward_lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False

    # -- the connection ----------------------------------------------------------------------

    def _alive(self) -> asyncssh.SSHClientConnection | None:
        conn = self._conn
        return conn if conn is not None and not conn.is_closed() else None

    async def connection(self) -> asyncssh.SSHClientConnection:
        """The open connection, made (again) if needed, after the back-off of past failures."""
        alive = self._alive()
        if alive is not None:
            return alive
        async with self._lock:
            alive = self._alive()
            if alive is not None:
                return alive
            if self._closing:
                raise SshError(f"the connection to {self.target.label} is closed")
            self._discard()
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                conn = await self._open()
            except SshError:
                self._failures += 1
                delay = FIRST_RETRY_DELAY * 2 ** (self._failures - 1)
                self._retry_at = time.monotonic() + min(delay, self.settings.reconnect_max_delay)
                raise
            self._failures, self._retry_at = 0, 0.0
            if self.logins:
                log.info("reconnected to %s", self.target.label)
            self._conn, self.logins = conn, self.logins + 1
            await self._prime(conn)
            await self._reopen_forwards(conn)
            return conn

    async def _prime(self, conn: asyncssh.SSHClientConnection) -> None:
        """Open the SFTP session at once: sshd sets TCP_NODELAY on a connection with its
        first session, and until then each forwarded reply waits ~40 ms (Nagle against
        delayed ACKs, measured in perf/ssh_tunnel.py). SFTP is needed anyway."""
        try:
            self._sftp = await asyncio.wait_for(
                conn.start_sftp_client(), self.settings.command_timeout
            )
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            log.warning("no SFTP on %s (job files cannot be moved): %s", self.target.label, exc)
            with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
                await conn.run("true", check=False, timeout=self.settings.command_timeout)

    @property
    def username(self) -> str:
        """The user we are logged in as on the cluster (after :meth:`connection`)."""
        conn = self._alive()
        if conn is None:
            raise SshError(f"not connected to {self.target.label}")
        return str(conn.get_extra_info("username"))

    async def _open(self) -> asyncssh.SSHClientConnection:
        opened: list[asyncssh.SSHClientConnection] = []
        try:
            for hop in [*self.jumps, self.target]:
                opened.append(await login(self.settings, hop, opened[-1] if opened else None))
        except BaseException:
            for conn in reversed(opened):
                conn.close()
            raise
        self._hops = opened[:-1]
        return opened[-1]

    def _discard(self) -> None:
        """Forget a dead connection and everything that lived on it."""
        self._sftp = None
        for shell in self._idle_shells:
            shell.close()
        self._idle_shells.clear()
        for conn in [*self._hops, *([self._conn] if self._conn is not None else [])]:
            conn.close()
        self._hops, self._conn = [], None

    async def close(self) -> None:
        """Close forwards, SFTP, the connection and the jump hosts; no reconnect after."""
        self._closing = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for forward in self._forwards.values():
            if forward.listener is not None:
                forward.listener.close()
        self._forwards.clear()
        conns = [*self._hops, *([self._conn] if self._conn is not None else [])]
        self._discard()
        for conn in reversed(conns):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)

    # -- commands ------------------------------------------------------------------------------

    async def run(self, argv: Sequence[str], *, retry: bool = True) -> tuple[int, str, str]:
        """Run ``argv`` on the login node: exit status, stdout, stderr.

        The command line is ``shlex.join(argv)``: each argument reaches the remote program
        unchanged, whatever it holds. It runs under ``timeout`` there, so it cannot outlive
        ``command_timeout`` (raises :class:`SshError` when it had to be stopped). With
        ``retry`` a command cut off by a lost connection runs once more on a new one (for
        commands safe to repeat); without, it raises :class:`SshConnectionLost` and the
        caller decides.
        """
        timeout = self.settings.command_timeout
        for attempt in (1, 2):
            conn = await self.connection()
            self.execs += 1
            try:
                async with self._sessions:
                    if self._use_shells:
                        result = await self._in_shell(conn, argv, timeout)
                    else:
                        result = await self._exec(conn, argv, timeout)
                if result[0] == TIMED_OUT:  # ``timeout`` stopped it over there
                    raise ShellBroken("stopped at its deadline", timed_out=True)
                return result
            except (asyncssh.Error, OSError, ShellBroken) as exc:
                timed_out = isinstance(exc, asyncssh.TimeoutError) or getattr(
                    exc, "timed_out", False
                )
                lost = conn.is_closed() or isinstance(exc, asyncssh.ConnectionLost | ShellBroken)
                if conn.is_closed():
                    self._drop(conn)
                cut_off = SshConnectionLost(
                    f"{argv[0]} on {self.target.label} was cut off ({exc}); it may or may "
                    "not have run"
                )
                if (lost or timed_out) and not retry:
                    raise cut_off from exc  # the caller must find out whether it ran
                if timed_out:
                    raise SshError(
                        f"{argv[0]} did not answer within {timeout:g} s on {self.target.label}"
                    ) from None
                if not lost:
                    raise SshError(f"{argv[0]} on {self.target.label}: {exc}") from exc
                if attempt == 2:
                    raise cut_off from exc
                log.info("%s cut off on %s (%s): again", argv[0], self.target.label, exc)
        raise AssertionError("unreachable")

    async def _in_shell(
        self, conn: asyncssh.SSHClientConnection, argv: Sequence[str], timeout: float
    ) -> tuple[int, str, str]:
        """On an idle shell of this connection, or a new one (see :mod:`.ssh_shell`)."""
        shell = None
        while self._idle_shells:
            candidate = self._idle_shells.pop()
            if candidate.conn is conn and candidate.alive:
                shell = candidate
                break
            candidate.close()
        if shell is None:
            try:
                shell = await RemoteShell(conn).start(timeout)
            except ShellBroken as exc:
                if conn.is_closed():
                    raise
                self._use_shells = False
                log.warning(
                    "no long-lived shell on %s (%s): one exec per command from now on, each "
                    "paying the login shell's start-up",
                    self.target.label,
                    exc,
                )
                return await self._exec(conn, argv, timeout)
        result = await shell.run(argv, timeout)  # a broken shell closes itself and raises
        self._idle_shells.append(shell)
        return result

    async def _exec(
        self, conn: asyncssh.SSHClientConnection, argv: Sequence[str], timeout: float
    ) -> tuple[int, str, str]:
        """One exec channel: the login shell runs ``timeout … argv``."""
        bounded = ["timeout", "-k", str(KILL_AFTER_S), f"{timeout:g}", *argv]
        result = await conn.run(
            shlex.join(bounded),
            check=False,
            timeout=timeout + CLIENT_MARGIN_S,
            stdin=asyncssh.DEVNULL,
            encoding="utf-8",
            errors="replace",
        )
        if result.returncode is None:
            raise ShellBroken("the session ended without an exit status")
        return result.returncode, str(result.stdout or ""), str(result.stderr or "")

    def _drop(self, conn: asyncssh.SSHClientConnection) -> None:
        if self._conn is conn:
            self._discard()

    async def sftp(self) -> asyncssh.SFTPClient:
        """The connection's SFTP client (started once per connection)."""
        conn = await self.connection()
        if self._sftp is None:
            try:
                self._sftp = await asyncio.wait_for(
                    conn.start_sftp_client(), self.settings.command_timeout
                )
            except (asyncssh.Error, OSError, TimeoutError) as exc:
                raise SshError(f"SFTP on {self.target.label}: {exc}") from exc
        return self._sftp

    def forget_sftp(self, sftp: asyncssh.SFTPClient) -> None:
        """Drop an SFTP client that failed, so the next call starts a fresh one."""
        if self._sftp is sftp:
            self._sftp = None
            sftp.exit()

    # -- port forwards -------------------------------------------------------------------------

    async def forward(self, host: str, port: int, prefer_port: int | None = None) -> int:
        """A local port on 127.0.0.1 that leads to ``host:port`` as the login node sees it.

        Repeated calls return the same port while the forward lives; a forward lost with
        its connection is opened again, on its old port when that is free.
        """
        async with self._forward_lock:  # two callers must not open two listeners
            conn = await self.connection()
            key = (host, port)
            forward = self._forwards.get(key)
            if forward is not None and forward.conn is conn and forward.listener is not None:
                return forward.local_port
            wanted = forward.local_port if forward is not None else prefer_port
            forward = await self._listen(conn, host, port, wanted)
            self._forwards[key] = forward
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="ssh-reconnect")
        return forward.local_port

    async def unforward(self, host: str, port: int) -> None:
        forward = self._forwards.pop((host, port), None)
        if forward is not None and forward.listener is not None:
            forward.listener.close()

    @property
    def forwards(self) -> dict[tuple[str, int], int]:
        """Open forwards: ``(host, port)`` → local port."""
        return {key: f.local_port for key, f in self._forwards.items()}

    async def _listen(
        self, conn: asyncssh.SSHClientConnection, host: str, port: int, wanted: int | None
    ) -> _Forward:
        for local in [wanted, 0] if wanted else [0]:
            try:
                listener = await conn.forward_local_port("127.0.0.1", local, host, port)
            except OSError as exc:
                if local == 0:
                    raise SshError(f"cannot listen for a forward to {host}:{port}: {exc}") from exc
                log.info("local port %s is taken; forwarding %s:%s elsewhere", local, host, port)
                continue
            return _Forward(host, port, listener.get_port(), listener, conn)
        raise AssertionError("unreachable")

    async def _reopen_forwards(self, conn: asyncssh.SSHClientConnection) -> None:
        for key, old in list(self._forwards.items()):
            try:
                self._forwards[key] = await self._listen(conn, old.host, old.port, old.local_port)
            except SshError as exc:
                log.warning("forward to %s:%s not re-opened: %s", old.host, old.port, exc)
                old.listener, old.conn = None, None

    async def _watch(self) -> None:
        """While forwards are open, reconnect as soon as the connection drops."""
        while self._forwards and not self._closing:
            conn = self._alive()
            if conn is not None:
                await conn.wait_closed()
                if self._closing or not self._forwards:
                    return
                log.warning("connection to %s lost; reconnecting", self.target.label)
            try:
                await self.connection()
            except SshError as exc:
                log.warning("reconnect to %s failed: %s", self.target.label, exc)
