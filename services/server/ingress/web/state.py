"""Everything the page's routes share, made once per ingress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from faststream.nats import NatsBroker
from prometheus_client import CollectorRegistry, Gauge

from aifactory.services.server.ingress.auth import FailedLogins
from aifactory.services.server.ingress.web.guard import WebGuard
from aifactory.services.server.ingress.web.hub import Hub
from aifactory.services.server.ingress.web.sessions import Sessions
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.registry_view import RegistryView
from aifactory.shared.settings import Settings


@dataclass
class WebState:
    settings: Settings
    broker: NatsBroker
    services: KVRegistry[ServiceRecord]
    benchmarks: KVRegistry[BenchmarkRecord]
    services_view: RegistryView
    benchmarks_view: RegistryView
    guard: WebGuard
    sessions: Sessions | None
    #: Failed logins per address, shared with the API's bearer check: one brake for both.
    failures: FailedLogins = field(default_factory=FailedLogins)
    hub: Hub = field(default_factory=Hub)
    #: Whether this ingress serves job output (the logs service's routes are mounted).
    logs: bool = False
    #: Whether the monitor publishes samples on this bus (the channel is declared).
    monitor: bool = False
    #: Start following a service's monitor samples (a page opened its charts).
    want_monitor: Callable[[str], None] = lambda service_id: None

    @property
    def open_mode(self) -> bool:
        return self.sessions is None


def stream_gauge(registry: CollectorRegistry, hub: Hub) -> None:
    """``aifactory_web_streams``: open live streams (a leak shows as a count that never falls)."""
    gauge = Gauge("aifactory_web_streams", "Live event streams open to browsers", registry=registry)
    hub.on_subscribers(gauge.set)
