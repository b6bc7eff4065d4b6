"""The retention policy applied periodically by the server: a thin loop over ``aifactory.gc``.

The server already holds what gc needs (both registries and the executor), so a long-lived
stack keeps its job folders bounded without anyone running ``aifactory gc --apply``. Every
decision is the library's; a round that cannot read the registry removes nothing.
"""

from __future__ import annotations

import asyncio
import logging

from nats.errors import Error as NatsError

from aifactory import gc
from aifactory.services.server.metrics import ServerMetrics
from aifactory.shared.executors.base import Executor
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.settings import Settings

log = logging.getLogger(__name__)

#: The first round waits this long (capped by the interval): start-up comes first.
FIRST_DELAY_S = 60.0


async def collect_once(
    settings: Settings,
    executor: Executor,
    services: KVRegistry[ServiceRecord],
    benchmarks: KVRegistry[BenchmarkRecord],
    metrics: ServerMetrics,
) -> list[gc.Outcome]:
    try:
        registries = await gc.Registries.read(services, benchmarks)
    except (NatsError, TimeoutError) as exc:
        log.warning("retention: registry unreadable, nothing removed this round: %s", exc)
        return []
    outcomes = []
    for kind in gc.Kind:
        policy = gc.policy_of(kind, settings)
        if not policy.limited:
            continue
        try:
            plan = await gc.plan(
                kind,
                gc.root_of(kind, settings),
                policy,
                registries=registries,
                executor=executor,
            )
            outcome = await gc.apply(plan)
        except (OSError, gc.RefusedPath) as exc:
            log.warning("retention of %s folders failed: %s", kind.value, exc)
            continue
        metrics.gc_removed.labels(kind.value).inc(len(outcome.removed))
        metrics.gc_freed.labels(kind.value).inc(outcome.bytes_freed)
        if outcome.removed or outcome.failed:
            log.info(
                "retention: removed %d %s folders (%d bytes), %d could not be removed",
                len(outcome.removed),
                kind.value,
                outcome.bytes_freed,
                len(outcome.failed),
            )
        outcomes.append(outcome)
    return outcomes


async def retention_loop(
    settings: Settings,
    executor: Executor,
    services: KVRegistry[ServiceRecord],
    benchmarks: KVRegistry[BenchmarkRecord],
    metrics: ServerMetrics,
) -> None:
    """Every ``retention.interval_hours``, for ever (start it only when that is set)."""
    interval = settings.retention.interval_hours
    assert interval is not None, "start the loop only with an interval"
    await asyncio.sleep(min(FIRST_DELAY_S, interval * 3600))
    while True:
        await collect_once(settings, executor, services, benchmarks, metrics)
        await asyncio.sleep(interval * 3600)
