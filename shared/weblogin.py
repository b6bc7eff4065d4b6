"""One-click login links for the web page: short-lived, single-use, signed tickets.

A browser cannot read the state directory, and pasting a 43-character token is a chore; so
``aifactory up`` and ``aifactory web`` print a link carrying a *ticket*, never the token:
``<nonce>.<expiry>.<mac>``, where the MAC is an HMAC-SHA256 under a key derived from the
ingress token. Whoever holds the token (the CLI, reading ``credentials.json``) can mint
one; the ingress checks the MAC and the expiry and remembers the nonce until then, so a
link works once, for a minute or two, and reveals nothing that outlives it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import quote

#: How long a printed login link stays usable.
TICKET_TTL_S = 300
#: Where the ingress takes a ticket.
LOGIN_PATH = "/login"


class TicketError(ValueError):
    """A ticket that is malformed, forged or expired (the message says which)."""


def derive_key(token: str, purpose: str) -> bytes:
    """A key for one ``purpose`` only (tickets, sessions), derived from the ingress token:
    rotating the token invalidates every ticket and session made with the old one."""
    return hmac.new(token.encode(), f"aifactory-web/{purpose}".encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign(key: bytes, message: str) -> str:
    return _b64(hmac.new(key, message.encode(), hashlib.sha256).digest())


def make_ticket(token: str, *, ttl_s: float = TICKET_TTL_S, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + ttl_s)
    body = f"{secrets.token_urlsafe(16)}.{expires}"
    return f"{body}.{sign(derive_key(token, 'ticket'), body)}"


def check_ticket(token: str, ticket: str, *, now: float | None = None) -> tuple[str, int]:
    """``(nonce, expiry)`` of a genuine, unexpired ticket; the caller enforces single use."""
    parts = ticket.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(ticket) > 200:
        raise TicketError("not a login ticket")
    nonce, expires, mac = parts
    expected = sign(derive_key(token, "ticket"), f"{nonce}.{expires}")
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        raise TicketError("this login link was not made for this stack")
    if int(expires) < (time.time() if now is None else now):
        raise TicketError("this login link has expired: run 'aifactory web' for a new one")
    return nonce, int(expires)


def login_link(ingress_url: str, token: str, *, ttl_s: float = TICKET_TTL_S) -> str:
    """The URL to open: the page logs the browser in and forgets the ticket."""
    ticket = make_ticket(token, ttl_s=ttl_s)
    return f"{ingress_url.rstrip('/')}{LOGIN_PATH}?ticket={quote(ticket, safe='')}"
