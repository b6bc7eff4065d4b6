"""What feeds the hub: bus events (one core NATS subscription per channel) and the registry
views (service and benchmark records as they change).

Records come from the registries, which every writer updates before it publishes the event,
so a page always ends on the true state; the events add what records do not keep (each job
transition as it happened, a benchmark's windows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from aifactory.services.server.ingress.web.hub import Hub
from aifactory.services.server.ingress.web.views import benchmark_view, service_view
from aifactory.shared import subjects
from aifactory.shared.bus.events import watch
from aifactory.shared.messages import (
    BenchCompleted,
    BenchFailed,
    BenchMetrics,
    BenchStarted,
    JobEvent,
    Message,
    ServiceReady,
    ServiceUnhealthy,
)
from aifactory.shared.registry import BenchmarkRecord, ServiceRecord
from aifactory.shared.registry_view import RegistryView

log = logging.getLogger(__name__)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


class Feeds:
    def __init__(
        self,
        hub: Hub,
        nc: NatsClient,
        services_view: RegistryView,
        benchmarks_view: RegistryView,
    ) -> None:
        self.hub = hub
        self.nc = nc
        self.services_view = services_view
        self.benchmarks_view = benchmarks_view
        self._subscriptions: list[Subscription] = []
        self._stop_listening: list[Callable[[], None]] = []

    async def start(self) -> None:
        self._stop_listening = [
            self.services_view.listen(self._service_changed),
            self.benchmarks_view.listen(self._benchmark_changed),
        ]
        self._subscriptions = [
            await watch(self.nc, subjects.JOB, self._job),
            await watch(self.nc, subjects.SERVICE_READY, self._ready),
            await watch(self.nc, subjects.SERVICE_UNHEALTHY, self._unhealthy),
            await watch(self.nc, subjects.BENCH_STARTED, self._bench_started),
            await watch(self.nc, subjects.BENCH_METRICS, self._window),
            await watch(self.nc, subjects.BENCH_COMPLETED, self._bench_completed),
            await watch(self.nc, subjects.BENCH_FAILED, self._bench_failed),
        ]

    async def stop(self) -> None:
        for stop in self._stop_listening:
            stop()
        for subscription in self._subscriptions:
            if not self.nc.is_closed:
                await subscription.unsubscribe()
        self._subscriptions = []

    # -- registry records ------------------------------------------------------------------

    def _service_changed(self, key: str, value: bytes | None) -> None:
        if value is None:
            self.hub.post("services", "removed", _dumps({"service_id": key}))
            return
        try:
            record = ServiceRecord.model_validate_json(value)
        except ValidationError as exc:
            log.warning("unreadable service record %s: %s", key, exc)
            return
        data = _dumps(service_view(record))
        self.hub.post("services", "service", data)
        self.hub.post(f"services/{key}", "service", data)

    def _benchmark_changed(self, key: str, value: bytes | None) -> None:
        if value is None:
            return
        try:
            record = BenchmarkRecord.model_validate_json(value)
        except ValidationError as exc:
            log.warning("unreadable benchmark record %s: %s", key, exc)
            return
        data = _dumps(benchmark_view(record))
        self.hub.post("benchmarks", "benchmark", data)
        self.hub.post(f"benchmarks/{key}", "benchmark", data)

    # -- bus events ------------------------------------------------------------------------

    def _note(self, key: str, what: str, detail: str, at: str) -> None:
        self.hub.post(key, "note", _dumps({"what": what, "detail": detail, "at": at}))

    async def _job(self, event: JobEvent) -> None:
        what = "job submitted" if event.submitted else f"job {event.job_state.value}"
        detail = " ".join(
            part
            for part in (
                event.job_id,
                event.reason or "",
                f"on {', '.join(event.nodes)}" if event.nodes else "",
                f"exit {event.exit_code}" if event.exit_code is not None else "",
            )
            if part
        )
        self._note(f"services/{event.service_id}", what, detail, _clock(event))

    async def _ready(self, event: ServiceReady) -> None:
        urls = " ".join(e.url for e in event.endpoints)
        self._note(f"services/{event.service_id}", "service ready", urls, _clock(event))

    async def _unhealthy(self, event: ServiceUnhealthy) -> None:
        self._note(f"services/{event.service_id}", "unhealthy", event.reason, _clock(event))

    async def _bench_started(self, event: BenchStarted) -> None:
        key = f"benchmarks/{event.benchmark_id}"
        self._note(key, "started", f"load goes to {event.target_url}", _clock(event))

    async def _window(self, event: BenchMetrics) -> None:
        self.hub.post(f"benchmarks/{event.benchmark_id}", "window", event.window.model_dump_json())

    async def _bench_completed(self, event: BenchCompleted) -> None:
        detail = event.reason or ""
        key = f"benchmarks/{event.benchmark_id}"
        self._note(key, event.state.value, detail, _clock(event))

    async def _bench_failed(self, event: BenchFailed) -> None:
        self._note(f"benchmarks/{event.benchmark_id}", "failed", event.reason, _clock(event))


def _clock(event: Message) -> str:
    return event.time.strftime("%H:%M:%S")
