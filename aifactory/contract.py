"""Every channel on the bus: the services' catalogue and the load workers' protocol.

The services' channels are declared in :mod:`aifactory.shared.subjects`, the remote load
workers' in :mod:`aifactory.loadgen.remote.protocol` (a library's own protocol stays with
the library); this is where the two meet for the published AsyncAPI document.
"""

from __future__ import annotations

from typing import Any

from aifactory.loadgen.remote import protocol
from aifactory.shared import subjects
from aifactory.shared.asyncapi import asyncapi_document
from aifactory.shared.channel import Channel

CHANNELS: tuple[Channel[Any], ...] = (*subjects.CHANNELS, *protocol.CHANNELS)


def bus_document(servers: str) -> dict[str, Any]:
    """The AsyncAPI 3 document of the whole bus (``aifactory asyncapi``, ``/asyncapi.json``)."""
    return asyncapi_document(CHANNELS, servers)
