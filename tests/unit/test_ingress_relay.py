"""What the proxy routes answer for each kind of answer from the service."""

from __future__ import annotations

import httpx
import pytest
from fastapi import HTTPException

from aifactory.services.server.ingress.proxy import relay


def answer(status: int, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": content_type})


def test_json_success_is_passed_as_200() -> None:
    passed = relay(answer(200, b'{"data": [{"id": "m"}]}'))
    assert (passed.status_code, passed.body) == (200, b'{"data":[{"id":"m"}]}')


@pytest.mark.parametrize(
    ("status", "body", "refused", "expected", "said"),
    [
        (200, b"<html>hello</html>", 400, 502, "not JSON (HTTP 200)"),
        (404, b'{"error": {"message": "The model x does not exist."}}', 400, 404, "does not"),
        (400, b'{"error": "max_tokens too large"}', 400, 400, "a refusal (HTTP 400)"),
        (400, b'{"error": "bad"}', 502, 502, "a refusal (HTTP 400)"),
        (401, b'{"error": "api key"}', 400, 502, "needs credentials (HTTP 401)"),
    ],
)
def test_anything_else_is_a_documented_error_quoting_the_service(
    status: int, body: bytes, refused: int, expected: int, said: str
) -> None:
    with pytest.raises(HTTPException) as caught:
        relay(answer(status, body), refused=refused)
    assert caught.value.status_code == expected
    assert said in str(caught.value.detail)


def test_the_quote_is_bounded() -> None:
    with pytest.raises(HTTPException) as caught:
        relay(answer(500, b"x" * 100_000, "text/plain"))
    assert len(str(caught.value.detail)) < 500
