"""Forward OpenAI-compatible calls to a service's replicas: round-robin with failover.

A replica that refuses the connection or answers 5xx is skipped for this request and the
next one is tried, so one dead replica of four costs latency, not errors.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import httpx

from aifactory.shared.messages import Endpoint


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
