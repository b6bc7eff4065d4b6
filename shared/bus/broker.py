"""Broker construction. One broker per service instance, never a module global."""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker
from faststream.nats.security import NatsSecurity, NatsUserPassword
from faststream.security import BaseSecurity

from aifactory.shared.bus.connect import nats_options
from aifactory.shared.settings import Settings


def make_broker(settings: Settings, *, name: str, **options: object) -> NatsBroker:
    """A broker for ``name`` (shows in ``nats server report connections``).

    ``options`` go to nats-py's connect (e.g. a short ``connect_timeout`` for the CLI).
    """
    # Credentials go to nats-py only, never logged (the broker logs servers, not secrets).
    auth = nats_options(settings)
    tls = auth.pop("tls", None)
    security: BaseSecurity | None = None
    if "user" in auth:
        security = NatsUserPassword(auth.pop("user"), auth.pop("password", ""), ssl_context=tls)
    elif tls is not None:
        security = NatsSecurity(ssl_context=tls)
    kwargs: dict[str, object] = {"max_reconnect_attempts": -1, **auth, **options}
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
