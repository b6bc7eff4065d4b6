"""Health probing of deployed services' endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx

from aifactory.shared.messages import Endpoint


async def probe(client: httpx.AsyncClient, url: str, timeout: float) -> str | None:
    """``None`` when healthy, else a short reason (kept in the registry for the user)."""
    try:
        response = await client.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"{url}: {type(exc).__name__}: {exc}" if str(exc) else f"{url}: {type(exc).__name__}"
    if 200 <= response.status_code < 300:
        return None
    return f"{url}: HTTP {response.status_code}"


async def probe_all(
    client: httpx.AsyncClient, endpoints: Sequence[Endpoint], path: str, timeout: float = 2.0
) -> list[str]:
    """Reasons for every unhealthy endpoint; empty means all replicas answer."""
    results = await asyncio.gather(
        *(probe(client, e.reachable_url + path, timeout) for e in endpoints)
    )
    return [r for r in results if r is not None]
