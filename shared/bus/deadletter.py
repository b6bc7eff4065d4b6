"""Decode a bus message into its model, or dead-letter it with the reason.

A consumer that raised on a malformed message would have it redelivered forever (a poison
message); instead it is parked on ``deadletter.<subject>`` with the validation errors, the
original is acknowledged, and the service keeps serving.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from faststream.nats import NatsBroker
from pydantic import ValidationError

from aifactory.shared import subjects
from aifactory.shared.bus.publish import publish
from aifactory.shared.messages.base import Message
from aifactory.shared.messages.observe import DeadLetter

M = TypeVar("M", bound=Message)

log = logging.getLogger(__name__)

PAYLOAD_LIMIT = 4096


def describe_validation_error(exc: ValidationError) -> str:
    """``field.path: reason`` per error, the form users see everywhere in aifactory."""
    parts = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(p) for p in error["loc"]) or "(message)"
        parts.append(f"{path}: {error['msg']}")
    return "; ".join(parts)


async def decode_or_deadletter(
    broker: NatsBroker,
    body: bytes,
    model: type[M],
    *,
    subject: str,
    consumer: str,
) -> M | None:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        reason = describe_validation_error(exc)
    letter = DeadLetter(
        original_subject=subject,
        reason=reason,
        payload=body[:PAYLOAD_LIMIT].decode("utf-8", errors="replace"),
        consumer=consumer,
    )
    log.warning("dead-lettered a message on %s: %s", subject, reason)
    await publish(broker, subjects.DEADLETTER, letter, subject=subject)
    return None
