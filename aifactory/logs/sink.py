"""What a follower needs from the bus, as an interface: publish with an acknowledgement,
find what is already stored, keep a checkpoint.

:class:`aifactory.logs.bus.BusSink` is the implementation on NATS JetStream; the follower
knows nothing else of the bus, which keeps its file handling readable on its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from aifactory.logs.state import Checkpoint
from aifactory.shared.messages import LogAlert, LogEof, LogLines, LogStream


@dataclass(frozen=True, slots=True)
class Stored:
    """A batch as the stream holds it, and its sequence number there."""

    seq: int
    batch: LogLines


class LogSink(Protocol):
    async def publish_lines(self, batch: LogLines) -> Stored:
        """Publish and wait for the stream's ack. When the stream already held a batch
        with this id (a re-publish), the answer is *that* batch, which may cover more or
        fewer bytes than this one did."""

    async def publish_alert(self, alert: LogAlert) -> None: ...

    async def publish_eof(self, eof: LogEof) -> None: ...

    def stored_after(self, service_id: str, stream: LogStream, seq: int) -> AsyncIterator[Stored]:
        """Batches of this (service, stream) stored after sequence ``seq``, in order."""
        ...

    async def eof_published(self, service_id: str) -> bool: ...

    async def load(self, service_id: str, stream: LogStream) -> Checkpoint | None: ...

    async def save(self, checkpoint: Checkpoint) -> None: ...
