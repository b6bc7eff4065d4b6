"""The poller: one batched scheduler query per interval for every tracked job.

Back-off doubles the interval while the scheduler fails (slurmctld restarting, a login node
under load) up to ``poll_max_interval`` and snaps back after the first success, so a
struggling controller is not hammered by a fleet of aifactory servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from aifactory.services.server.health import probe_all
from aifactory.services.server.lifecycle import Lifecycle
from aifactory.shared.executors.base import ExecutorError
from aifactory.shared.registry import ServiceRecord
from aifactory.shared.states import ServiceState

log = logging.getLogger(__name__)

#: States in which a service's endpoints must be reachable from here (health checks, use).
_REACHABLE = (ServiceState.STARTING, ServiceState.RUNNING)


class Tracker:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self.settings = lifecycle.settings
        self.interval = self.settings.poll_interval
        self._wake = asyncio.Event()
        self._last_health: dict[str, float] = {}

    def wake(self) -> None:
        """Poll now (a job was just submitted or cancelled)."""
        self._wake.set()

    async def run(self) -> None:
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    starting = await self.poll_once(client)
                except Exception:
                    # A bus hiccup (NATS reconnecting, a KV timeout) must not end tracking:
                    # log it, back off like a scheduler failure, and try again.
                    log.exception("poll failed; retrying in %.1fs", self.interval)
                    self.lifecycle.metrics.poll_errors.inc()
                    self.interval = min(self.interval * 2, self.settings.poll_max_interval)
                    starting = False
                delay = self.interval
                if starting:
                    delay = min(delay, self.settings.health_interval)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def poll_once(self, client: httpx.AsyncClient) -> bool:
        """One poll; returns whether some service is waiting for its health check."""
        lc = self.lifecycle
        lc.metrics.tracked.set(len(lc.tracked))
        if not lc.tracked:
            return False
        job_ids: dict[str, str] = {}
        records: dict[str, ServiceRecord] = {}
        for service_id in list(lc.tracked):
            found = await lc.registry.get(service_id)
            if found is None or found[0].job_id is None or found[0].state.is_terminal:
                lc.tracked.discard(service_id)
                continue
            records[service_id] = found[0]
            job_ids[service_id] = found[0].job_id
        if not job_ids:
            return False
        started = time.perf_counter()
        try:
            statuses = await lc.executor.states(list(job_ids.values()))
        except ExecutorError as exc:
            lc.metrics.poll_errors.inc()
            self.interval = min(self.interval * 2, self.settings.poll_max_interval)
            log.warning("scheduler query failed (next try in %.1fs): %s", self.interval, exc)
            return False
        lc.metrics.polls.inc()
        lc.metrics.poll_seconds.observe(time.perf_counter() - started)
        self.interval = self.settings.poll_interval
        waiting = False
        checks = []
        for service_id, job_id in job_ids.items():
            status = statuses.get(job_id)
            if status is None:
                continue
            record = await lc.apply_status(records[service_id], status)
            if record.endpoints and record.state in _REACHABLE:
                record = await self._reachable(record)
            if record.state is ServiceState.STARTING:
                waiting = True
                checks.append(self._check_health(client, record))
        if checks:
            await asyncio.gather(*checks)
        return waiting

    async def _reachable(self, record: ServiceRecord) -> ServiceRecord:
        """The record with its endpoints reachable from here (tunnels when the executor needs
        them); a failure is not fatal, the next poll tries again."""
        try:
            return await self.lifecycle.tunnels.expose(record)
        except ExecutorError as exc:
            log.warning("no tunnel to %s yet: %s", record.service_id, exc)
            return record

    async def _check_health(self, client: httpx.AsyncClient, record: ServiceRecord) -> None:
        recipe = record.spec
        assert recipe is not None, "a starting service has its recipe"
        now = time.monotonic()
        last = self._last_health.get(record.service_id, 0.0)
        if now - last < recipe.health.interval:
            return
        self._last_health[record.service_id] = now
        if not record.endpoints:
            record = await self.lifecycle.discover_endpoints(record)
            if record.endpoints:  # probed (and published) through the tunnels, if any
                record = await self._reachable(record)
        if not record.endpoints:
            if self.lifecycle.health_deadline_passed(record, recipe.health.timeout):
                await self.lifecycle.mark_unhealthy(
                    record,
                    f"no connection file within {recipe.health.timeout:g}s of the job "
                    "starting: the job never got to choose its ports (see its output)",
                )
            return
        problems = await probe_all(client, record.endpoints, recipe.health.path)
        if not problems:
            self._last_health.pop(record.service_id, None)
            await self.lifecycle.mark_ready(record)
            return
        if self.lifecycle.health_deadline_passed(record, recipe.health.timeout):
            self._last_health.pop(record.service_id, None)
            reason = (
                f"not healthy within {recipe.health.timeout:g}s of the job starting: "
                + "; ".join(problems[:3])
            )
            await self.lifecycle.mark_unhealthy(record, reason)
