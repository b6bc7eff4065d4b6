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

from nats.js.kv import KeyValue
from pydantic import ValidationError

from aifactory.loadgen.remote.job import log_id
from aifactory.logs.jobs import BenchJobs, service_job
from aifactory.logs.shipper import FOLLOW_ERRORS, JobSpec, LogShipper
from aifactory.services.logs.metrics import LogsMetrics
from aifactory.shared.registry import BenchmarkRecord, ServiceRecord

log = logging.getLogger(__name__)

_DELETES = ("DEL", "PURGE")
#: How often benchmarks with a workers' job are re-examined, and failed updates retried.
RESCAN_INTERVAL = 2.0


class RegistryFeed:
    def __init__(self, shipper: LogShipper, benches: BenchJobs, metrics: LogsMetrics) -> None:
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

    async def services(self, kv: KeyValue) -> None:
        watcher = await kv.watchall()
        async for entry in watcher:
            if entry is not None and entry.operation in _DELETES:
                await self.shipper.end(entry.key, "service record deleted")
                continue
            if entry is None or entry.value is None:
                continue
            try:
                record = ServiceRecord.model_validate_json(entry.value)
            except ValidationError as exc:
                log.warning("skipping unreadable service record %s: %s", entry.key, exc)
                continue
            spec = service_job(record)
            if spec is not None:
                await self.track(spec)

    async def benchmarks_watch(self, kv: KeyValue) -> None:
        watcher = await kv.watchall()
        async for entry in watcher:
            if entry is None or entry.value is None or entry.operation in _DELETES:
                continue
            try:
                record = BenchmarkRecord.model_validate_json(entry.value)
            except ValidationError as exc:
                log.warning("skipping unreadable benchmark record %s: %s", entry.key, exc)
                continue
            if BenchJobs.has_job(record):
                self.benchmarks[record.benchmark_id] = record
                self._wake.set()

    async def rescan(self) -> None:
        """Benchmarks' jobs (found by name), and specs whose tracking failed."""
        while True:
            for benchmark_id, record in list(self.benchmarks.items()):
                if record.state.is_terminal and await self.shipper.output_complete(
                    log_id(benchmark_id)
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
