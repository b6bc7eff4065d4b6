"""Publishing a message on its declared channel, with the message id as ``Nats-Msg-Id``.

Always publish through here: the header is what makes a re-sent command a no-op inside the
stream's duplicate window, the PubAck is what tells the caller it was persisted, and the
channel decides the subject and the stream, so nothing is published where the catalogue
does not say.
"""

from __future__ import annotations

from typing import TypeVar

from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from nats.js.api import PubAck

from aifactory.shared.channel import Channel
from aifactory.shared.messages.base import Message
from aifactory.shared.strict import WIRE

CONTENT_TYPE = "application/json"


class PublishRefused(RuntimeError):
    """The bus did not store the message (storage full, stream limit, no JetStream, no
    answer); the message says why. Nothing was published: the caller must say so, not
    proceed as if it had been."""


M = TypeVar("M", bound=Message)


async def publish(
    broker: NatsBroker,
    channel: Channel[M],
    message: M,
    *,
    timeout: float = 5.0,
    confirm: bool = True,
    **params: str,
) -> PubAck | None:
    """Publish ``message`` on ``channel`` (``params`` fill its ``{tokens}``).

    For a stored channel, returns the stream's acknowledgement (sequence, and whether the
    stream dropped it as a duplicate); ``None`` for core NATS.

    ``confirm=False``, for high-rate telemetry only (the monitor's scrapes): the stream
    still stores the message (it captures its subjects), but the publisher does not wait
    for the PubAck, whose round trip measured a fifth of the monitor's CPU. A message lost
    to a bus outage is then a gap in the data, which is what telemetry tolerates; ``None``
    is returned.
    """
    if not isinstance(message, channel.model):
        raise TypeError(
            f"{channel.address} carries {channel.model.__name__}, not {type(message).__name__}"
        )
    subject = channel.subject(**params)
    try:
        return await broker.publish(
            message.model_dump_json(context=WIRE).encode(),
            subject,
            headers={"Nats-Msg-Id": message.id, "content-type": CONTENT_TYPE},
            correlation_id=message.correlation_id or message.id,
            stream=channel.stream if confirm else None,
            timeout=timeout,
        )
    except (NatsError, TimeoutError) as exc:
        reason = getattr(exc, "description", None) or str(exc) or type(exc).__name__
        raise PublishRefused(f"the bus did not accept {subject}: {reason}") from exc
