"""Tunnels to deployed services, for a server outside the cluster (``slurm+ssh``).

A service on a compute node (``node12:8000``) cannot be reached from a laptop. The executor
can make it reachable (:meth:`Executor.expose`: an SSH port forward on 127.0.0.1); this
records the result in the registry as each endpoint's ``local_url`` next to its cluster
``url``, so the health check, the ingress proxy, benchmarks run from here and the monitor
use the tunnel while workers on compute nodes keep using the cluster's URL.

Every poll of a starting or running service calls :meth:`Tunnels.expose`: cheap while the
forwards live (no remote round trip, no registry write), and it re-opens one that dropped,
on its old port when that is free, so recorded URLs stay valid across reconnects and
server restarts. The forwards close when the service ends. For executors that run on the
cluster ``expose`` answers None and nothing is written.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from aifactory.shared.executors.base import Executor, ExecutorError
from aifactory.shared.registry import KVRegistry, ServiceRecord

log = logging.getLogger(__name__)


class Tunnels:
    def __init__(self, executor: Executor, registry: KVRegistry[ServiceRecord]) -> None:
        self.executor = executor
        self.registry = registry

    async def expose(self, record: ServiceRecord) -> ServiceRecord:
        """Make every endpoint reachable from here and record how; the record as stored."""
        urls: list[str | None] = []
        for e in record.endpoints:
            address = await self.executor.expose(e.host, e.port, prefer_port=_port_of(e.local_url))
            urls.append(None if address is None else _with_address(e.url, address))
        if urls == [e.local_url for e in record.endpoints]:
            return record
        where = [(e.host, e.port) for e in record.endpoints]

        def attach(r: ServiceRecord) -> ServiceRecord | None:
            if r.state.is_terminal or [(e.host, e.port) for e in r.endpoints] != where:
                return None
            r.endpoints = [
                e.model_copy(update={"local_url": url})
                for e, url in zip(r.endpoints, urls, strict=True)
            ]
            return r

        return await self.registry.update(record.service_id, attach)

    async def release(self, record: ServiceRecord) -> None:
        """Close the tunnels of a service that ended (none open is fine)."""
        for e in record.endpoints:
            try:
                await self.executor.unexpose(e.host, e.port)
            except ExecutorError as exc:
                log.warning("closing the tunnel to %s:%s: %s", e.host, e.port, exc)


def _port_of(url: str | None) -> int | None:
    return urlsplit(url).port if url else None


def _with_address(url: str, address: tuple[str, int]) -> str:
    """``url`` with its host and port replaced (scheme and path kept)."""
    host, port = address
    shown = f"[{host}]" if ":" in host else host
    return urlsplit(url)._replace(netloc=f"{shown}:{port}").geturl()
