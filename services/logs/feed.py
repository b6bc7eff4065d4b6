"""From the registries to the shipper: every job the registry knows, as it changes.

Services come from the ``aif_services`` bucket (watched: a submission, a job's end are
seen at once). Benchmarks from ``aif_benchmarks``: those with workers on other nodes have
a job whose id is found by name, so they are re-examined every few seconds until their
job is known and, later, over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.errors import Error as NatsError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from aifactory.logs.jobs import BenchJobs, service_job
from aifactory.logs.shipper import FOLLOW_ERRORS, JobSpec, LogShipper
from aifactory.services.logs.metrics import LogsMetrics
from aifactory.shared.registry import BenchmarkRecord, ServiceRecord

log = logging.getLogger(__name__)

_DELETES = ("DEL", "PURGE")
#: How often benchmarks with a workers' job are re-examined, and failed updates retried.
RESCAN_INTERVAL = 2.0
#: How often the connection's reconnect count is looked at.
RECONNECT_CHECK = 0.5

KeyEntry = KeyValue.Entry


class RegistryFeed:
    """``reconnects``: the bus connection's reconnect count. A restarted nats-server drops a
    KV watch's consumer without a word, so after a reconnect each bucket is watched again
    (its snapshot replays every record; tracking an unchanged job changes nothing)."""

    def __init__(
        self,
        shipper: LogShipper,
        benches: BenchJobs,
        metrics: LogsMetrics,
        reconnects: Callable[[], int],
    ) -> None:
        self.reconnects = reconnects
        self.shipper = shipper
        self.bench_jobs = benches
        self.metrics = metrics
        #: Benchmarks whose workers' job is not settled (found and ended) yet.
        self.benchmarks: dict[str, BenchmarkRecord] = {}
        #: Specs whose tracking failed (the bus hiccuped): tried again on the next rescan.
        self.retry: dict[str, JobSpec] = {}
        self._wake = asyncio.Event()

    async def track(self, spec: JobSpec) -> None:
        try:
            await self.shipper.track(spec)
        except FOLLOW_ERRORS as exc:  # keep the feed alive; the spec is tried again
            self.metrics.errors.inc()
            log.warning("cannot follow %s yet (%s: %s)", spec.service_id, type(exc).__name__, exc)
            self.retry[spec.service_id] = spec
            return
        self.retry.pop(spec.service_id, None)

    async def watch(
        self, kv: KeyValue, handle: Callable[[KeyEntry], Awaitable[None]], name: str
    ) -> None:
        """Hand every entry of ``kv`` to ``handle``, watching again after each reconnect."""
        while True:
            seen = self.reconnects()
            try:
                watcher = await kv.watchall()
            except (NatsError, TimeoutError) as exc:
                log.warning("cannot watch %s yet (%s); retrying", name, exc)
                await asyncio.sleep(RESCAN_INTERVAL)
                continue
            pump = asyncio.create_task(self._pump(watcher, handle))
            try:
                while not pump.done() and self.reconnects() == seen:
                    await asyncio.wait({pump}, timeout=RECONNECT_CHECK)
                if pump.done():
                    pump.result()  # its error, if it ended by one
                    return
                log.info("bus reconnected: watching %s again", name)
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, NatsError):
                    await pump
                with contextlib.suppress(NatsError, TimeoutError):
                    await watcher.stop()

    @staticmethod
    async def _pump(
        watcher: KeyValue.KeyWatcher, handle: Callable[[KeyEntry], Awaitable[None]]
    ) -> None:
        async for entry in watcher:
            if entry is not None:
                await handle(entry)

    async def service_entry(self, entry: KeyEntry) -> None:
        if entry.operation in _DELETES:
            await self.shipper.end(entry.key, "service record deleted")
            return
        if entry.value is None:
            return
        try:
            record = ServiceRecord.model_validate_json(entry.value)
        except ValidationError as exc:
            log.warning("skipping unreadable service record %s: %s", entry.key, exc)
            return
        spec = service_job(record)
        if spec is not None:
            await self.track(spec)

    async def benchmark_entry(self, entry: KeyEntry) -> None:
        if entry.value is None or entry.operation in _DELETES:
            return
        try:
            record = BenchmarkRecord.model_validate_json(entry.value)
        except ValidationError as exc:
            log.warning("skipping unreadable benchmark record %s: %s", entry.key, exc)
            return
        if BenchJobs.has_job(record):
            self.benchmarks[record.benchmark_id] = record
            self._wake.set()

    async def rescan(self) -> None:
        """Benchmarks' jobs (found by name), and specs whose tracking failed."""
        while True:
            for benchmark_id, record in list(self.benchmarks.items()):
                if record.state.is_terminal and await self.shipper.output_complete(
                    BenchJobs.log_id(benchmark_id)
                ):
                    del self.benchmarks[benchmark_id]  # done before: no scheduler query
                    continue
                spec = await self.bench_jobs.spec(record)
                if spec is None:
                    continue
                await self.track(spec)
                if spec.ended is not None and benchmark_id not in self.retry:
                    del self.benchmarks[benchmark_id]  # the shipper has the end: done here
            for spec in list(self.retry.values()):
                await self.track(spec)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=RESCAN_INTERVAL)
