"""Browser sessions of the web page: signed cookies and single-use login tickets.

The cookie never holds the token. It is ``v1.<expiry>.<nonce>.<mac>``, the MAC an
HMAC-SHA256 under a key derived from the token (:func:`aifactory.shared.weblogin.derive_key`),
so the server checks it without storing sessions, a stolen cookie dies at its expiry (or at
logout, or when the token is rotated), and nothing in the browser can be turned back into
the token.
"""

from __future__ import annotations

import hmac
import secrets
import time

from aifactory.shared.weblogin import TicketError, check_ticket, derive_key, sign

#: How long a login lasts.
SESSION_TTL_S = 12 * 3600


def cookie_name(port: int | None) -> str:
    """Per port: two stacks on one machine (or two users' stacks seen from one browser)
    must not overwrite each other's session; cookies are not kept apart by port."""
    return f"aif_session_{port or 80}"


class Sessions:
    """Makes and checks session cookies and login tickets for one ingress token."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._key = derive_key(token, "session")
        #: Logged-out session nonces and used ticket nonces, until they would expire anyway.
        self._revoked: dict[str, float] = {}
        self._tickets_used: dict[str, float] = {}

    def check_token(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._token.encode())

    def new_cookie(self, *, now: float | None = None) -> tuple[str, int]:
        """``(value, max_age)`` of a fresh session."""
        expires = int((time.time() if now is None else now) + SESSION_TTL_S)
        body = f"v1.{expires}.{secrets.token_urlsafe(16)}"
        return f"{body}.{sign(self._key, body)}", SESSION_TTL_S

    def check_cookie(self, value: str | None, *, now: float | None = None) -> bool:
        parts = (value or "").split(".")
        if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit():
            return False
        body = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3].encode(), sign(self._key, body).encode()):
            return False
        current = time.time() if now is None else now
        return int(parts[1]) >= current and parts[2] not in self._revoked

    def revoke(self, value: str | None) -> None:
        if self.check_cookie(value):
            _, expires, nonce, _ = (value or "").split(".")
            self._prune(self._revoked)
            self._revoked[nonce] = float(expires)

    def use_ticket(self, ticket: str, *, now: float | None = None) -> None:
        """Accept a login ticket once (raises :class:`TicketError` otherwise)."""
        nonce, expires = check_ticket(self._token, ticket, now=now)
        self._prune(self._tickets_used)
        if nonce in self._tickets_used:
            raise TicketError("this login link was used already: run 'aifactory web' for a new one")
        self._tickets_used[nonce] = float(expires)

    @staticmethod
    def _prune(book: dict[str, float]) -> None:
        now = time.time()
        for key in [k for k, expires in book.items() if expires < now]:
            del book[key]
