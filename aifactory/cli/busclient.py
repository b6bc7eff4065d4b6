"""A short-lived bus connection for CLI commands."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from faststream.nats import NatsBroker
from nats.errors import NoServersError

from aifactory.shared.bus import PublishRefused, Topology, ensure_topology, make_broker
from aifactory.shared.settings import Settings


class BusUnavailable(RuntimeError):
    """No NATS at the configured URL: tell the user how to get one."""


class CommandRefused(BusUnavailable):
    """The bus is there but did not store a command (storage full): nothing was done."""


@contextlib.asynccontextmanager
async def bus(settings: Settings) -> AsyncIterator[tuple[NatsBroker, Topology]]:
    broker = make_broker(
        settings, name="cli", connect_timeout=3, max_reconnect_attempts=1, reconnect_time_wait=0.2
    )
    try:
        await broker.connect()
    except (OSError, TimeoutError, NoServersError) as exc:
        raise BusUnavailable(
            f"cannot reach NATS at {settings.nats_url} ({type(exc).__name__}); start the stack "
            "with 'aifactory up' or set AIFACTORY_NATS_URL"
        ) from exc
    try:
        yield broker, await ensure_topology(broker.connection.jetstream())
    except PublishRefused as exc:
        # Nothing was published: the command is not waiting anywhere, so say so plainly.
        raise CommandRefused(f"{exc}; nothing was done") from exc
    finally:
        await broker.stop()
