"""The bus catalogue as data (design.md §3) and the AsyncAPI document FastStream makes of it.

One row per subject: who produces it, who consumes it, and the pydantic model on the wire.
The AsyncAPI document is generated from these rows by FastStream itself, so the published
contract and the models the services validate against cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI

from aifactory.shared import subjects
from aifactory.shared.messages import (
    BenchCancel,
    BenchCompleted,
    BenchFailed,
    BenchMetrics,
    BenchRequested,
    BenchStarted,
    DeadLetter,
    DeployCancel,
    DeployRequested,
    JobEvent,
    LogLines,
    Message,
    MonitorSamples,
    ServiceReady,
    ServiceUnhealthy,
)


class Kind(StrEnum):
    COMMAND = "command"
    EVENT = "event"


@dataclass(frozen=True, slots=True)
class Channel:
    subject: str
    model: type[Message]
    kind: Kind
    producer: str
    consumers: str
    description: str


def _job(subject: str, what: str) -> Channel:
    return Channel(subject, JobEvent, Kind.EVENT, "server", "all", what)


CATALOGUE: tuple[Channel, ...] = (
    Channel(
        subjects.DEPLOY_REQUESTED,
        DeployRequested,
        Kind.COMMAND,
        "ingress, CLI",
        "server",
        "Deploy a recipe; idempotent by service_id.",
    ),
    Channel(
        subjects.DEPLOY_CANCEL,
        DeployCancel,
        Kind.COMMAND,
        "ingress, CLI",
        "server",
        "Cancel a service's job.",
    ),
    _job(subjects.JOB_SUBMITTED, "The scheduler accepted the job."),
    _job(subjects.JOB_PENDING, "Queued (reason inside), requeued or suspended."),
    _job(subjects.JOB_RUNNING, "Running or completing."),
    _job(subjects.JOB_COMPLETED, "Ended by itself with exit code 0."),
    _job(
        subjects.JOB_FAILED,
        "Failed; also node_fail, out_of_memory, preempted, boot_fail, "
        "vanished (precise state in job_state).",
    ),
    _job(subjects.JOB_CANCELLED, "Cancelled."),
    _job(subjects.JOB_TIMEOUT, "Hit its time limit or deadline."),
    Channel(
        subjects.SERVICE_READY,
        ServiceReady,
        Kind.EVENT,
        "server",
        "client, monitor",
        "Every replica answers its health path; endpoints inside.",
    ),
    Channel(
        subjects.SERVICE_UNHEALTHY,
        ServiceUnhealthy,
        Kind.EVENT,
        "server",
        "client, monitor",
        "Not healthy within the recipe's timeout; the job is cancelled.",
    ),
    Channel(
        subjects.BENCH_REQUESTED,
        BenchRequested,
        Kind.COMMAND,
        "ingress, CLI",
        "client",
        "Run a benchmark against a service id or a URL.",
    ),
    Channel(
        subjects.BENCH_CANCEL,
        BenchCancel,
        Kind.COMMAND,
        "ingress, CLI",
        "client",
        "Stop a benchmark; partial results are kept.",
    ),
    Channel(subjects.BENCH_STARTED, BenchStarted, Kind.EVENT, "client", "all", "Load started."),
    Channel(
        subjects.BENCH_METRICS,
        BenchMetrics,
        Kind.EVENT,
        "client",
        "ingress, CLI",
        "A window of live figures.",
    ),
    Channel(
        subjects.BENCH_COMPLETED,
        BenchCompleted,
        Kind.EVENT,
        "client",
        "all",
        "Summary and results folder (also for a cancelled run).",
    ),
    Channel(
        subjects.BENCH_FAILED,
        BenchFailed,
        Kind.EVENT,
        "client",
        "all",
        "The benchmark could not run; reason inside.",
    ),
    Channel(
        f"{subjects.MONITOR_SAMPLES_PREFIX}.{{service_id}}",
        MonitorSamples,
        Kind.EVENT,
        "monitor",
        "ingress, report",
        "Samples scraped from exporters.",
    ),
    Channel(
        f"{subjects.LOGS_PREFIX}.{{service_id}}.{{stream}}",
        LogLines,
        Kind.EVENT,
        "logs",
        "ingress, CLI",
        "Lines of a job's output.",
    ),
    Channel(
        f"{subjects.DEADLETTER_PREFIX}.{{subject}}",
        DeadLetter,
        Kind.EVENT,
        "every consumer",
        "operators",
        "A message that could not be accepted, with the reason.",
    ),
)


def _document_handler(model: type[Message]) -> Any:
    async def handler(message: Any) -> None:
        """Documentation only: the real consumers validate the raw body themselves."""

    handler.__annotations__ = {"message": model, "return": None}
    return handler


def asyncapi_document(servers: str = "nats://127.0.0.1:4222") -> dict[str, Any]:
    broker = NatsBroker(servers, apply_types=True)
    for channel in CATALOGUE:
        title = f"{channel.subject} ({channel.producer} → {channel.consumers})"
        if channel.kind is Kind.COMMAND:
            broker.subscriber(channel.subject, title=title, description=channel.description)(
                _document_handler(channel.model)
            )
        else:
            broker.publisher(
                channel.subject, schema=channel.model, title=title, description=channel.description
            )
    spec = AsyncAPI(
        broker,
        title="aifactory bus",
        version="1",
        description="Commands and events between the aifactory services (NATS JetStream).",
    )
    document: dict[str, Any] = json.loads(spec.to_specification().to_json())
    return document
