"""Benchmark commands and events (client service)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from aifactory.shared import subjects
from aifactory.shared.messages.base import ID_PATTERN, Message, Model


class BenchTarget(Model):
    """What to load: a deployed service (resolved through the registry) or any URL."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"oneOf": [{"required": ["service_id"]}, {"required": ["url"]}]},
    )

    service_id: str | None = Field(default=None, pattern=ID_PATTERN)
    url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$", max_length=2000)

    @model_validator(mode="after")
    def _exactly_one(self) -> BenchTarget:
        if (self.service_id is None) == (self.url is None):
            raise ValueError("give exactly one of service_id or url")
        return self


class BenchRequested(Message):
    subject: ClassVar[str] = subjects.BENCH_REQUESTED

    benchmark_id: str = Field(pattern=ID_PATTERN)
    target: BenchTarget
    #: The workload (profile, dataset, SLOs…); validated by the client service's schema so
    #: that the error names the field inside ``workload``.
    workload: dict[str, Any] = Field(default_factory=dict)


class BenchCancel(Message):
    subject: ClassVar[str] = subjects.BENCH_CANCEL

    benchmark_id: str = Field(pattern=ID_PATTERN)


class BenchStarted(Message):
    subject: ClassVar[str] = subjects.BENCH_STARTED

    benchmark_id: str = Field(pattern=ID_PATTERN)
    target_url: str


class BenchMetrics(Message):
    """A window of live figures (not the final statistics: those are in the results)."""

    subject: ClassVar[str] = subjects.BENCH_METRICS

    benchmark_id: str = Field(pattern=ID_PATTERN)
    window: dict[str, Any]


class BenchCompleted(Message):
    subject: ClassVar[str] = subjects.BENCH_COMPLETED

    benchmark_id: str = Field(pattern=ID_PATTERN)
    summary: dict[str, Any]
    results_dir: str


class BenchFailed(Message):
    subject: ClassVar[str] = subjects.BENCH_FAILED

    benchmark_id: str = Field(pattern=ID_PATTERN)
    reason: str
