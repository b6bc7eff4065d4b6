"""Forward OpenAI-compatible calls to a service's replicas: round-robin with failover.

A replica that refuses the connection or answers 5xx is skipped for this request and the
next one is tried, so one dead replica of four costs latency, not errors.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import httpx
from fastapi import HTTPException
from fastapi.responses import JSONResponse

from aifactory.shared.messages import Endpoint

#: How much of a failed answer the 502's detail quotes.
QUOTED_BYTES = 300


class NoHealthyReplica(RuntimeError):
    """Every replica failed for this request; the message lists why for each."""


class ReplicaBalancer:
    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}

    def order(self, service_id: str, endpoints: Sequence[Endpoint]) -> list[Endpoint]:
        """Endpoints starting at the next one in turn for this service."""
        if not endpoints:
            return []
        counter = self._counters.setdefault(service_id, itertools.count())
        start = next(counter) % len(endpoints)
        return [*endpoints[start:], *endpoints[:start]]


async def forward(
    client: httpx.AsyncClient,
    endpoints: Sequence[Endpoint],
    method: str,
    path: str,
    *,
    json_body: Any = None,
    timeout: float = 120.0,
) -> httpx.Response:
    failures: list[str] = []
    for endpoint in endpoints:
        url = endpoint.reachable_url + path
        try:
            response = await client.request(method, url, json=json_body, timeout=timeout)
        except httpx.HTTPError as exc:
            failures.append(f"{url}: {type(exc).__name__}")
            continue
        if response.status_code >= 500:
            failures.append(f"{url}: HTTP {response.status_code}")
            continue
        return response
    raise NoHealthyReplica("no replica answered: " + "; ".join(failures or ["no endpoints"]))


def relay(response: httpx.Response, *, refused: int = 502) -> JSONResponse:
    """The service's JSON answer as the ingress's 200; anything else is an error whose detail
    quotes what came back: a 4xx or an HTML page must not pass for the ingress's own answer
    (the document promises JSON of a known shape for every status it lists).

    A 404 stays a 404 (the model named in a prompt is not served there). ``refused``: the
    status for another 4xx, which is the caller's doing for a prompt (400) and the service's
    for a plain listing (502). A service that wants credentials the ingress does not have,
    or answers garbage, is the gateway's 502.
    """
    if response.is_success:
        try:
            return JSONResponse(content=response.json())
        except ValueError:
            pass
    quoted = response.content[:QUOTED_BYTES].decode(errors="replace")
    code = response.status_code
    if response.is_success:
        status, what = 502, "a body that is not JSON"
    elif code in (401, 403, 407):
        status, what = 502, "that it needs credentials"
    else:
        status, what = (404 if code == 404 else refused), "a refusal"
    raise HTTPException(status, f"the service answered {what} (HTTP {code}): {quoted!r}")
