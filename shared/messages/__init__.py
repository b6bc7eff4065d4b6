"""Pydantic models for every message of the bus catalogue (design.md §3)."""

from aifactory.shared.messages.base import Message, Model, new_id, utcnow
from aifactory.shared.messages.bench import (
    BenchCancel,
    BenchCompleted,
    BenchFailed,
    BenchMetrics,
    BenchRequested,
    BenchStarted,
    BenchTarget,
)
from aifactory.shared.messages.deploy import DeployCancel, DeployRequested
from aifactory.shared.messages.jobs import Endpoint, JobEvent, ServiceReady, ServiceUnhealthy
from aifactory.shared.messages.logs import (
    AlertSeverity,
    FileId,
    LogAlert,
    LogEof,
    LogLines,
    LogStream,
    StreamEnd,
)
from aifactory.shared.messages.monitor import (
    MonitorSamples,
    ScrapeTarget,
    SeriesGroup,
    ServiceTargets,
    TargetRole,
)
from aifactory.shared.messages.observe import DeadLetter

__all__ = [
    "AlertSeverity",
    "BenchCancel",
    "BenchCompleted",
    "BenchFailed",
    "BenchMetrics",
    "BenchRequested",
    "BenchStarted",
    "BenchTarget",
    "DeadLetter",
    "DeployCancel",
    "DeployRequested",
    "Endpoint",
    "FileId",
    "JobEvent",
    "LogAlert",
    "LogEof",
    "LogLines",
    "LogStream",
    "Message",
    "Model",
    "MonitorSamples",
    "ScrapeTarget",
    "SeriesGroup",
    "ServiceReady",
    "ServiceTargets",
    "ServiceUnhealthy",
    "StreamEnd",
    "TargetRole",
    "new_id",
    "utcnow",
]
