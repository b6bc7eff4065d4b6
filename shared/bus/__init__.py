"""Bus helpers shared by every service."""

from shared.bus.broker import bus_connected, make_broker
from shared.bus.deadletter import decode_or_deadletter, describe_validation_error
from shared.bus.publish import publish
from shared.bus.topology import Topology, ensure_topology

__all__ = [
    "Topology",
    "bus_connected",
    "decode_or_deadletter",
    "describe_validation_error",
    "ensure_topology",
    "make_broker",
    "publish",
]
