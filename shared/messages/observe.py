"""Monitoring samples, log lines and dead letters."""

from __future__ import annotations

from pydantic import Field

from aifactory.shared.messages.base import ID_PATTERN, Message, Model


class Sample(Model):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    value: float
    timestamp: float


class MonitorSamples(Message):
    """Published on ``monitor.samples.<service_id>``."""

    service_id: str = Field(pattern=ID_PATTERN)
    samples: list[Sample]


class LogLines(Message):
    """Published on ``logs.<service_id>.<stream>``."""

    service_id: str = Field(pattern=ID_PATTERN)
    stream: str
    lines: list[str]
    offset: int = Field(ge=0)


class DeadLetter(Message):
    """A message a consumer could not accept, with why; published on ``deadletter.<subject>``."""

    original_subject: str
    reason: str
    #: The original body, decoded leniently and truncated: enough to debug, bounded in size.
    payload: str
    consumer: str
