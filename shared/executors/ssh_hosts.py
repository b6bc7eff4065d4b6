"""Logging in to one SSH host safely: the host key checked, the refusal explained.

The host key is always checked against the ``known_hosts`` file of the settings (loaded
here, so a missing file means "nothing trusted", never "nothing checked"). A refused key is
told apart from an unknown one by looking the host up in that file:

- known host, other key: refused whatever the settings say, with what to check;
- unknown host: refused with the key's fingerprint and how to record it, or, when
  ``trust_on_first_use`` is set, the fingerprint is logged and the key appended to the
  file (created 0600) before logging in.

Jump hosts (``proxy_jump``) are logged in to through here too, one after the other, so
each gets the same checks (asyncssh's own ``tunnel="host"`` strings would use its defaults).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import asyncssh

from aifactory.shared.executors.base import ExecutorError
from aifactory.shared.settings import SshSettings

log = logging.getLogger(__name__)


class SshError(ExecutorError):
    """The login node cannot be reached, or refused the login."""


class HostKeyError(SshError):
    """A host key that known_hosts does not vouch for."""


class SshConnectionLost(SshError):
    """The connection dropped while a command ran: it may or may not have run."""


@dataclass(frozen=True, slots=True)
class Hop:
    """One host on the way: a jump host or the login node."""

    host: str
    #: None: the OpenSSH config's ``Port`` for the host, else 22.
    port: int | None = None
    user: str | None = None

    @classmethod
    def parse(cls, text: str) -> Hop:
        """``[user@]host[:port]``, IPv6 addresses in brackets, as OpenSSH's ProxyJump."""
        user, _, rest = text.strip().rpartition("@")
        port: int | None
        host, port = rest, None
        if rest.startswith("["):
            host, _, tail = rest[1:].partition("]")
            if tail.startswith(":"):
                port = _port(tail[1:], text)
        elif rest.count(":") == 1:
            host, port_text = rest.split(":")
            port = _port(port_text, text)
        if not host:
            raise SshError(f"AIFACTORY_SSH__PROXY_JUMP: {text!r} names no host")
        return cls(host=host, port=port, user=user or None)

    @property
    def label(self) -> str:
        """As known_hosts names it: ``host``, or ``[host]:port`` off port 22."""
        return self.host if self.port in (None, 22) else f"[{self.host}]:{self.port}"

    @property
    def connect_port(self) -> int | tuple[()]:
        """asyncssh's "not given" (the config's, else 22) when no port was set."""
        return self.port if self.port is not None else ()


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise SshError(f"AIFACTORY_SSH__PROXY_JUMP: bad port in {spec!r}")
    return int(text)


def parse_jumps(spec: str | None) -> list[Hop]:
    return [Hop.parse(part) for part in (spec or "").split(",") if part.strip()]


def read_known_hosts(settings: SshSettings) -> asyncssh.SSHKnownHosts:
    path = settings.known_hosts
    try:
        return asyncssh.read_known_hosts(str(path))
    except FileNotFoundError:
        return asyncssh.import_known_hosts("")  # nothing trusted: every key is unknown
    except (OSError, ValueError) as exc:
        raise SshError(f"cannot read known_hosts {path}: {exc}") from exc


#: AES-GCM first: asyncssh encrypts a packet with it in ~4 µs against ~37 µs for its
#: ChaCha20-Poly1305 (measured), which otherwise dominates a tunnel's per-request cost.
_PREFERRED_CIPHERS = (b"aes128-gcm@openssh.com", b"aes256-gcm@openssh.com")


def _ciphers() -> list[str]:
    from asyncssh.encryption import get_default_encryption_algs

    defaults = get_default_encryption_algs()
    ordered = [c for c in _PREFERRED_CIPHERS if c in defaults]
    ordered += [c for c in defaults if c not in _PREFERRED_CIPHERS]
    return [c.decode("ascii") for c in ordered]


def _options(settings: SshSettings, hop: Hop) -> dict[str, object]:
    config = settings.config_file
    options: dict[str, object] = {
        "encryption_algs": _ciphers(),
        "connect_timeout": settings.connect_timeout,
        "keepalive_interval": settings.keepalive_interval,
        "keepalive_count_max": settings.keepalive_count_max,
        # None: read no OpenSSH config at all (asyncssh's default reads ~/.ssh/config).
        "config": [str(config)] if config is not None and config.is_file() else None,
    }
    if hop.user:
        options["username"] = hop.user
    if settings.key_file is not None:
        options["client_keys"] = [str(settings.key_file)]
    return options


async def login(
    settings: SshSettings, hop: Hop, tunnel: asyncssh.SSHClientConnection | None = None
) -> asyncssh.SSHClientConnection:
    """A connection to ``hop`` (through ``tunnel``), its host key verified."""
    via: dict[str, object] = {"tunnel": tunnel} if tunnel is not None else {}
    known = read_known_hosts(settings)
    try:
        try:
            return await asyncssh.connect(
                hop.host, hop.connect_port, known_hosts=known, **via, **_options(settings, hop)
            )
        except asyncssh.HostKeyNotVerifiable:
            await unknown_host_key(settings, hop, tunnel, known)
            return await asyncssh.connect(
                hop.host,
                hop.connect_port,
                known_hosts=read_known_hosts(settings),
                **via,
                **_options(settings, hop),
            )
    except asyncssh.PermissionDenied as exc:
        who = hop.user or "the default user"
        key = settings.key_file or "the SSH agent and ~/.ssh/id_*"
        raise SshError(
            f"{hop.label} refused the login of {who} ({exc.reason}): check "
            f"AIFACTORY_SSH__USER and that the public key of {key} is in the cluster's "
            "~/.ssh/authorized_keys"
        ) from None
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        detail = str(exc) or type(exc).__name__
        raise SshError(f"cannot connect to {hop.label}: {detail}") from exc


async def unknown_host_key(
    settings: SshSettings,
    hop: Hop,
    tunnel: asyncssh.SSHClientConnection | None,
    known: asyncssh.SSHKnownHosts,
) -> None:
    """Refuse with what to do, or record the key when trust on first use is asked for."""
    path = settings.known_hosts
    recorded = known.match(hop.host, "", hop.port)[0]
    key = await asyncssh.get_server_host_key(
        hop.host, hop.connect_port, tunnel=tunnel if tunnel is not None else ()
    )
    if key is None:
        raise HostKeyError(f"{hop.label} offered no host key")
    what = f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"
    if recorded:
        raise HostKeyError(
            f"the host key of {hop.label} ({what}) differs from the one recorded in {path}. "
            "The site may have replaced it, or someone is intercepting the connection: "
            f"check with your site before removing the old entry (ssh-keygen -R "
            f"'{hop.label}' -f {path})"
        )
    if not settings.trust_on_first_use:
        raise HostKeyError(
            f"the host key of {hop.label} is unknown: {what} is not in {path}. Compare it "
            "with the fingerprints your site publishes, then record it with `aifactory ssh "
            "check --trust-on-first-use` (or AIFACTORY_SSH__TRUST_ON_FIRST_USE=true once), "
            f"or add the line `ssh-keyscan -p {hop.port or 22} {hop.host}` prints to {path}"
        )
    line = f"{hop.label} {key.export_public_key('openssh').decode().strip()}\n"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(line)
    log.warning("trusting %s on first use: %s, recorded in %s", hop.label, what, path)
