"""The web page's access rules: session cookies, login tickets, the login brake, origins."""

from __future__ import annotations

import time

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from aifactory.services.server.ingress.web.guard import (
    WebGuard,
    check_same_origin,
    login_location,
    safe_next,
)
from aifactory.services.server.ingress.web.sessions import Sessions, cookie_name
from aifactory.shared.weblogin import TicketError, check_ticket, login_link, make_ticket

TOKEN = "t" * 43


def _request(headers: dict[str, str], method: str = "POST", path: str = "/services/new") -> Request:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "scheme": "http",
        "server": ("127.0.0.1", 8001),
    }
    return Request(scope)


def test_a_session_cookie_is_signed_and_holds_no_token() -> None:
    sessions = Sessions(TOKEN)
    value, max_age = sessions.new_cookie()
    assert TOKEN not in value and max_age > 3600
    assert sessions.check_cookie(value)
    version, expires, nonce, mac = value.split(".")
    forged = ".".join([version, str(int(expires) + 10_000), nonce, mac])
    assert not sessions.check_cookie(forged)  # a longer life is not for the taking
    assert not sessions.check_cookie(value[:-2] + "xx")
    assert not sessions.check_cookie(None) and not sessions.check_cookie("v1.1.2")
    assert not Sessions("another token").check_cookie(value)  # rotating the token logs out


def test_a_session_expires_and_logging_out_revokes_it() -> None:
    sessions = Sessions(TOKEN)
    old, _ = sessions.new_cookie(now=time.time() - 13 * 3600)
    assert not sessions.check_cookie(old)
    value, _ = sessions.new_cookie()
    sessions.revoke(value)
    assert not sessions.check_cookie(value)
    other, _ = sessions.new_cookie()
    assert sessions.check_cookie(other)


def test_a_login_ticket_works_once_and_only_for_its_stack() -> None:
    sessions = Sessions(TOKEN)
    ticket = make_ticket(TOKEN)
    assert TOKEN not in ticket
    sessions.use_ticket(ticket)
    with pytest.raises(TicketError, match="used already"):
        sessions.use_ticket(ticket)
    with pytest.raises(TicketError, match="not made for this stack"):
        Sessions("another token").use_ticket(make_ticket(TOKEN))
    with pytest.raises(TicketError, match="expired"):
        check_ticket(TOKEN, make_ticket(TOKEN, ttl_s=-1))
    for bad in ("", "a.b", "a.b.c", "x" * 300, "n.123.."):
        with pytest.raises(TicketError):
            check_ticket(TOKEN, bad)


def test_the_login_link_carries_a_ticket_not_the_token() -> None:
    link = login_link("http://127.0.0.1:8001/", TOKEN)
    assert link.startswith("http://127.0.0.1:8001/login?ticket=")
    assert TOKEN not in link
    Sessions(TOKEN).use_ticket(link.split("ticket=", 1)[1])


def test_cookies_are_per_port() -> None:
    assert cookie_name(8001) != cookie_name(8002)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "/"),
        ("/benchmarks/abc", "/benchmarks/abc"),
        ("/services?x=1", "/services?x=1"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_after_login_only_local_paths(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected
    assert login_location(expected).startswith("/login")


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"host": "127.0.0.1:8001", "origin": "http://127.0.0.1:8001"}, True),
        ({"host": "127.0.0.1:8001", "origin": "http://evil.example"}, False),
        ({"host": "127.0.0.1:8001", "origin": "http://127.0.0.1:9999"}, False),
        ({"host": "127.0.0.1:8001", "origin": "null", "sec-fetch-site": "same-origin"}, True),
        ({"host": "127.0.0.1:8001", "origin": "null", "sec-fetch-site": "cross-site"}, False),
        ({"host": "127.0.0.1:8001"}, False),  # curl with a stolen cookie: use the API
        ({"host": "127.0.0.1:8001", "sec-fetch-site": "same-origin"}, True),
    ],
)
def test_state_changing_posts_must_come_from_this_origin(
    headers: dict[str, str], allowed: bool
) -> None:
    request = _request(headers)
    if allowed:
        check_same_origin(request)
    else:
        with pytest.raises(HTTPException) as err:
            check_same_origin(request)
        assert err.value.status_code == 403


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8001", True),
        ("localhost:8001", True),
        ("[::1]:8001", True),
        ("127.0.0.1", True),
        ("rebound.evil.example:8001", False),
        ("10.0.0.5:8001", False),
    ],
)
def test_a_loopback_ingress_answers_pages_only_for_loopback_names(host: str, allowed: bool) -> None:
    guard = WebGuard(Sessions(TOKEN), "127.0.0.1")
    request = _request({"host": host}, method="GET")
    if allowed:
        guard.check_host(request)
    else:
        with pytest.raises(HTTPException) as err:
            guard.check_host(request)
        assert err.value.status_code == 421
    WebGuard(Sessions(TOKEN), "0.0.0.0").check_host(request)  # bound wide: names vary


def test_the_bearer_header_also_logs_in_and_no_token_means_open() -> None:
    guard = WebGuard(Sessions(TOKEN), "127.0.0.1")
    assert guard.logged_in(_request({"authorization": f"Bearer {TOKEN}"}, "GET"))
    assert not guard.logged_in(_request({"authorization": "Bearer nope"}, "GET"))
    assert not guard.logged_in(_request({}, "GET"))
    assert WebGuard(None, "127.0.0.1").logged_in(_request({}, "GET"))
