"""Bearer-token check for the ingress.

The ingress always requires its token, loopback included: on a shared login node every
local user can reach 127.0.0.1. ``aifactory up`` generates the token and the CLI and web
page pick it up from the state directory. ``--insecure-loopback`` (demos) drops the check,
and only where the ingress listens on loopback.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

log = logging.getLogger(__name__)


class InsecureBindError(RuntimeError):
    """The ingress would listen beyond loopback without a token."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None, *, insecure_loopback: bool = False) -> None:
    """Refuse to serve without a token, unless asked to on loopback (and then warn)."""
    if token is not None:
        return
    if insecure_loopback and is_loopback(host):
        log.warning(
            "the ingress answers WITHOUT a token (--insecure-loopback): every user of this "
            "machine can deploy, cancel and prompt through it; for demos only"
        )
        return
    if insecure_loopback:
        raise InsecureBindError(
            f"--insecure-loopback only applies on loopback, and the ingress binds {host}"
        )
    raise InsecureBindError(
        "the ingress has no API token: start it with 'aifactory up' (which makes one), or "
        "set AIFACTORY_API_TOKEN (clients send 'Authorization: Bearer <token>')"
    )


class FailedLogins:
    """Failed authentications per client address over a sliding minute: past the limit,
    that address gets 429 (guessing a 256-bit token is hopeless anyway; this keeps a
    misbehaving script from flooding the logs and the CPU)."""

    def __init__(self, limit: int = 20, window_s: float = 60.0, max_clients: int = 10_000):
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self._failures: dict[str, list[float]] = {}

    def blocked(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        recent = self._recent(client)
        return 0.0 if len(recent) < self.limit else recent[0] + self.window_s - time.monotonic()

    def fail(self, client: str) -> None:
        if len(self._failures) >= self.max_clients and client not in self._failures:
            self._failures.pop(next(iter(self._failures)))  # forget the oldest address
        self._failures[client] = [*self._recent(client), time.monotonic()]

    def _recent(self, client: str) -> list[float]:
        cutoff = time.monotonic() - self.window_s
        return [t for t in self._failures.get(client, []) if t > cutoff]


#: Declares the scheme in the OpenAPI document (clients, ``/docs`` and contract testers see
#: that the API wants ``Authorization: Bearer``); the checks are ``BearerAuth``'s own.
BEARER_SCHEME = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="The stack's API token (`aifactory status` says where it is kept).",
)


class BearerAuth:
    """FastAPI dependency: the bearer token, compared in constant time; a no-op when no
    token is configured (``--insecure-loopback`` only)."""

    def __init__(self, token: str | None, failures: FailedLogins | None = None) -> None:
        self._token = token.encode() if token else None
        self.failures = failures or FailedLogins()

    async def __call__(
        self,
        request: Request,
        _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER_SCHEME)],
    ) -> None:
        if self._token is None:
            return
        client = request.client.host if request.client else "unknown"
        wait = self.failures.blocked(client)
        if wait > 0:
            raise HTTPException(
                status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                detail="too many failed authentications; try again later",
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), self._token):
            self.failures.fail(client)
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
