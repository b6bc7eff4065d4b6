"""Log alerts become the service's reason: ``logs.<id>.alert`` → the registry record.

A durable consumer, so an alert published while the server was down is applied when it
is back; applying one twice changes nothing (the record keeps each pattern and line once).
Alerts of jobs that are not services (a benchmark's workers) are acknowledged and left
to the readers of the stream.
"""

from __future__ import annotations

import logging

from faststream.nats import NatsRouter

from aifactory.services.server.lifecycle import Lifecycle
from aifactory.shared import subjects
from aifactory.shared.bus.durable import durable_consumer
from aifactory.shared.channel import Component
from aifactory.shared.messages import LogAlert
from aifactory.shared.registry import AlertNote, ServiceRecord
from aifactory.shared.settings import Settings

log = logging.getLogger(__name__)


def consume_alerts(router: NatsRouter, settings: Settings, lifecycle: Lifecycle) -> None:
    async def apply(alert: LogAlert, subject: str) -> None:
        if await lifecycle.registry.get(alert.service_id) is None:
            return
        note = AlertNote(
            pattern=alert.pattern,
            summary=alert.summary,
            stream=alert.stream.value,
            line=alert.line,
            at=alert.time,
        )

        def add(record: ServiceRecord) -> ServiceRecord | None:
            return record if record.add_alert(note) else None

        await lifecycle.registry.update(alert.service_id, add)
        log.info("service %s: %s", alert.service_id, note.text())

    durable_consumer(
        router,
        lifecycle.broker,
        settings,
        subjects.LOG_ALERT,
        apply,
        service=Component.SERVER,
        name="log-alerts",
    )
