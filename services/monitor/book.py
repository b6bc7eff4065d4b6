"""The monitor's bookkeeping: registries in, targets out (scheduler, KV, file_sd).

On every registry change (and every few seconds, for exporters files a multi-node job
writes late) the running services' targets are worked out again with the monitor
library; what changed goes to the scheduler, the ``aif_targets`` bucket (the ingress's
Prometheus HTTP SD answer) and the ``file_sd`` file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from aifactory.monitor.follow import KVFollower
from aifactory.monitor.scheduler import ScrapeScheduler
from aifactory.monitor.targets import (
    ReadFile,
    benchmarked,
    expected_exporter_files,
    read_exporters,
    service_targets,
    write_file_sd,
)
from aifactory.services.monitor.metrics import MonitorMetrics
from aifactory.shared.connection import NodeExporters
from aifactory.shared.messages.monitor import ScrapeTarget, ServiceTargets
from aifactory.shared.registry import BenchmarkRecord, ServiceRecord
from aifactory.shared.states import ServiceState

log = logging.getLogger(__name__)

R = TypeVar("R", ServiceRecord, BenchmarkRecord)


class TargetBook:
    def __init__(
        self,
        *,
        services: KVFollower,
        benchmarks: KVFollower,
        targets_kv: KeyValue,
        scheduler: ScrapeScheduler,
        read: ReadFile,
        file_sd: Path,
        metrics: MonitorMetrics,
    ) -> None:
        self.services = services
        self.benchmarks = benchmarks
        self.targets_kv = targets_kv
        self.scheduler = scheduler
        self.read = read
        self.file_sd = file_sd
        self.metrics = metrics
        self.published: dict[str, list[ScrapeTarget]] = {}
        #: (service id, job id) → exporters files found so far.
        self._exporters: dict[tuple[str, str], list[NodeExporters]] = {}
        self._active: dict[str, set[str]] = {}
        self._first = True
        #: Parsed records by their stored bytes: a refresh re-parses only what changed.
        self._parsed: dict[bytes, ServiceRecord | BenchmarkRecord] = {}

    def _records(self, values: Iterable[bytes], model: type[R]) -> list[R]:
        out: list[R] = []
        parsed: dict[bytes, ServiceRecord | BenchmarkRecord] = {}
        for raw in values:
            record = self._parsed.get(raw)
            if not isinstance(record, model):
                try:
                    record = model.model_validate_json(raw)
                except ValidationError as exc:
                    log.warning("skipping an unreadable %s: %s", model.__name__, exc)
                    continue
            parsed[raw] = record
            out.append(record)
        self._parsed.update(parsed)
        return out

    async def refresh(self) -> None:
        live = set(self.services.values.values()) | set(self.benchmarks.values.values())
        self._parsed = {raw: r for raw, r in self._parsed.items() if raw in live}
        records = self._records(self.services.values.values(), ServiceRecord)
        running = [r for r in records if r.state is ServiceState.RUNNING and r.job_id]
        wanted: dict[str, list[ScrapeTarget]] = {}
        for record in running:
            wanted[record.service_id] = service_targets(record, await self._exporters_of(record))
        jobs = {(r.service_id, r.job_id) for r in running}
        self._exporters = {k: v for k, v in self._exporters.items() if k in jobs}
        await self._publish_targets(wanted)
        every = [t for targets in wanted.values() for t in targets]
        self.scheduler.set_targets(every)
        await self.scheduler.scraper.retain(t.url for t in every)
        for role in {t.role for t in every} | {
            t.role for ts in self.published.values() for t in ts
        }:
            self.metrics.targets.labels(role.value).set(sum(1 for t in every if t.role is role))
        self._set_activity(records)

    async def _exporters_of(self, record: ServiceRecord) -> list[NodeExporters]:
        assert record.job_id is not None
        key = (record.service_id, record.job_id)
        known = self._exporters.get(key)
        if known is not None and len(known) >= expected_exporter_files(record):
            return known
        found = await read_exporters(record, self.read) if expected_exporter_files(record) else []
        self._exporters[key] = found
        return found

    async def _publish_targets(self, wanted: dict[str, list[ScrapeTarget]]) -> None:
        if self._first:  # keys left by an earlier run of the monitor
            self._first = False
            try:
                stale = set(await self.targets_kv.keys()) - set(wanted)
            except NoKeysError:
                stale = set()
            self.published.update({k: [] for k in stale})
        changed = False
        for service_id, targets in wanted.items():
            if self.published.get(service_id) != targets:
                value = ServiceTargets(service_id=service_id, targets=targets)
                await self.targets_kv.put(service_id, value.model_dump_json().encode())
                self.published[service_id] = targets
                changed = True
        for service_id in set(self.published) - set(wanted):
            try:
                await self.targets_kv.delete(service_id)
            except KeyNotFoundError:
                log.debug("targets of %s were already gone", service_id)
            del self.published[service_id]
            changed = True
        if changed or not self.file_sd.exists():
            every = [t for targets in wanted.values() for t in targets]
            await asyncio.to_thread(write_file_sd, self.file_sd, every)

    def _set_activity(self, records: list[ServiceRecord]) -> None:
        runs = self._records(self.benchmarks.values.values(), BenchmarkRecord)
        active = benchmarked(runs, records)
        for service_id, ids in self._active.items():
            for benchmark_id in ids - active.get(service_id, set()):
                self.metrics.benchmark_active.remove(service_id, benchmark_id)
        for service_id, ids in active.items():
            for benchmark_id in ids:
                self.metrics.benchmark_active.labels(service_id, benchmark_id).set(1)
        self._active = active
        self.scheduler.set_fast(set(active))
