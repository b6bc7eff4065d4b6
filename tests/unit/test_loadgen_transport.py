"""The lean HTTP client's request bytes (the network path is covered by integration tests)."""

from __future__ import annotations

import httptools
import pytest

from aifactory.loadgen.errors import LoadgenError
from aifactory.loadgen.transport import HttpClient


class _Req:
    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.done = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


def _parse(raw: bytes) -> _Req:
    req = _Req()
    parser = httptools.HttpRequestParser(req)
    parser.feed_data(raw)
    assert parser.get_method() == (b"POST" if req.body else b"GET")
    return req


def test_post_request_is_valid_http_with_prefix_host_and_auth() -> None:
    client = HttpClient("http://gpu-node:8000/proxy/", timeout_s=5, api_key="sk-1")
    body = b'{"prompt": "hi"}'
    req = _parse(HttpClient.post_payload(client.post_head("/v1/completions"), body))
    assert req.done
    assert req.url == b"/proxy/v1/completions"
    assert req.headers[b"host"] == b"gpu-node:8000"
    assert req.headers[b"authorization"] == b"Bearer sk-1"
    assert req.headers[b"content-length"] == str(len(body)).encode()
    assert req.body == body
    get = _parse(client.get_payload("/v1/models"))
    assert get.url == b"/proxy/v1/models" and get.done
    assert client.url("/v1/models") == "http://gpu-node:8000/proxy/v1/models"


def test_rejects_non_http_urls() -> None:
    with pytest.raises(LoadgenError, match="not an http"):
        HttpClient("ftp://x", timeout_s=1)
