"""The envelope every bus message carries.

``id`` doubles as the JetStream ``Nats-Msg-Id`` so a re-sent command is dropped by the
stream's duplicate window, and as the idempotency key consumers check before acting.
``schema_version`` lets a consumer refuse (dead-letter) a message from a newer producer
instead of misreading it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Model(BaseModel):
    """Strict base for everything on the wire: unknown fields are errors, not silently lost."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(Model):
    #: The subject this message type travels on, for types bound to one subject.
    subject: ClassVar[str] = ""

    id: str = Field(default_factory=new_id, pattern=ID_PATTERN)
    time: datetime = Field(default_factory=utcnow)
    correlation_id: str | None = Field(default=None, pattern=ID_PATTERN)
    schema_version: Literal[1] = SCHEMA_VERSION
