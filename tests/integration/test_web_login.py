"""The web page's login on a real server process: guessing is braked, a one-click link
still works meanwhile, and ``--insecure-loopback`` opens the page (loopback only)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from aifactory.services.server.ingress.auth import FailedLogins
from aifactory.shared.natsd import EmbeddedNats
from aifactory.shared.weblogin import login_link
from tests.integration.server_stack import TEST_TOKEN, ServerProcess, write_test_recipes

pytestmark = pytest.mark.nats


def _server(tmp_path: Path, nats_server: EmbeddedNats, **env: str) -> ServerProcess:
    write_test_recipes(tmp_path / "recipes", port=1)
    return ServerProcess(tmp_path, nats_server.url, executor="local", **env).start()


def test_failed_logins_are_braked_but_a_login_link_still_works(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    server = _server(tmp_path, nats_server)
    try:
        origin = {"Origin": server.base}
        with httpx.Client(base_url=server.base, headers=origin) as client:
            for _ in range(FailedLogins().limit):  # one brake with the API's bearer check
                wrong = client.post("/login", data={"token": "guess", "next": "/"})
                assert wrong.status_code == 401
                assert "not this stack&#39;s token" in wrong.text
            braked = client.post("/login", data={"token": TEST_TOKEN, "next": "/"})
            assert braked.status_code == 429 and int(braked.headers["Retry-After"]) > 0
            assert "set-cookie" not in braked.headers  # not even the right token, for now
            # The owner's one-click link is a signed ticket: no guess can make one.
            via_link = client.get(login_link(server.base, TEST_TOKEN).removeprefix(server.base))
            assert via_link.status_code == 303 and via_link.headers["location"] == "/"
            cookie = via_link.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
            assert TEST_TOKEN.lower() not in cookie
            page = client.get("/services", headers={"Accept": "text/html"})
            assert page.status_code == 200 and "<h1>Services</h1>" in page.text
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["x-content-type-options"] == "nosniff"
    finally:
        server.stop()


def test_insecure_loopback_opens_the_page_on_loopback(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    server = _server(tmp_path, nats_server, AIFACTORY_INSECURE_LOOPBACK="true")
    try:
        page = httpx.get(f"{server.base}/services", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "--insecure-loopback" in page.text and "Log out" not in page.text
        assert httpx.get(f"{server.base}/api/v1/services").status_code == 200
        rebound = httpx.get(f"{server.base}/services", headers={"Host": "evil.example"})
        assert rebound.status_code == 421  # open, but only to loopback names
    finally:
        server.stop()
