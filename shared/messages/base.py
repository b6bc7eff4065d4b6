"""The envelope every bus message carries.

``id`` doubles as the JetStream ``Nats-Msg-Id`` so a re-sent command is dropped by the
stream's duplicate window, and as the idempotency key consumers check before acting.
``schema_version`` lets a consumer refuse (dead-letter) a message from a newer producer
instead of misreading it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from aifactory.shared.strict import WIRE, StrictModel, WireSecret

__all__ = ["ID_PATTERN", "WIRE", "Message", "Model", "WireSecret", "new_id", "utcnow"]

SCHEMA_VERSION: Literal[1] = 1

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Model(StrictModel):
    """Everything on the wire: unknown fields are errors, not silently lost."""


class Message(Model):
    id: str = Field(
        default_factory=new_id,
        pattern=ID_PATTERN,
        description="Unique per message; also its Nats-Msg-Id (duplicates are dropped).",
    )
    time: datetime = Field(default_factory=utcnow, description="When it was created (UTC).")
    correlation_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="The id of the command this message follows from, if any.",
    )
    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION, description="Message schema version; a newer one is refused."
    )
