"""Bearer-token check for the ingress.

Loopback-only ingress may run without a token (a laptop); any other bind address must have
one, and the service refuses to start otherwise rather than expose an open control plane.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import HTTPException, Request, status


class InsecureBindError(RuntimeError):
    """The ingress would listen beyond loopback without a token."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    if token is None and not is_loopback(host):
        raise InsecureBindError(
            f"the ingress binds {host}, which is not loopback: set AIFACTORY_API_TOKEN "
            "(clients then send 'Authorization: Bearer <token>') or bind 127.0.0.1"
        )


class BearerAuth:
    """FastAPI dependency; a no-op when no token is configured."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    async def __call__(self, request: Request) -> None:
        if self._token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), self._token):
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
