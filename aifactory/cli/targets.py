"""Resolve a benchmark target given as a URL or as a deployed service's id."""

from __future__ import annotations

import asyncio
import re

from aifactory.cli.busclient import BusUnavailable, bus
from aifactory.shared.messages.base import ID_PATTERN
from aifactory.shared.registry import KVRegistry, ServiceRecord, TargetNotReady, service_urls
from aifactory.shared.settings import Settings


class TargetNotFound(ValueError):
    """The target is neither a URL nor a running service's id."""


async def _service_urls(settings: Settings, service_id: str) -> list[str]:
    async with bus(settings) as (_, topology):
        found = await KVRegistry(topology.services, ServiceRecord).get(service_id)
    try:
        return service_urls(service_id, found[0] if found else None)
    except TargetNotReady as exc:
        raise TargetNotFound(f"--target: {exc}") from None


def resolve_target(settings: Settings, target: str) -> list[str]:
    """A URL is used as given; anything shaped like a service id is looked up on the bus
    (every endpoint of it: the load is spread over its replicas)."""
    if target.startswith(("http://", "https://")):
        return [target]
    if not re.fullmatch(ID_PATTERN, target):
        raise TargetNotFound(f"--target: {target!r} is neither an http(s) URL nor a service id")
    try:
        return asyncio.run(_service_urls(settings, target))
    except BusUnavailable as exc:
        raise TargetNotFound(f"--target {target}: {exc}") from exc
