"""Publishing a message on its declared channel, with the message id as ``Nats-Msg-Id``.

Always publish through here: the header is what makes a re-sent command a no-op inside the
stream's duplicate window, the PubAck is what tells the caller it was persisted, and the
channel decides the subject and the stream, so nothing is published where the catalogue
does not say.
"""

from __future__ import annotations

from typing import TypeVar

from faststream.nats import NatsBroker

from aifactory.shared.channel import Channel
from aifactory.shared.messages.base import Message
from aifactory.shared.strict import WIRE

CONTENT_TYPE = "application/json"

M = TypeVar("M", bound=Message)


async def publish(
    broker: NatsBroker,
    channel: Channel[M],
    message: M,
    *,
    timeout: float = 5.0,
    confirm: bool = True,
    **params: str,
) -> None:
    """Publish ``message`` on ``channel`` (``params`` fill its ``{tokens}``).

    ``confirm=False``, for high-rate telemetry only (the monitor's scrapes): the stream
    still stores the message (it captures its subjects), but the publisher does not wait
    for the PubAck, whose round trip measured a fifth of the monitor's CPU. A message lost
    to a bus outage is then a gap in the data, which is what telemetry tolerates.
    """
    if not isinstance(message, channel.model):
        raise TypeError(
            f"{channel.address} carries {channel.model.__name__}, not {type(message).__name__}"
        )
    await broker.publish(
        message.model_dump_json(context=WIRE).encode(),
        channel.subject(**params),
        headers={"Nats-Msg-Id": message.id, "content-type": CONTENT_TYPE},
        correlation_id=message.correlation_id or message.id,
        stream=channel.stream if confirm else None,
        timeout=timeout,
    )
