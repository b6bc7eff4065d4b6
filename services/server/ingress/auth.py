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

from fastapi import HTTPException, Request, status

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
