"""Benchmark runs driven by bus commands: resolve the target, run, publish, record.

A run is an asyncio task, so the command is acknowledged at once and a long benchmark never
holds a JetStream ack open. The benchmarks KV record is the source of truth: a repeated
command for a known benchmark id is ignored, and a run cut short by a restart of this
service is closed ``interrupted``, its records so far kept and summarised, rather than
silently re-run (a second run would load the target twice and mix two measurements).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from faststream.nats import NatsBroker
from pydantic import ValidationError

from aifactory.loadgen.errors import LoadgenError
from aifactory.loadgen.metrics.records import RequestRecord
from aifactory.loadgen.recover import recover_interrupted
from aifactory.loadgen.remote import cancel_workers_job, run_remote_benchmark
from aifactory.loadgen.results import write_results
from aifactory.loadgen.runner import run_benchmark
from aifactory.report.build import build_report
from aifactory.services.client.metrics import ClientMetrics
from aifactory.services.client.server_side import add_server_side
from aifactory.shared import subjects
from aifactory.shared.bus import describe_validation_error, publish
from aifactory.shared.executors.base import Executor
from aifactory.shared.messages import (
    BenchCancel,
    BenchCompleted,
    BenchFailed,
    BenchMetrics,
    BenchRequested,
    BenchStarted,
)
from aifactory.shared.messages.base import utcnow
from aifactory.shared.registry import (
    BenchmarkRecord,
    KVRegistry,
    RecordExists,
    ServiceRecord,
    TargetNotReady,
    service_urls,
)
from aifactory.shared.results import BenchSummary, WindowStats
from aifactory.shared.settings import Settings
from aifactory.shared.states import BenchState
from aifactory.shared.workload import BenchConfig

log = logging.getLogger(__name__)


class TargetError(ValueError):
    """The benchmark's target cannot be resolved to a URL."""


