"""Broker construction. One broker per service instance, never a module global."""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker
from faststream.security import BaseSecurity

from aifactory.shared.settings import Settings


def make_broker(settings: Settings, *, name: str, **options: object) -> NatsBroker:
    """A broker for ``name`` (shows in ``nats server report connections``).

    ``options`` go to nats-py's connect (e.g. a short ``connect_timeout`` for the CLI).
    """
    kwargs: dict[str, object] = {"max_reconnect_attempts": -1, **options}
    if settings.nats_token is not None:
        # Passed to nats-py only, never logged (the broker logs servers, not credentials).
        kwargs["token"] = settings.nats_token.get_secret_value()
    security: BaseSecurity | None = None
    return NatsBroker(
        servers=settings.nats_url,
        name=f"aifactory-{name}",
        logger=logging.getLogger(f"aifactory.{name}.bus"),
        security=security,
        graceful_timeout=10.0,
        **kwargs,  # type: ignore[arg-type]
    )


def bus_connected(broker: NatsBroker) -> bool:
    try:
        return bool(broker.connection is not None and broker.connection.is_connected)
    except (AttributeError, RuntimeError):  # not connected yet: no connection state
        return False
