"""Scheduler and service lifecycle events published by the server service."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from aifactory.shared import subjects
from aifactory.shared.messages.base import ID_PATTERN, Message, Model
from aifactory.shared.states import JobState


class Endpoint(Model):
    """Where one replica of a service answers."""

    host: str
    port: int = Field(ge=1, le=65535)
    url: str
    replica: int = Field(default=0, ge=0)


class JobEvent(Message):
    """One observed job transition; the subject is ``job_subject(job_state)``."""

    service_id: str = Field(pattern=ID_PATTERN)
    job_id: str
    job_state: JobState
    reason: str | None = None
    nodes: list[str] = Field(default_factory=list)
    exit_code: int | None = None
    #: Set on ``job.submitted`` only: the submission itself, not a scheduler observation.
    submitted: bool = False


class ServiceReady(Message):
    subject: ClassVar[str] = subjects.SERVICE_READY

    service_id: str = Field(pattern=ID_PATTERN)
    recipe: str
    endpoints: list[Endpoint]


class ServiceUnhealthy(Message):
    subject: ClassVar[str] = subjects.SERVICE_UNHEALTHY

    service_id: str = Field(pattern=ID_PATTERN)
    reason: str
    endpoints: list[Endpoint] = Field(default_factory=list)