class BenchmarkRuns:
    def __init__(
        self,
        *,
        settings: Settings,
        broker: NatsBroker,
        benchmarks: KVRegistry[BenchmarkRecord],
        services: KVRegistry[ServiceRecord],
        metrics: ClientMetrics,
        executor: Executor,
    ) -> None:
        self.executor = executor
        self.settings = settings
        self.broker = broker
        self.benchmarks = benchmarks
        self.services = services
        self.metrics = metrics
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stops: dict[str, asyncio.Event] = {}

    async def reconcile(self) -> None:
        """Close the runs a previous process of this service left open: never ``running``
        for ever, never re-run (the target would be loaded twice)."""
        for record in await self.benchmarks.all():
            if not record.state.is_terminal and record.benchmark_id not in self._tasks:
                # Its coordinator died with us: do not leave its workers' job idling.
                await cancel_workers_job(self.executor, record.benchmark_id)
                try:
                    await self._close_interrupted(record)
                except (OSError, ValueError, LoadgenError) as exc:
                    # Unreadable leftovers must not crash-loop the service: close it anyway.
                    log.exception("benchmark %s: cannot recover its records", record.benchmark_id)
                    await self._finish(
                        record.benchmark_id,
                        BenchState.INTERRUPTED,
                        reason=f"the client service restarted during the run; its records "
                        f"could not be recovered: {exc}",
                    )

    async def _close_interrupted(self, record: BenchmarkRecord) -> None:
        bid = record.benchmark_id
        reason = "the client service restarted during the run"
        out = self.settings.effective_benchmarks_dir / bid
        result = None
        if record.target_urls and out.is_dir():
            config = record.workload.at(*record.target_urls)
            started = record.started or record.created
            result = await asyncio.to_thread(recover_interrupted, config, out, started_at=started)
        if result is None:
            await self._finish(bid, BenchState.INTERRUPTED, reason=f"{reason}; no records yet")
            return
        await asyncio.to_thread(write_results, result, out)
        await asyncio.to_thread(build_report, out)  # says "interrupted: figures are partial"
        await self._finish(
            bid,
            BenchState.INTERRUPTED,
            reason=f"{reason}; the records received until then are kept",
            summary=result.summary,
            results_dir=out,
            correlation=record.request_id,
        )

    async def request(self, cmd: BenchRequested) -> None:
        record = BenchmarkRecord(
            benchmark_id=cmd.benchmark_id,
            request_id=cmd.id,
            target=cmd.target,
            workload=cmd.workload,
        )
        try:
            await self.benchmarks.create(cmd.benchmark_id, record)
        except RecordExists:
            log.info("benchmark %s already known; ignoring repeat", cmd.benchmark_id)
            return
        stop = asyncio.Event()
        self._stops[cmd.benchmark_id] = stop
        task = asyncio.create_task(self._run(cmd, stop), name=f"bench-{cmd.benchmark_id}")
        self._tasks[cmd.benchmark_id] = task
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        benchmark_id = task.get_name().removeprefix("bench-")
        self._tasks.pop(benchmark_id, None)
        self._stops.pop(benchmark_id, None)

    async def cancel(self, cmd: BenchCancel) -> None:
        stop = self._stops.get(cmd.benchmark_id)
        if stop is not None:
            stop.set()
            return
        found = await self.benchmarks.get(cmd.benchmark_id)
        if found is not None and not found[0].state.is_terminal:
            await self._finish(cmd.benchmark_id, BenchState.CANCELLED, reason="cancelled")

    async def resolve_target(self, cmd: BenchRequested) -> list[str]:
        """The base URLs to load: the given URL, or every endpoint of the service."""
        if cmd.target.url is not None:
            return [cmd.target.url]
        assert cmd.target.service_id is not None
        found = await self.services.get(cmd.target.service_id)
        try:
            # Workers on compute nodes load the cluster's URLs; load from here, the tunnels'.
            return service_urls(
                cmd.target.service_id,
                found[0] if found else None,
                from_cluster=cmd.workload.worker_nodes is not None,
            )
        except TargetNotReady as exc:
            raise TargetError(f"target.service_id: {exc}") from None

    def build_config(self, cmd: BenchRequested, urls: list[str]) -> BenchConfig:
        try:
            return cmd.workload.at(*urls)
        except ValidationError as exc:
            raise TargetError("target: " + describe_validation_error(exc)) from exc

    async def _run(self, cmd: BenchRequested, stop: asyncio.Event) -> None:
        bid = cmd.benchmark_id
        self.metrics.running.inc()
        try:
            try:
                urls = await self.resolve_target(cmd)
                config = self.build_config(cmd, urls)
                url = urls[0]
            except TargetError as exc:
                await self._finish(bid, BenchState.FAILED, reason=str(exc))
                return
            await self._set(
                bid, state=BenchState.RUNNING, target_url=url, target_urls=urls, started=utcnow()
            )
            await publish(
                self.broker,
                subjects.BENCH_STARTED,
                BenchStarted(benchmark_id=bid, target_url=url, correlation_id=cmd.id),
            )

            async def on_window(window: WindowStats) -> None:
                await publish(
                    self.broker,
                    subjects.BENCH_METRICS,
                    BenchMetrics(benchmark_id=bid, window=window, correlation_id=cmd.id),
                )

            def on_records(batch: list[RequestRecord]) -> None:
                for rec in batch:
                    self.metrics.requests.labels(rec.error or "ok").inc()

            out = self.settings.effective_benchmarks_dir / bid  # records stream in here
            try:
                if config.worker_nodes is not None:
                    # Workers on N nodes, launched as one job, reporting over the bus.
                    result = await run_remote_benchmark(
                        config,
                        benchmark_id=bid,
                        broker=self.broker,
                        executor=self.executor,
                        settings=self.settings,
                        stop_event=stop,
                        on_window=on_window,
                        on_records=on_records,
                        out_dir=out,
                    )
                else:
                    result = await run_benchmark(
                        config,
                        stop_event=stop,
                        on_window=on_window,
                        on_records=on_records,
                        progress=False,
                        out_dir=out,
                    )
            except LoadgenError as exc:
                await self._finish(bid, BenchState.FAILED, reason=str(exc))
                return
            if cmd.target.service_id is not None:
                js = self.broker.connection.jetstream()
                monitor = self.settings.monitor
                result = await add_server_side(js, cmd.target.service_id, result, out, monitor)
            await asyncio.to_thread(write_results, result, out)
            await self._finish(
                bid,
                result.summary.state,
                summary=result.summary,
                results_dir=out,
                correlation=cmd.id,
            )
        except Exception as exc:
            log.exception("benchmark %s crashed", bid)
            await self._finish(bid, BenchState.FAILED, reason=f"internal error: {exc!r}")
        finally:
            self.metrics.running.dec()

    async def _set(self, benchmark_id: str, **changes: Any) -> BenchmarkRecord:
        def apply(r: BenchmarkRecord) -> BenchmarkRecord:
            return r.model_copy(update=changes)

        return await self.benchmarks.update(benchmark_id, apply)

    async def _finish(
        self,
        benchmark_id: str,
        state: BenchState,
        *,
        reason: str | None = None,
        summary: BenchSummary | None = None,
        results_dir: Path | None = None,
        correlation: str | None = None,
    ) -> None:
        await self._set(
            benchmark_id,
            state=state,
            reason=reason,
            summary=summary,
            results_dir=str(results_dir) if results_dir else None,
        )
        self.metrics.benchmarks.labels(state.value).inc()
        if state is BenchState.FAILED:
            failed = BenchFailed(
                benchmark_id=benchmark_id, reason=reason or "failed", correlation_id=correlation
            )
            await publish(self.broker, subjects.BENCH_FAILED, failed)
            return
        completed = BenchCompleted(
            benchmark_id=benchmark_id,
            state=state,
            summary=summary,
            reason=reason,
            results_dir=str(results_dir or ""),
            correlation_id=correlation,
        )
        await publish(self.broker, subjects.BENCH_COMPLETED, completed)
